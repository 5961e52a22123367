"""Every write path leaves one revision with its author, source, note and field-level changes; GET
/api/v1/revisions/ lists them (docs/contract.md, "Revisions, history, labels, diff, rollback")."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from assistants.models import Assistant
from core.models import Revision
from tests.factories import (
    assistant_form,
    assistant_payload,
    key_client,
    link,
    staff_client,
    tool_payload,
    write_config_file,
)
from tools.models import Tool

# Committed transactions: each change set is its own revision only once the previous committed.
pytestmark = pytest.mark.django_db(transaction=True)

NOTE = {"HTTP_X_CHANGE_NOTE": "because the user asked"}


def newest() -> Revision:
    return Revision.objects.order_by("-number").first()


def revision_json(client, number: int) -> dict:
    response = client.get(f"/api/v1/revisions/{number}/")
    assert response.status_code == 200, response.content
    return response.json()


def only_change(client, **expected) -> dict:
    """The newest revision's one change, after checking its author, source and message."""
    body = revision_json(client, newest().number)
    for name, value in expected.items():
        assert body[name] == value, (name, body)
    assert len(body["changes"]) == 1, body["changes"]
    return body["changes"][0]


def test_an_api_create_leaves_one_revision_with_its_key_source_note_and_every_field(writer):
    response = writer.post("/api/v1/assistants/", assistant_payload(name="Helper"), **NOTE)
    assert response.status_code == 201

    change = only_change(
        writer, author="test write", source="api", message="because the user asked"
    )
    assert change["entity"] == "assistant" and change["action"] == "created"
    assert change["id"] == response.json()["id"] and change["name"] == "Helper"
    assert change["fields"]["name"] == {"old": None, "new": "Helper"}
    assert set(change["fields"]) == set(Assistant.CONFIG_FIELDS)


@pytest.mark.parametrize("method", ["put", "patch"])
def test_an_api_update_records_only_the_fields_it_changed(writer, secretary, method):
    payload = {"instructions": "Be brief."}
    if method == "put":
        payload = assistant_payload(name="Secretary", is_secretary=True, **payload)
    before = Revision.objects.count()
    response = getattr(writer, method)(f"/api/v1/assistants/{secretary.id}/", payload, **NOTE)
    assert response.status_code == 200, response.content

    assert Revision.objects.count() == before + 1
    change = only_change(writer, source="api", message="because the user asked")
    assert change["action"] == "updated"
    assert change["fields"] == {"instructions": {"old": "Help the user.", "new": "Be brief."}}


def test_an_api_delete_records_every_field_of_the_deleted_row(writer, calendar_assistant):
    response = writer.delete(f"/api/v1/assistants/{calendar_assistant.id}/", **NOTE)
    assert response.status_code == 204

    change = only_change(writer, message="because the user asked")
    assert change["action"] == "deleted" and change["name"] == "Calendar assistant"
    assert change["fields"]["name"] == {"old": "Calendar assistant", "new": None}


def test_tool_writes_each_leave_one_revision(writer):
    created = writer.post("/api/v1/tools/", tool_payload(), **NOTE).json()
    assert only_change(writer, source="api")["action"] == "created"

    writer.patch(f"/api/v1/tools/{created['id']}/", {"description": "Now."}, **NOTE)
    change = only_change(writer, message="because the user asked")
    assert change["entity"] == "tool"
    assert change["fields"] == {"description": {"old": "The time.", "new": "Now."}}

    writer.delete(f"/api/v1/tools/{created['id']}/", **NOTE)
    assert only_change(writer)["action"] == "deleted"


def test_linking_and_unlinking_a_tool_each_leave_one_revision_named_after_both(
    writer, secretary, weather_tool
):
    url = f"/api/v1/assistants/{secretary.id}/tools/{weather_tool.id}/"
    assert writer.post(url, {}, **NOTE).status_code in (200, 201)
    change = only_change(writer, source="api", message="because the user asked")
    assert change["entity"] == "link" and change["action"] == "created"
    assert change["name"] == "Secretary → get_weather"
    assert change["id"] == f"{secretary.id}:{weather_tool.id}"

    assert writer.delete(url, **NOTE).status_code == 204
    assert only_change(writer)["action"] == "deleted"


def test_an_admin_save_records_the_user_and_the_change_note(admin_client, reader):
    data = assistant_form(change_note="new planner for the trips team")
    response = admin_client.post(reverse("admin:assistants_assistant_add"), data)
    assert response.status_code == 302

    change = only_change(
        reader, author="admin", source="admin", message="new planner for the trips team"
    )
    assert change["name"] == "Planner" and change["action"] == "created"


@pytest.mark.parametrize("action", ["deactivate_selected", "activate_selected"])
def test_an_admin_bulk_action_is_one_revision_listing_every_row(admin_client, reader, action):
    rows = [
        Assistant.objects.create(name=f"A{i}", model="m", is_active=action == "deactivate_selected")
        for i in range(3)
    ]
    before = Revision.objects.count()
    response = admin_client.post(
        reverse("admin:assistants_assistant_changelist"),
        {"action": action, "_selected_action": [str(row.pk) for row in rows]},
    )
    assert response.status_code == 302

    assert Revision.objects.count() == before + 1
    body = revision_json(reader, newest().number)
    assert body["source"] == "admin" and body["author"] == "admin"
    assert sorted(change["name"] for change in body["changes"]) == ["A0", "A1", "A2"]
    assert {tuple(change["fields"]) for change in body["changes"]} == {("is_active",)}
    assert body["counts"] == {"assistants": 3, "tools": 0, "links": 0, "snippets": 0}


def test_an_import_with_a_message_is_one_revision(tmp_path, reader):
    path = write_config_file(
        tmp_path,
        {
            "format_version": 2,
            "assistants": [{"name": "One", "model": "m", "tools": ["t"]}],
            "tools": [{"name": "t", "tool_type": "time"}],
        },
    )
    call_command("import_config", path, "--no-backup", "--message", "first", stdout=StringIO())

    body = revision_json(reader, newest().number)
    assert (body["source"], body["message"]) == ("import", "first")
    assert body["counts"] == {"assistants": 1, "tools": 1, "links": 1, "snippets": 0}


def test_an_import_of_1000_changes_is_one_revision_listing_all_of_them(tmp_path, reader):
    document = {
        "format_version": 2,
        "assistants": [],
        "tools": [{"name": f"tool_{i:04}", "tool_type": "time"} for i in range(1000)],
    }
    path = write_config_file(tmp_path, document)
    before = Revision.objects.count()
    call_command("import_config", path, "--no-backup", stdout=StringIO(), stderr=StringIO())

    assert Revision.objects.count() == before + 1
    body = revision_json(reader, newest().number)
    assert body["counts"]["tools"] == 1000 and len(body["changes"]) == 1000
    assert {change["action"] for change in body["changes"]} == {"created"}


def test_revisions_are_listed_newest_first_with_counts(reader, secretary, weather_tool):
    link(secretary, weather_tool)
    response = reader.get("/api/v1/revisions/")

    assert response.status_code == 200
    body = response.json()
    numbers = [item["revision"] for item in body["results"]]
    assert numbers == sorted(numbers, reverse=True)
    assert body["count"] == Revision.objects.count() >= 3
    assert body["results"][0]["counts"] == {"assistants": 0, "tools": 0, "links": 1, "snippets": 0}
    assert set(body["results"][0]) == {
        "revision",
        "created_at",
        "author",
        "source",
        "message",
        "counts",
    }


def _list_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/revisions/?page_size=100").status_code == 200
    return len(queries)


def test_listing_revisions_costs_the_same_queries_for_3_or_30(reader):
    for i in range(3):
        Tool.objects.create(name=f"first_{i}", tool_type="time")
    reader.get("/api/v1/revisions/")  # the key record is cached now
    few = _list_queries(reader)
    for i in range(27):
        Tool.objects.create(name=f"more_{i}", tool_type="time")

    assert _list_queries(reader) == few
    assert few <= 3  # the count, and the page with its counts aggregated in one query


def test_an_unknown_revision_is_404(reader):
    response = reader.get("/api/v1/revisions/999/")
    assert response.status_code == 404 and "999" in response.json()["detail"]


def test_staff_need_the_view_revision_permission(secretary):
    number = newest().number
    allowed = staff_client("config_backend.view_revision")
    assert allowed.get(f"/api/v1/revisions/{number}/").status_code == 200
    assert staff_client("assistants.view_assistant").get("/api/v1/revisions/").status_code == 403


def test_a_write_that_changes_nothing_leaves_no_revision(writer, secretary):
    before = Revision.objects.count()
    response = writer.patch(f"/api/v1/assistants/{secretary.id}/", {"name": "Secretary"})
    assert response.status_code == 200
    assert Revision.objects.count() == before
    assert key_client("read").get("/api/v1/revisions/").json()["count"] == before


def test_a_revision_number_too_large_for_the_database_is_404_too(reader):
    assert reader.get(f"/api/v1/revisions/{10**30}/").status_code == 404
