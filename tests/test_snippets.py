"""Snippets: shared prompt fragments that instructions include with `{{> name }}`
(docs/contract.md "The whole agent in the config"): the API, rule 12 (an include names an
active snippet, no cycles, expanded within MAX_INSTRUCTIONS_BYTES) and rule 7 (what is
included can't be deleted or deactivated) the same in the API, the admin and the import, the
resolved config with includes expanded at a fixed query cost, and the history."""

import json
import threading
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from assistants.models import Assistant
from assistants.services import assistant_update
from config_backend import transfer
from config_backend.history.labels import label_move
from core.models import Revision
from snippets.models import Snippet
from snippets.services import snippet_update
from tests.factories import (
    assistant_form,
    assistant_including_snippets,
    concurrently,
    import_error_lines,
    key_client,
    session,
    staff_user,
    write_config_file,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def writer():
    return key_client("write")


@pytest.fixture
def included():
    """tone ← greeting ← Secretary's instructions; `spare` is included by nothing."""
    tone = Snippet.objects.create(name="tone", text="Be brief, {{ user_name }}.")
    greeting = Snippet.objects.create(name="greeting", text="Hello! {{> tone }}")
    spare = Snippet.objects.create(name="spare", text="Unused.")
    secretary = Assistant.objects.create(
        name="Secretary",
        model="m",
        is_secretary=True,
        instructions="Start. {{> greeting }} End.",
        # Rule 11: the placeholder `tone` brings in is a declared variable of the includer.
        variables=[
            {
                "name": "user_name",
                "type": "string",
                "required": False,
                "default": None,
                "description": "",
            }
        ],
    )
    return {"tone": tone, "greeting": greeting, "spare": spare, "secretary": secretary}


# --- the API -----------------------------------------------------------------------------------


def test_a_snippet_is_created_listed_changed_and_deleted_through_the_api(writer):
    created = writer.post("/api/v1/snippets/", {"name": "tone", "text": "Be brief."}, format="json")
    assert created.status_code == 201, created.json()
    snippet_id = created.json()["id"]
    assert created.json()["is_active"] is True

    listed = writer.get("/api/v1/snippets/").json()
    assert [row["name"] for row in listed["results"]] == ["tone"]

    changed = writer.patch(f"/api/v1/snippets/{snippet_id}/", {"text": "Be kind."}, format="json")
    assert changed.status_code == 200
    assert Snippet.objects.get(pk=snippet_id).text == "Be kind."

    assert writer.delete(f"/api/v1/snippets/{snippet_id}/").status_code == 204
    assert not Snippet.objects.exists()


def test_a_read_key_may_list_snippets_but_not_write_them():
    reader = key_client("read")

    assert reader.get("/api/v1/snippets/").status_code == 200
    refused = reader.post("/api/v1/snippets/", {"name": "tone"}, format="json")
    assert refused.status_code == 403
    assert not Snippet.objects.exists()


@pytest.mark.parametrize("name", ["Tone", "1tone", "tone!", "tone\n", "", "t" * 65])
def test_a_snippet_name_outside_the_grammar_is_a_400_naming_the_field(writer, name):
    response = writer.post("/api/v1/snippets/", {"name": name}, format="json")

    assert response.status_code == 400
    assert "name" in response.json()
    assert not Snippet.objects.exists()


def test_an_include_of_a_missing_snippet_is_refused_for_an_assistant_and_for_a_snippet(writer):
    assistant = writer.post(
        "/api/v1/assistants/",
        {"name": "A", "model": "m", "instructions": "{{> nowhere }}"},
        format="json",
    )
    snippet = writer.post(
        "/api/v1/snippets/", {"name": "tone", "text": "{{> nowhere }}"}, format="json"
    )

    assert assistant.status_code == 400
    assert "“nowhere”, which is no active snippet" in assistant.json()["instructions"][0]
    assert snippet.status_code == 400
    assert "“nowhere”, which is no active snippet" in snippet.json()["text"][0]
    assert not Assistant.objects.exists() and not Snippet.objects.exists()


def test_an_include_of_an_inactive_snippet_is_refused(writer):
    Snippet.objects.create(name="old", text="Old.", is_active=False)

    response = writer.post(
        "/api/v1/assistants/",
        {"name": "A", "model": "m", "instructions": "{{>old}}"},
        format="json",
    )

    assert response.status_code == 400
    assert "“old”, which is no active snippet" in response.json()["instructions"][0]


def test_an_include_cycle_is_refused_naming_the_cycle(writer, included):
    response = writer.patch(
        f"/api/v1/snippets/{included['tone'].id}/", {"text": "{{> greeting }}"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["text"] == ["include cycle: tone → greeting → tone"]
    assert Snippet.objects.get(name="tone").text == "Be brief, {{ user_name }}."


def test_a_snippet_including_itself_is_refused(writer):
    response = writer.post("/api/v1/snippets/", {"name": "me", "text": "{{> me }}"}, format="json")

    assert response.status_code == 400
    assert response.json()["text"] == ["include cycle: me → me"]


def test_a_snippet_edit_that_makes_an_includer_too_long_once_expanded_is_refused(
    writer, included, settings
):
    settings.MAX_INSTRUCTIONS_BYTES = 200

    response = writer.patch(
        f"/api/v1/snippets/{included['tone'].id}/", {"text": "x" * 190}, format="json"
    )

    assert response.status_code == 400
    message = " ".join(response.json()["text"])
    assert "assistant “Secretary” includes it" in message and "exceed 200 bytes" in message
    assert Snippet.objects.get(name="tone").text == "Be brief, {{ user_name }}."


def test_instructions_too_long_once_expanded_are_refused(writer, settings):
    settings.MAX_INSTRUCTIONS_BYTES = 100
    Snippet.objects.create(name="long", text="y" * 80)

    response = writer.post(
        "/api/v1/assistants/",
        {"name": "A", "model": "m", "instructions": "z" * 30 + "{{> long }}"},
        format="json",
    )

    assert response.status_code == 400
    assert "exceed 100 bytes" in response.json()["instructions"][0]


def test_deleting_an_included_snippet_is_refused_listing_what_includes_it(writer, included):
    response = writer.delete(f"/api/v1/snippets/{included['tone'].id}/")

    assert response.status_code == 409
    detail = json.dumps(response.json(), ensure_ascii=False)
    # Directly (greeting) and through another snippet (Secretary, via greeting).
    assert "assistant “Secretary” includes it" in detail
    assert "snippet “greeting” includes it" in detail
    assert Snippet.objects.filter(name="tone").exists()


def test_deactivating_or_renaming_an_included_snippet_is_refused_listing_what_includes_it(
    writer, included
):
    url = f"/api/v1/snippets/{included['tone'].id}/"
    deactivated = writer.patch(url, {"is_active": False}, format="json")
    renamed = writer.patch(url, {"name": "voice"}, format="json")

    assert deactivated.status_code == 400
    assert deactivated.json()["is_active"] == [
        "“tone” is still included: assistant “Secretary” includes it; "
        "snippet “greeting” includes it."
    ]
    assert renamed.status_code == 400 and "name" in renamed.json()
    assert Snippet.objects.get(pk=included["tone"].pk).is_active


def test_a_snippet_nothing_includes_may_be_deactivated_and_deleted(writer, included):
    url = f"/api/v1/snippets/{included['spare'].id}/"

    assert writer.patch(url, {"is_active": False}, format="json").status_code == 200
    assert writer.delete(url).status_code == 204


# --- the resolved config -----------------------------------------------------------------------


def test_the_resolved_config_has_every_include_expanded_and_the_placeholders_left(included):
    reader = key_client("read")

    config = reader.get(f"/api/v1/assistants/{included['secretary'].id}/config/").json()
    bundle = reader.get("/api/v1/config/").json()

    expected = "Start. Hello! Be brief, {{ user_name }}. End."
    assert config["instructions"] == expected
    assert bundle["assistants"][0]["instructions"] == expected


def test_a_snippet_edit_reaches_the_config_of_the_assistants_including_it(writer, included):
    reader = key_client("read")
    url = f"/api/v1/assistants/{included['secretary'].id}/config/"
    before = reader.get(url)

    writer.patch(f"/api/v1/snippets/{included['tone'].id}/", {"text": "Be kind."}, format="json")
    after = reader.get(url)

    assert after["ETag"] != before["ETag"]
    assert after.json()["instructions"] == "Start. Hello! Be kind. End."


@pytest.mark.parametrize("snippets", [0, 10, 50])
def test_a_config_miss_costs_the_same_queries_however_many_snippets_are_included(
    snippets, django_assert_num_queries
):
    client = key_client("read")
    client.get("/api/v1/tools/")  # the key's record and hourly last-used write happen here
    assistant = assistant_including_snippets(snippets)
    url = f"/api/v1/assistants/{assistant.id}/config/"

    # revision, assistant, its links, the active snippets (one query for all of them)
    with django_assert_num_queries(4):
        config = client.get(url).json()

    assert config["instructions"].count("Part") == snippets
    assert "{{>" not in config["instructions"]


def test_a_config_hit_with_included_snippets_costs_no_query_and_one_round_trip(
    django_assert_num_queries, redis_commands
):
    client = key_client("read")
    url = f"/api/v1/assistants/{assistant_including_snippets(20).id}/config/"
    miss = client.get(url)
    redis_commands.clear()

    with django_assert_num_queries(0):
        hit = client.get(url)

    assert redis_commands == ["MGET"]
    assert hit.content == miss.content


# --- the history -------------------------------------------------------------------------------


# Each change its own revision: not inside the test's one transaction.
@pytest.mark.django_db(transaction=True)
def test_a_snippet_change_is_a_revision_whose_changes_name_the_snippet(writer, included):
    writer.patch(
        f"/api/v1/snippets/{included['tone'].id}/",
        {"text": "Be kind."},
        format="json",
        HTTP_X_CHANGE_NOTE="softer",
    )

    revision = writer.get("/api/v1/revisions/").json()["results"][0]
    detail = writer.get(f"/api/v1/revisions/{revision['revision']}/").json()
    assert revision["message"] == "softer" and revision["counts"]["snippets"] == 1
    assert detail["changes"] == [
        {
            "entity": "snippet",
            "id": str(included["tone"].id),
            "name": "tone",
            "action": "updated",
            "fields": {"text": {"old": "Be brief, {{ user_name }}.", "new": "Be kind."}},
        }
    ]
    # The assistant including it, through greeting, is the one whose config changed.
    assert Revision.objects.get(number=revision["revision"]).assistants == [
        str(included["secretary"].id)
    ]


# Each change its own revision: not inside the test's one transaction.
@pytest.mark.django_db(transaction=True)
def test_the_config_at_a_revision_or_label_expands_the_snippets_as_they_were_then(writer, included):
    reader = key_client("read")
    url = f"/api/v1/assistants/{included['secretary'].id}/config/"
    then = reader.get(url).json()["revision"]
    old_bundle = reader.get("/api/v1/config/").json()["revision"]
    snippet_update(snippet=Snippet.objects.get(name="tone"), text="Be kind.")

    label_move(name="staging", revision=old_bundle, author="test")
    at_then = reader.get(f"{url}?revision={old_bundle}").json()
    through_label = reader.get(f"{url}?label=staging").json()

    assert then <= old_bundle
    assert at_then["instructions"] == "Start. Hello! Be brief, {{ user_name }}. End."
    assert through_label["instructions"] == at_then["instructions"]
    assert reader.get(url).json()["instructions"] == "Start. Hello! Be kind. End."


# Each change its own revision: not inside the test's one transaction.
@pytest.mark.django_db(transaction=True)
def test_the_diff_and_a_rollback_cover_snippets(writer, included):
    start = writer.get("/api/v1/revisions/").json()["results"][0]["revision"]
    snippet_update(snippet=Snippet.objects.get(name="tone"), text="Be kind.")
    Snippet.objects.create(name="later", text="Added later.")

    diff = writer.get(f"/api/v1/diff/?from={start}&to=live").json()
    rolled = writer.post("/api/v1/rollback/", {"to": start, "prune": True}, format="json")

    assert {(c["entity"], c["name"], c["action"]) for c in diff["changes"]} == {
        ("snippet", "tone", "updated"),
        ("snippet", "later", "created"),
    }
    assert rolled.status_code == 200, rolled.json()
    assert [(row["entity"], row["name"]) for row in rolled.json()["deleted"]] == [
        ("snippet", "later")
    ]
    assert Snippet.objects.get(name="tone").text == "Be brief, {{ user_name }}."
    assert not Snippet.objects.filter(name="later").exists()
    config = key_client("read").get(f"/api/v1/assistants/{included['secretary'].id}/config/")
    assert config.json()["instructions"] == "Start. Hello! Be brief, {{ user_name }}. End."


# --- import and export -------------------------------------------------------------------------


def exported() -> dict:
    return transfer.export_config(include_threads=False)


def test_the_export_writes_the_snippets_in_format_version_3_and_round_trips(tmp_path, included):
    first = tmp_path / "first.json"
    call_command("export_config", "-o", str(first))
    document = json.loads(first.read_text())
    for model in (Assistant, Snippet):
        model.objects.all().delete()
    call_command("import_config", str(first), "--no-backup")
    second = tmp_path / "second.json"
    call_command("export_config", "-o", str(second))

    assert document["format_version"] == 3
    assert [(s["name"], s["text"]) for s in document["snippets"]] == [
        ("greeting", "Hello! {{> tone }}"),
        ("spare", "Unused."),
        ("tone", "Be brief, {{ user_name }}."),
    ]
    assert list(document["snippets"][0]) == ["id", "name", "text", "description", "is_active"]
    assert second.read_bytes() == first.read_bytes()


def test_a_version_2_file_still_imports_and_leaves_the_snippets_as_they_are(tmp_path, included):
    document = {
        "format_version": 2,
        # (`spare`: a version 2 file declares no variables, so it includes no placeholder)
        "assistants": [{"name": "Plain", "model": "m", "instructions": "{{> spare }}"}],
        "tools": [],
    }

    call_command("import_config", write_config_file(tmp_path, document), "--no-backup", "--prune")

    assert set(Snippet.objects.values_list("name", flat=True)) == {"tone", "greeting", "spare"}
    assert Assistant.objects.get().name == "Plain"


def test_a_version_2_file_with_snippets_is_refused_naming_the_key(tmp_path):
    document = {"format_version": 2, "assistants": [], "tools": [], "snippets": []}

    errors = import_error_lines(write_config_file(tmp_path, document))

    assert errors == [
        "/snippets: unknown key in format_version 2 (it is in format_version 3: set that)"
    ]


def test_import_errors_in_snippets_name_their_place_in_the_file(tmp_path):
    document = {
        "format_version": 3,
        "assistants": [{"name": "A", "model": "m", "instructions": "{{> missing }}"}],
        "tools": [],
        "snippets": [
            {"name": "a", "text": "{{> b }}"},
            {"name": "b", "text": "{{> a }}"},
            {"name": "c", "text": "broken {{ here"},
            {"name": "Bad"},
        ],
    }

    errors = import_error_lines(write_config_file(tmp_path, document))

    assert "/snippets/0/text: include cycle: a → b → a" in errors
    assert "/snippets/1/text: include cycle: b → a → b" in errors
    assert any(
        line.startswith("/snippets/2/text: snippet “c”: template syntax error at character 7")
        for line in errors
    )
    assert any(line.startswith("/snippets/3/name: ") for line in errors)
    assert (
        "/assistants/0/instructions: the template includes “missing”, which is no active snippet"
        in errors
    )
    assert not Snippet.objects.exists()


def test_pruning_a_snippet_something_still_includes_is_refused(tmp_path, included):
    document = exported()
    document["snippets"] = [s for s in document["snippets"] if s["name"] != "tone"]

    errors = import_error_lines(write_config_file(tmp_path, document), "--prune")

    assert errors == [
        "/snippets/0/text: snippet “greeting” includes “tone”, which is no active snippet",
        "/assistants/0/instructions: snippet “greeting” includes “tone”, which is no active "
        "snippet",
    ]
    assert Snippet.objects.filter(name="tone").exists()


def test_pruning_deletes_the_snippets_a_version_3_file_leaves_out(tmp_path, included):
    document = exported()
    document["snippets"] = [s for s in document["snippets"] if s["name"] != "spare"]

    call_command("import_config", write_config_file(tmp_path, document), "--no-backup", "--prune")

    assert set(Snippet.objects.values_list("name", flat=True)) == {"tone", "greeting"}


def test_an_import_renaming_and_swapping_snippet_names_works(tmp_path):
    Snippet.objects.create(name="one", text="1")
    Snippet.objects.create(name="two", text="2")
    document = exported()
    for entry in document["snippets"]:
        entry["name"] = {"one": "two", "two": "one"}[entry["name"]]

    call_command("import_config", write_config_file(tmp_path, document), "--no-backup")

    assert dict(Snippet.objects.values_list("name", "text")) == {"two": "1", "one": "2"}


# --- the admin ---------------------------------------------------------------------------------


@pytest.fixture
def admin_browser():
    return session(staff_user(superuser=True))


# Each change its own revision: not inside the test's one transaction.
@pytest.mark.django_db(transaction=True)
def test_the_admin_edits_a_snippet_and_shows_its_history_and_what_includes_it(
    admin_browser, included
):
    url = f"/admin/snippets/snippet/{included['tone'].id}/change/"
    page = admin_browser.get(url)
    saved = admin_browser.post(
        url,
        {
            "name": "tone",
            "text": "Be kind.",
            "description": "",
            "is_active": "on",
            "change_note": "softer",
        },
    )
    history = admin_browser.get(f"/admin/snippets/snippet/{included['tone'].id}/history/")

    assert page.status_code == 200
    assert "assistant “Secretary” includes it" in page.content.decode()
    assert saved.status_code == 302
    assert Snippet.objects.get(name="tone").text == "Be kind."
    assert "softer" in history.content.decode()


def test_the_admin_refuses_to_deactivate_or_delete_an_included_snippet(admin_browser, included):
    url = f"/admin/snippets/snippet/{included['tone'].id}/"
    deactivated = admin_browser.post(
        url + "change/", {"name": "tone", "text": included["tone"].text, "description": ""}
    )
    delete_page = admin_browser.get(url + "delete/")
    deleted = admin_browser.post(url + "delete/", {"post": "yes"})

    assert deactivated.status_code == 200
    assert "is still included" in deactivated.content.decode()
    assert "assistant “Secretary” includes it" in delete_page.content.decode()
    assert deleted.status_code in (200, 403)
    assert Snippet.objects.get(pk=included["tone"].pk).is_active


def test_the_admin_refuses_an_assistant_including_a_missing_snippet(admin_browser):
    response = admin_browser.post(
        "/admin/assistants/assistant/add/", assistant_form(instructions="{{> nowhere }}")
    )

    assert response.status_code == 200
    assert "which is no active snippet" in response.content.decode()
    assert not Assistant.objects.exists()


def test_an_assistant_edit_adding_an_include_is_checked_against_the_active_snippets(included):
    spare = Snippet.objects.get(name="spare")
    spare.is_active = False
    spare.save()
    notes = Assistant.objects.create(name="Notes", model="m")

    with pytest.raises(ValidationError, match="no active snippet"):
        assistant_update(assistant=notes, instructions="{{> spare }}")


def test_check_config_reports_an_include_of_a_snippet_deactivated_behind_its_back(included):
    # A bare update() skips every rule, as SQL would.
    Snippet.objects.filter(name="tone").update(is_active=False)
    out = StringIO()

    with pytest.raises(CommandError):
        call_command("check_config", stdout=out, stderr=out)

    assert (
        'snippet "greeting" text: snippet “greeting” includes “tone”, which is no active snippet'
        in out.getvalue()
    )


@pytest.mark.django_db(transaction=True)
def test_a_deactivation_racing_a_new_include_of_the_same_snippet_never_both_commit():
    """Rule 12 against rule 7 at once: the include graph's lock lets one of them see the
    other's commit, so no assistant is left including an inactive snippet."""
    Snippet.objects.create(name="tone", text="Be brief.")
    notes = Assistant.objects.create(name="Notes", model="m")
    jobs = iter(
        [
            lambda: snippet_update(snippet=Snippet.objects.get(name="tone"), is_active=False),
            lambda: assistant_update(
                assistant=Assistant.objects.get(pk=notes.pk), instructions="{{> tone }}"
            ),
        ]
    )
    lock = threading.Lock()

    def next_job():
        with lock:
            job = next(jobs)
        return job()

    results = concurrently(2, next_job)

    refused = [result for result in results if isinstance(result, ValidationError)]
    assert len(refused) == 1, results
    tone = Snippet.objects.get(name="tone")
    includes = "{{> tone }}" in Assistant.objects.get(pk=notes.pk).instructions
    assert tone.is_active == includes
