"""config_log, config_diff, config_rollback and export_config --at."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from assistants.models import Assistant
from core.changes import ChangeContext, change_context
from core.models import Revision
from core.store import committed_counter

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_config_log_prints_one_line_per_revision_newest_first(secretary, calendar_assistant):
    with change_context(ChangeContext(source="api", author="ops key", message="tidy up")):
        secretary.instructions = "New."
        secretary.save()

    lines = run("config_log", "--limit", "2").splitlines()

    assert len(lines) == 2
    assert lines[0].startswith(f"{committed_counter()}  ")
    assert "ops key  api  (assistants 1, tools 0, links 0)  tidy up" in lines[0]
    assert "Calendar assistant" not in lines[0]


def test_config_diff_prints_each_field_old_to_new(secretary):
    start = committed_counter()
    secretary.instructions = "Be brief."
    secretary.save()

    out = run("config_diff", str(start), "live")

    assert "assistant “Secretary” updated" in out
    assert 'instructions: "Help the user." → "Be brief."' in out


@pytest.mark.parametrize("point", ["99999", "someday"])
def test_config_diff_exits_1_naming_an_unknown_or_malformed_point(secretary, point):
    with pytest.raises(CommandError, match=point):
        run("config_diff", point, "live")


def test_config_rollback_prints_the_new_revision(secretary):
    at = committed_counter()
    secretary.instructions = "Oops."
    secretary.save()
    Assistant.objects.create(name="Later", model="m")

    out = run("config_rollback", str(at), "--message", "undo oops")

    revision = Revision.objects.get(number=committed_counter())
    assert f"Rolled back to {at} as revision {revision.number}." in out
    assert "Kept assistant created after" in out and "Later" in out
    assert (revision.source, revision.message) == ("rollback", "undo oops")
    assert Assistant.objects.get(name="Secretary").instructions == "Help the user."


def test_config_rollback_with_prune_deletes_what_came_later(secretary):
    at = committed_counter()
    Assistant.objects.create(name="Later", model="m")

    out = run("config_rollback", str(at), "--prune")

    assert "Deleted assistant created after" in out
    assert not Assistant.objects.filter(name="Later").exists()


def test_config_rollback_exits_1_naming_the_reasons_on_refusal(secretary):
    at = committed_counter()
    secretary.is_secretary = False
    secretary.save()
    Assistant.objects.create(name="Boss", model="m", is_secretary=True)
    err = StringIO()

    with pytest.raises(CommandError, match="refused"):
        call_command("config_rollback", str(at), stdout=StringIO(), stderr=err)

    assert "secretary" in err.getvalue()
    assert Assistant.objects.get(name="Boss").is_secretary


def test_export_at_a_revision_equals_the_export_taken_then_byte_for_byte(
    secretary, weather_tool, calendar_assistant
):
    secretary.tool_links.create(tool=weather_tool)
    at = committed_counter()
    taken_then = run("export_config")
    secretary.delete()
    weather_tool.description = "Changed."
    weather_tool.save()
    calendar_assistant.name = "Diary"
    calendar_assistant.save()

    assert run("export_config", "--at", str(at)) == taken_then
    assert run("export_config") != taken_then


def test_export_at_an_unknown_revision_exits_1(secretary):
    with pytest.raises(CommandError, match="99999"):
        run("export_config", "--at", "99999")
