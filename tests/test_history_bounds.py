"""A large history costs what its pages show, not what it stores: the admin's History and
revision pages show the start of each long field, with a link to a page showing it whole; the
API cuts long values and marks them `"truncated": true` unless asked `?full=1`; the History
page shows 20 revisions a page. What is stored, and what rollback computes, stays whole.

Transactional: each edit commits its own revision, as in production.
"""

import json

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import reverse

from assistants.models import Assistant
from config_backend.history.selectors import diff
from core.models import Revision, RevisionChange
from core.store import committed_counter
from tests.factories import key_client, session, staff_user
from tools.models import Tool

pytestmark = pytest.mark.django_db(transaction=True)

# 1,500 lines of 100 characters: 150 KB, within MAX_INSTRUCTIONS_BYTES.
OLD_TEXT = "\n".join(f"old line {n:04d} " + "o" * 85 for n in range(1500))
NEW_TEXT = "\n".join(f"new line {n:04d} " + "n" * 85 for n in range(1500))


def url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


@pytest.fixture
def root() -> Client:
    return session(User.objects.create_superuser("root"))


@pytest.fixture
def rewritten(secretary) -> Assistant:
    """The secretary, its instructions rewritten from OLD_TEXT to NEW_TEXT in two revisions."""
    for text in (OLD_TEXT, NEW_TEXT):
        edit(secretary, instructions=text)
    return secretary


def edit(assistant: Assistant, **fields) -> None:
    """Save a change of `assistant` as its own committed revision."""
    for name, value in fields.items():
        setattr(assistant, name, value)
    with transaction.atomic():
        assistant.save()


def newest_change(assistant: Assistant) -> RevisionChange:
    return RevisionChange.objects.filter(object_id=str(assistant.pk)).latest("revision__number")


def shown_instructions(page):
    """The instructions field of the newest revision as a History page shows it."""
    (field,) = [
        field
        for field in page.context["entries"][0].changes[0].fields
        if field.name == "instructions"
    ]
    return field


# --- the admin ---------------------------------------------------------------------------------


def test_the_history_page_shows_the_start_of_a_long_diff_says_what_it_cut_and_links_to_it_whole(
    root, rewritten
):
    page = root.get(url("assistants_assistant_history", rewritten.pk))

    field = shown_instructions(page)
    assert len(field.diff) == 200
    assert sum(len(line) for _, line in field.diff) <= 20_000
    assert "more characters of this diff" in field.cut and "are not shown here" in field.cut
    html = page.content.decode()
    assert "old line 0000" in html and "old line 1499" not in html and "new line 1499" not in html
    # Two revisions of 150 KB instructions each (created, then rewritten): two cut diffs.
    assert len(page.content) < 100_000
    change = newest_change(rewritten)
    whole_url = url("assistants_assistant_history_field", rewritten.pk, change.pk, "instructions")
    assert field.full_url == whole_url and f'href="{whole_url}"' in html

    whole = root.get(whole_url)
    assert whole.status_code == 200
    lines = [line for _, line in whole.context["field"].diff]
    assert "-old line 1499 " + "o" * 85 in lines and "+new line 1499 " + "n" * 85 in lines
    assert len(lines) == 3 + 3000  # the headers, every old line removed, every new one added


def test_one_long_line_is_cut_too(root, secretary):
    edit(secretary, instructions="x" * 200_000)

    field = shown_instructions(root.get(url("assistants_assistant_history", secretary.pk)))

    assert sum(len(line) for _, line in field.diff) == 20_000
    assert field.cut and field.full_url


def test_a_short_change_is_shown_whole_without_a_link(root, secretary):
    edit(secretary, instructions="Be brief.")

    field = shown_instructions(root.get(url("assistants_assistant_history", secretary.pk)))

    assert [line for _, line in field.diff][-2:] == ["-Help the user.", "+Be brief."]
    assert field.cut == "" and field.full_url == ""


def test_the_history_page_shows_20_revisions_a_page(root, secretary):
    for number in range(24):
        edit(secretary, instructions=f"Edit {number}.")

    first = root.get(url("assistants_assistant_history", secretary.pk))
    second = root.get(url("assistants_assistant_history", secretary.pk) + "?p=2")

    assert len(first.context["entries"]) == 20 and len(second.context["entries"]) == 5
    assert first.context["page_obj"].paginator.count == 25
    assert 'href="?p=2"' in first.content.decode()


def test_a_field_page_needs_the_history_page_permission_and_a_change_of_that_object(
    rewritten, calendar_assistant
):
    change = newest_change(rewritten)
    whole_url = url("assistants_assistant_history_field", rewritten.pk, change.pk, "instructions")
    assert session(staff_user("tools.view_tool")).get(whole_url).status_code == 403
    viewer = session(staff_user("assistants.view_assistant"))
    assert viewer.get(whole_url).status_code == 200

    other_object = url(
        "assistants_assistant_history_field", calendar_assistant.pk, change.pk, "instructions"
    )
    untouched_field = url("assistants_assistant_history_field", rewritten.pk, change.pk, "model")
    assert viewer.get(other_object).status_code == 404
    assert viewer.get(untouched_field).status_code == 404


def test_the_revision_page_cuts_a_long_field_and_links_to_its_page_with_view_revision(
    root, rewritten
):
    revision = Revision.objects.get(number=committed_counter())
    page = root.get(url("config_backend_revision_change", revision.pk))

    (field,) = [f for f in page.context["changes"][0].fields if f.name == "instructions"]
    assert len(field.diff) == 200 and field.cut
    change = newest_change(rewritten)
    whole_url = url("config_backend_revision_field", revision.pk, change.pk, "instructions")
    assert field.full_url == whole_url
    assert root.get(whole_url).status_code == 200
    assert session(staff_user("assistants.view_assistant")).get(whole_url).status_code == 403


def test_the_rollback_preview_cuts_a_long_field_and_says_where_to_see_it_whole(root, rewritten):
    first = Revision.objects.get(number=committed_counter() - 1)

    page = root.get(url("config_backend_revision_rollback", first.pk))

    (field,) = [f for f in page.context["changes"][0].fields if f.name == "instructions"]
    assert len(field.diff) == 200 and field.cut and not field.full_url
    assert "?full=1" in page.content.decode()
    # Only what is shown is cut: the diff the rollback applies holds both texts whole.
    (change,) = diff(None, first.number).changes
    assert change.fields["instructions"] == {"old": NEW_TEXT, "new": OLD_TEXT}


# --- the API -----------------------------------------------------------------------------------


def test_the_revision_api_cuts_long_values_and_marks_them_unless_asked_for_them_whole(rewritten):
    client = key_client("read")
    number = committed_counter()

    cut = client.get(f"/api/v1/revisions/{number}/").json()["changes"][0]["fields"]
    whole = client.get(f"/api/v1/revisions/{number}/?full=1").json()["changes"][0]["fields"]

    assert cut["instructions"] == {
        "old": OLD_TEXT[:4096],
        "new": NEW_TEXT[:4096],
        "truncated": True,
    }
    assert whole["instructions"] == {"old": OLD_TEXT, "new": NEW_TEXT}


def test_the_diff_api_cuts_long_values_objects_as_the_start_of_their_json(secretary):
    client = key_client("read")
    schema = {
        "type": "object",
        "properties": {f"p{n}": {"type": "string", "description": "d" * 50} for n in range(100)},
    }
    with transaction.atomic():
        Tool.objects.create(name="big", tool_type="time", input_schema=schema)
    edit(secretary, instructions="Short.")
    start = committed_counter() - 2

    cut = client.get(f"/api/v1/diff/?from={start}&to=live").json()["changes"]
    whole = client.get(f"/api/v1/diff/?from={start}&to=live&full=true").json()["changes"]

    by_name = {change["name"]: change["fields"] for change in cut}
    assert by_name["big"]["input_schema"] == {
        "old": None,
        "new": json.dumps(schema, ensure_ascii=False)[:4096],
        "truncated": True,
    }
    assert by_name["Secretary"]["instructions"] == {"old": "Help the user.", "new": "Short."}
    by_name = {change["name"]: change["fields"] for change in whole}
    assert by_name["big"]["input_schema"] == {"old": None, "new": schema}


@pytest.mark.parametrize("endpoint", ["/api/v1/revisions/1/", "/api/v1/diff/?from=1&to=live"])
def test_a_malformed_full_is_a_400_naming_it(secretary, endpoint):
    response = key_client("read").get(endpoint + ("&" if "?" in endpoint else "?") + "full=yes")

    assert response.status_code == 400
    assert response.json() == {"full": ["Must be true or false."]}
