"""Assistants: list with filters and pagination, detail with linked tools, writes."""

import pytest

from assistants.models import Assistant
from tests.factories import assistant_payload, link
from threads.models import UserAssistantThread
from tools.models import AssistantToolLink

pytestmark = pytest.mark.django_db


def test_it_lists_assistants_by_name_paginated(reader, secretary, calendar_assistant):
    response = reader.get("/api/v1/assistants/")

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["count", "next", "previous", "results"]
    assert body["count"] == 2 and body["next"] is None and body["previous"] is None
    assert [a["name"] for a in body["results"]] == ["Calendar assistant", "Secretary"]
    assert set(body["results"][0]) == {"id", *Assistant.CONFIG_FIELDS, "created_at", "updated_at"}


@pytest.mark.parametrize(
    "query, names",
    [
        ("is_active=true", ["Calendar assistant", "Secretary"]),
        ("is_active=false", ["Old"]),
        ("is_secretary=true", ["Secretary"]),
        ("is_secretary=0&is_active=1", ["Calendar assistant"]),
        ("is_active=", ["Calendar assistant", "Old", "Secretary"]),
    ],
)
def test_it_filters_assistants(reader, secretary, calendar_assistant, query, names):
    Assistant.objects.create(name="Old", model="m", is_active=False)
    results = reader.get(f"/api/v1/assistants/?{query}").json()["results"]
    assert [a["name"] for a in results] == names


@pytest.mark.parametrize("query", ["is_active=maybe", "is_secretary=yes please", "is_active=2"])
def test_an_invalid_filter_is_400_not_ignored(reader, query):
    response = reader.get(f"/api/v1/assistants/?{query}")
    assert response.status_code == 400
    assert response.json()[query.split("=")[0]] == ["Must be true or false."]


def test_it_pages_with_page_and_page_size(reader):
    Assistant.objects.bulk_create(Assistant(name=f"a{i:03}", model="m") for i in range(120))

    first = reader.get("/api/v1/assistants/").json()
    assert first["count"] == 120 and len(first["results"]) == 50
    assert "page=2" in first["next"]

    page = reader.get("/api/v1/assistants/?page=3&page_size=7").json()
    assert [a["name"] for a in page["results"]] == [f"a{i:03}" for i in range(14, 21)]

    assert len(reader.get("/api/v1/assistants/?page_size=100000").json()["results"]) == 120


def test_page_size_is_at_most_500(reader):
    Assistant.objects.bulk_create(Assistant(name=f"a{i:03}", model="m") for i in range(510))
    assert len(reader.get("/api/v1/assistants/?page_size=1000").json()["results"]) == 500


def test_a_page_past_the_end_is_404(reader, secretary):
    assert reader.get("/api/v1/assistants/?page=9").status_code == 404
    assert reader.get("/api/v1/assistants/?page=abc").status_code == 404


def test_detail_shows_linked_tools_with_link_state(reader, secretary, weather_tool):
    link(secretary, weather_tool, is_active=False)

    response = reader.get(f"/api/v1/assistants/{secretary.id}/")

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Secretary"
    assert len(body["tools"]) == 1
    assert body["tools"][0]["tool"]["name"] == "get_weather"
    assert body["tools"][0]["tool"]["input_schema"] == weather_tool.input_schema
    assert body["tools"][0]["link"]["is_active"] is False


def test_tools_endpoint_lists_the_linked_tools_by_name(reader, secretary, weather_tool):
    from tools.models import Tool

    link(secretary, Tool.objects.create(name="a_time", tool_type="time"))
    link(secretary, weather_tool)
    Tool.objects.create(name="unlinked", tool_type="time")

    body = reader.get(f"/api/v1/assistants/{secretary.id}/tools/").json()

    assert body["count"] == 2
    assert [item["tool"]["name"] for item in body["results"]] == ["a_time", "get_weather"]


def test_unknown_assistants_are_404(reader):
    missing = "00000000-0000-0000-0000-000000000000"
    for url in [f"/api/v1/assistants/{missing}/", f"/api/v1/assistants/{missing}/tools/"]:
        response = reader.get(url)
        assert response.status_code == 404
        assert "detail" in response.json()


def test_it_creates_an_assistant(writer):
    response = writer.post(
        "/api/v1/assistants/",
        assistant_payload(name="  Writer  ", instructions="  keep my spaces\n"),
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    stored = Assistant.objects.get()
    assert body["id"] == str(stored.id)
    assert stored.name == "Writer"
    assert stored.instructions == "  keep my spaces\n"
    assert body["openai_assistant_id"] is None and body["tools"] == []


def test_it_creates_an_openai_api_assistant(writer):
    body = {"name": "OA", "assistant_type": "openai_api", "openai_assistant_id": "asst_1"}
    response = writer.post("/api/v1/assistants/", body, format="json")
    assert response.status_code == 201
    assert response.json()["model"] == ""


def test_put_replaces_every_field(writer, secretary):
    response = writer.put(
        f"/api/v1/assistants/{secretary.id}/",
        {"name": "Renamed", "model": "gpt-4.1"},
        format="json",
    )

    assert response.status_code == 200
    secretary.refresh_from_db()
    assert (secretary.name, secretary.model, secretary.instructions) == ("Renamed", "gpt-4.1", "")
    assert secretary.is_secretary is False  # omitted: back to the default


def test_put_needs_the_required_fields(writer, secretary):
    response = writer.put(f"/api/v1/assistants/{secretary.id}/", {"model": "m"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["name"]


def test_patch_changes_only_what_it_names(writer, secretary):
    response = writer.patch(
        f"/api/v1/assistants/{secretary.id}/", {"instructions": "Short."}, format="json"
    )
    assert response.status_code == 200
    secretary.refresh_from_db()
    assert (secretary.instructions, secretary.is_secretary) == ("Short.", True)


def test_output_echoed_back_is_accepted(writer, secretary):
    current = writer.get(f"/api/v1/assistants/{secretary.id}/").json()
    response = writer.put(f"/api/v1/assistants/{secretary.id}/", current, format="json")
    assert response.status_code == 200


def test_unknown_fields_are_refused(writer, secretary):
    response = writer.patch(
        f"/api/v1/assistants/{secretary.id}/", {"is_activ": False}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"is_activ": ["Unknown field."]}


def test_delete_removes_the_assistant_with_its_links_and_threads(writer, secretary, weather_tool):
    link(secretary, weather_tool)
    UserAssistantThread.objects.create(user_id="1", assistant=secretary, thread_id="t")

    response = writer.delete(f"/api/v1/assistants/{secretary.id}/")

    assert response.status_code == 204
    assert not Assistant.objects.exists()
    assert not AssistantToolLink.objects.exists()
    assert not UserAssistantThread.objects.exists()


def test_writes_to_unknown_assistants_are_404(writer):
    missing = "00000000-0000-0000-0000-000000000000"
    url = f"/api/v1/assistants/{missing}/"
    assert writer.patch(url, {"model": "m"}, format="json").status_code == 404
    assert writer.put(url, assistant_payload(), format="json").status_code == 404
    assert writer.delete(url).status_code == 404
