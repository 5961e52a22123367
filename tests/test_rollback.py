"""POST /api/v1/rollback/: the live config becomes the state at X as one revision (source
`rollback`) through the import's path; rows created after X kept or pruned; a target that breaks
a rule is 409 with nothing changed; rollbacks and edits serialize."""

import threading

import pytest
from django.db import connection

from assistants.models import Assistant
from assistants.services import assistant_update
from config_backend import transfer
from config_backend.history.services import rollback
from core.models import Revision
from core.store import committed_counter
from tests.factories import key_client, link, staff_client
from threads.models import UserAssistantThread
from tools.models import Tool

pytestmark = pytest.mark.django_db(transaction=True)


def export_bytes() -> bytes:
    return transfer.config_to_bytes(transfer.export_config(include_threads=False))


@pytest.fixture
def history(secretary, weather_tool, calendar_assistant):
    """A config at revision `history.at` (exported as `history.export`), then changed: the
    secretary edited, get_weather deleted, a tool and an assistant created."""
    link(secretary, weather_tool)

    class History:
        at = committed_counter()
        export = export_bytes()

    secretary.instructions = "Changed."
    secretary.save()
    weather_tool.assistant_links.get().delete()
    weather_tool.delete()
    History.new_tool = Tool.objects.create(name="get_time", tool_type="time")
    History.new_assistant = Assistant.objects.create(name="Newcomer", model="m")
    return History


def test_rollback_then_export_equals_the_export_taken_then_byte_for_byte(writer, history):
    response = writer.post(
        "/api/v1/rollback/", {"to": history.at, "message": "undo", "prune": True}, format="json"
    )

    assert response.status_code == 200, response.content
    assert export_bytes() == history.export
    body = response.json()
    assert body["revision"] == committed_counter()
    assert body["kept"] == []
    assert {(row["entity"], row["name"]) for row in body["deleted"]} == {
        ("assistant", "Newcomer"),
        ("tool", "get_time"),
    }
    revision = Revision.objects.get(number=body["revision"])
    assert (revision.source, revision.author, revision.message) == (
        "rollback",
        "test write",
        "undo",
    )
    assert Revision.objects.filter(number__gt=history.at, source="rollback").count() == 1


def test_without_prune_rows_created_later_are_kept_and_listed(writer, history):
    response = writer.post("/api/v1/rollback/", {"to": history.at}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["deleted"] == []
    assert {row["name"] for row in body["kept"]} == {"Newcomer", "get_time"}
    assert Tool.objects.filter(name="get_time").exists()
    assert Assistant.objects.get(name="Secretary").instructions == "Help the user."
    assert Tool.objects.filter(name="get_weather").exists()


def test_pruning_deletes_the_threads_of_assistants_created_later(writer, history):
    UserAssistantThread.objects.create(
        user_id="42", assistant=history.new_assistant, thread_id="thread_1"
    )
    response = writer.post("/api/v1/rollback/", {"to": history.at, "prune": True}, format="json")

    assert response.status_code == 200
    assert not UserAssistantThread.objects.exists()


def test_the_change_note_header_is_the_message(writer, history):
    response = writer.post(
        "/api/v1/rollback/", {"to": history.at}, format="json", HTTP_X_CHANGE_NOTE="bad edit"
    )
    assert Revision.objects.get(number=response.json()["revision"]).message == "bad edit"


def test_a_rollback_to_the_live_state_changes_nothing(writer, history):
    before = Revision.objects.count()
    response = writer.post("/api/v1/rollback/", {"to": committed_counter()}, format="json")

    assert response.status_code == 200 and response.json()["revision"] is None
    assert Revision.objects.count() == before


def test_a_target_that_breaks_a_rule_today_is_409_with_the_reasons_and_changes_nothing(
    writer, secretary
):
    # At X the secretary is the secretary; later it steps down for a new assistant, which a
    # rollback without prune keeps: two secretaries.
    at = committed_counter()
    secretary.is_secretary = False
    secretary.save()
    Assistant.objects.create(name="Boss", model="m", is_secretary=True)
    before, revisions = export_bytes(), Revision.objects.count()

    response = writer.post("/api/v1/rollback/", {"to": at}, format="json")

    assert response.status_code == 409, response.content
    body = response.json()
    assert body["reasons"] and any("secretary" in reason for reason in body["reasons"])
    assert "nothing was changed" in body["detail"]
    assert export_bytes() == before and Revision.objects.count() == revisions
    pruned = writer.post("/api/v1/rollback/", {"to": at, "prune": True}, format="json")
    assert pruned.status_code == 200 and pruned.json()["deleted"][0]["name"] == "Boss"


def test_an_unknown_target_is_404_and_a_malformed_one_400_naming_to(writer, secretary):
    assert writer.post("/api/v1/rollback/", {"to": 99999}, format="json").status_code == 404
    response = writer.post("/api/v1/rollback/", {"to": "yesterday"}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["to"]
    response = writer.post("/api/v1/rollback/", {}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["to"]


def test_a_read_key_may_not_roll_back(reader, history):
    assert reader.post("/api/v1/rollback/", {"to": history.at}, format="json").status_code == 403


def test_staff_need_every_config_permission_to_roll_back(history):
    partial = staff_client("assistants.change_assistant", "tools.change_tool")
    assert partial.post("/api/v1/rollback/", {"to": history.at}, format="json").status_code == 403
    full = staff_client(
        *(
            f"{app}.{action}_{model}"
            for app, model in (
                ("assistants", "assistant"),
                ("tools", "tool"),
                ("tools", "assistanttoollink"),
                ("snippets", "snippet"),
            )
            for action in ("add", "change", "delete")
        )
    )
    response = full.post("/api/v1/rollback/", {"to": history.at}, format="json")
    assert response.status_code == 200, response.content
    assert Revision.objects.get(number=response.json()["revision"]).source == "rollback"


def _race(*jobs):
    """Run the jobs at once, each in its own thread and database connection."""
    barrier = threading.Barrier(len(jobs))
    errors = []

    def run(job):
        try:
            barrier.wait()
            job()
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def test_two_racing_rollbacks_serialize_and_leave_exactly_one_target(secretary, weather_tool):
    first = committed_counter()
    first_export = export_bytes()
    link(secretary, weather_tool)
    secretary.instructions = "Second."
    secretary.save()
    second = committed_counter()
    second_export = export_bytes()
    Tool.objects.create(name="get_time", tool_type="time")

    for _ in range(3):
        before = committed_counter()
        _race(lambda: rollback(to=first, prune=True), lambda: rollback(to=second, prune=True))
        assert export_bytes() in (first_export, second_export)
        made = Revision.objects.filter(number__gt=before, source="rollback").count()
        assert made in (1, 2)  # the later one is a no-op when it meets its own target


def test_a_rollback_racing_an_edit_is_never_half_applied(secretary, weather_tool):
    link(secretary, weather_tool)
    at = committed_counter()
    at_export = export_bytes()
    secretary.instructions = "Later."
    secretary.model = "gpt-4o"
    secretary.save()

    def edit():
        assistant_update(assistant=Assistant.objects.get(pk=secretary.pk), name="Renamed")

    _race(lambda: rollback(to=at), edit)

    row = Assistant.objects.get(pk=secretary.pk)
    if row.name == "Renamed":  # the edit came second, on top of the rolled back state
        assert (row.instructions, row.model) == ("Help the user.", "gpt-4o-mini")
    else:  # the rollback came second: exactly the state at `at`
        assert export_bytes() == at_export
    assert key_client("read").get("/api/v1/revisions/").json()["results"][0]["source"] in (
        "rollback",
        "command",
    )
