"""import_config: validation with pointers, atomic upserts, --prune, --dry-run, backups, scale."""

import json
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from assistants.models import Assistant
from config_backend import transfer
from config_backend.transfer import apply as transfer_apply
from core.models import Revision
from core.store import committed_counter
from tests.factories import link, make_delegate_tool
from threads.models import UserAssistantThread
from tools.models import AssistantToolLink, Tool

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parent.parent / "demo" / "config.json"
SCHEMA = {"type": "object", "properties": {"request": {"type": "string"}}}


def write(tmp_path, document, name="config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def run_import(path, *args) -> str:
    out = StringIO()
    call_command("import_config", str(path), "--no-backup", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def import_errors(path, *args) -> list[str]:
    """The error lines of a failing import (after checking it failed and wrote nothing)."""
    before = exported()
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("import_config", str(path), *args, stdout=StringIO(), stderr=err)
    assert exported() == before
    return err.getvalue().splitlines()


def exported() -> bytes:
    return transfer.config_to_bytes(transfer.export_config(include_threads=True))


def assistant(name, **fields):
    return {"name": name, "model": "gpt-4o-mini", **fields}


def tool(name, tool_type="time", **fields):
    return {"name": name, "tool_type": tool_type, **fields}


def config(assistants=(), tools=(), **extra):
    return {"format_version": 1, "assistants": list(assistants), "tools": list(tools), **extra}


# --- importing ----------------------------------------------------------------------------------


def test_it_imports_the_demo_file():
    output = run_import(DEMO)

    assert "Assistants: 3 created, 0 updated, 0 unchanged, 0 deleted" in output
    assert "Tools: 10 created" in output
    assert "Links: 12 created" in output
    assert "Verified before commit" in output
    secretary = Assistant.objects.get(is_secretary=True, is_active=True)
    assert secretary.name == "Secretary"
    assert secretary.model == "gpt-4o-mini"
    assert set(secretary.tool_links.values_list("tool__name", flat=True)) == {
        "get_weather",
        "get_time",
        "ask_calendar_assistant",
        "ask_reminders_assistant",
    }
    ask = AssistantToolLink.objects.get(assistant=secretary, tool__name="ask_calendar_assistant")
    assert ask.sub_assistant.name == "Calendar assistant"
    assert (
        AssistantToolLink.objects.get(assistant=secretary, tool__name="get_time").sub_assistant
        is None
    )


def test_a_second_identical_run_changes_nothing_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_import(DEMO)
    before = exported()
    revision = committed_counter()

    out = StringIO()
    call_command("import_config", str(DEMO), stdout=out, stderr=StringIO())

    assert "no changes" in out.getvalue()
    assert "Assistants: 0 created, 0 updated, 3 unchanged, 0 deleted" in out.getvalue()
    assert "Links: 0 created, 0 updated, 12 unchanged, 0 deleted" in out.getvalue()
    assert exported() == before
    assert committed_counter() == revision
    assert not (tmp_path / "backups").exists()


def test_it_updates_by_id_and_keeps_the_id(tmp_path):
    existing = Assistant.objects.create(name="Old name", model="gpt-4o")
    run_import(write(tmp_path, config([assistant("New name", id=str(existing.pk))])))

    renamed = Assistant.objects.get(pk=existing.pk)
    assert renamed.name == "New name"
    assert renamed.model == "gpt-4o-mini"
    assert Assistant.objects.count() == 1


def test_a_new_row_keeps_the_id_the_file_gives(tmp_path):
    pk = uuid.uuid4()
    run_import(write(tmp_path, config(tools=[tool("get_time", id=str(pk).upper())])))
    assert Tool.objects.get(pk=pk).name == "get_time"


def test_it_matches_by_name_without_an_id(tmp_path, weather_tool):
    output = run_import(
        write(tmp_path, config(tools=[tool("get_weather", "weather", description="New.")]))
    )
    assert "Tools: 0 created, 1 updated" in output
    weather_tool.refresh_from_db()
    assert weather_tool.description == "New."
    assert weather_tool.input_schema == {"type": "object", "properties": {}}


def test_omitted_fields_take_the_model_defaults(tmp_path):
    run_import(write(tmp_path, config([{"name": "Bare", "model": "m"}], [tool("t")])))
    bare = Assistant.objects.get(name="Bare")
    assert (bare.is_secretary, bare.assistant_type, bare.instructions, bare.is_active) == (
        False,
        "llm",
        "",
        True,
    )
    assert bare.openai_assistant_id is None
    t = Tool.objects.get(name="t")
    assert (t.description, t.input_schema, t.assistant, t.is_active) == (
        "",
        {"type": "object", "properties": {}},
        None,
        True,
    )


def test_it_accepts_the_legacy_string_input_schema_and_stores_it_parsed(tmp_path):
    legacy = tool(
        "get_time", input_schema='{"type": "object", "properties": {"tz": {"type": "string"}}}'
    )
    run_import(write(tmp_path, config(tools=[legacy])))
    assert Tool.objects.get().input_schema == {
        "type": "object",
        "properties": {"tz": {"type": "string"}},
    }


def test_the_tools_list_is_the_whole_set_of_links(tmp_path, secretary, weather_tool):
    time_tool = Tool.objects.create(name="get_time", tool_type="time")
    link(secretary, weather_tool)
    document = config(
        [
            assistant(
                "Secretary", is_secretary=True, tools=[{"tool": "get_time", "is_active": False}]
            )
        ]
    )

    output = run_import(write(tmp_path, document))

    assert "Links: 1 created, 0 updated, 0 unchanged, 1 deleted" in output
    only = AssistantToolLink.objects.get()
    assert (only.tool, only.is_active) == (time_tool, False)
    assert Tool.objects.count() == 2  # tools the file leaves out stay without --prune


def test_links_follow_their_tools_new_delegate_even_for_assistants_not_in_the_file(
    tmp_path, secretary, calendar_assistant
):
    other = Assistant.objects.create(name="Other", model="m")
    ask = make_delegate_tool("ask", calendar_assistant)
    link(secretary, ask)
    document = config(tools=[tool("ask", "sub_assistant", input_schema=SCHEMA, assistant="Other")])

    output = run_import(write(tmp_path, document))

    assert "Links: 0 created, 1 updated" in output
    assert AssistantToolLink.objects.get().sub_assistant == other


def test_it_swaps_names_and_moves_the_secretary_in_one_import(tmp_path):
    a = Assistant.objects.create(name="A", model="m", is_secretary=True)
    b = Assistant.objects.create(name="B", model="m")
    document = config(
        [assistant("B", id=str(a.pk)), assistant("A", id=str(b.pk), is_secretary=True)]
    )

    run_import(write(tmp_path, document))

    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.name, a.is_secretary, b.name, b.is_secretary) == ("B", False, "A", True)


def test_it_imports_and_updates_threads(tmp_path, secretary):
    kept = UserAssistantThread.objects.create(user_id="7", assistant=secretary, thread_id="t7")
    document = config(
        [assistant("Secretary", is_secretary=True)],
        threads=[
            {
                "user_id": "42",
                "assistant": "Secretary",
                "thread_id": "thread_abc",
                "last_used": "2026-01-01T03:00:00+03:00",
            },
            {"user_id": "7", "assistant": "Secretary", "thread_id": "t7-new"},
        ],
    )

    output = run_import(write(tmp_path, document))

    assert "Threads: 1 created, 1 updated" in output
    new = UserAssistantThread.objects.get(user_id="42")
    assert new.thread_id == "thread_abc"
    assert new.last_used.isoformat() == "2026-01-01T00:00:00+00:00"
    kept_after = UserAssistantThread.objects.get(pk=kept.pk)
    assert kept_after.thread_id == "t7-new"
    assert kept_after.last_used == kept.last_used  # omitted: kept for an existing thread


def test_cyrillic_names_and_prompts_survive(tmp_path):
    document = config(
        [
            assistant(
                "Секретарь",
                is_secretary=True,
                instructions="Отвечай кратко и вежливо.",
                tools=["get_time"],
            )
        ],
        [tool("get_time", description="Текущее время в часовом поясе.")],
    )
    run_import(write(tmp_path, document))

    secretary = Assistant.objects.get()
    assert (secretary.name, secretary.instructions) == ("Секретарь", "Отвечай кратко и вежливо.")
    text = exported().decode()
    assert '"name": "Секретарь"' in text
    assert "Текущее время" in text


# --- atomicity ----------------------------------------------------------------------------------


def test_a_bad_row_at_the_end_leaves_the_database_exactly_as_before(tmp_path):
    run_import(DEMO)
    document = json.loads(DEMO.read_text())
    for entry in document["assistants"]:
        entry["instructions"] += " Changed."
    document["tools"].append(tool("broken", input_schema={"type": "object", "required": "x"}))

    errors = import_errors(write(tmp_path, document))

    assert errors == ["/tools/10/input_schema/required: 'x' is not of type 'array'"]


def test_a_failure_after_the_writes_rolls_everything_back(tmp_path, monkeypatch):
    run_import(DEMO)
    before = exported()
    document = json.loads(DEMO.read_text())
    document["tools"] = document["tools"][:9] + [tool("extra")]
    document["assistants"][0]["tools"] = ["extra"]

    def fail(final):
        raise transfer.ConfigVerificationError(["tools: simulated mismatch"])

    monkeypatch.setattr(transfer_apply, "verify", fail)
    with pytest.raises(CommandError, match="rolled back"):
        run_import(write(tmp_path, document), "--prune")
    assert exported() == before


def test_an_import_is_one_revision_listing_every_row_it_changed(tmp_path):
    before = Revision.objects.count()
    run_import(DEMO, "-m", "first load")

    revision = Revision.objects.get(number=committed_counter())
    assert Revision.objects.count() == before + 1
    assert (revision.source, revision.message) == ("import", "first load")
    assert revision.changes.filter(action="created").count() == revision.changes.count()
    assert revision.changes.filter(entity="assistant").count() == 3
    assert revision.changes.filter(entity="link").count() == 12
    run_import(DEMO)
    assert Revision.objects.count() == before + 1


# --- errors, each with its pointer --------------------------------------------------------------

ERROR_CASES = {
    "not an object": ([], ["/: [] is not of type 'object'"]),
    "wrong format version": (
        {"format_version": 4, "assistants": [], "tools": []},
        [
            "/format_version: must be 1, 2 or 3 (this program reads format versions 1, 2 and 3, "
            "and writes 3)"
        ],
    ),
    "missing tools": ({"format_version": 1, "assistants": []}, ["/tools: required, but missing"]),
    "unknown top-level key": (
        config(tool=[]),
        ["/tool: unknown key (allowed: format_version, assistants, tools, snippets, threads)"],
    ),
    "unknown key in a row": (
        config([assistant("A", colour="red")]),
        [
            "/assistants/0/colour: unknown key (allowed: id, name, is_secretary, assistant_type, "
            "model, instructions, openai_assistant_id, is_active, model_settings, output, "
            "variables, tools)"
        ],
    ),
    "wrong type": (
        config([assistant("A", is_active="yes")]),
        ["/assistants/0/is_active: 'yes' is not of type 'boolean'"],
    ),
    "missing required field": (
        config(tools=[{"name": "t"}]),
        ["/tools/0/tool_type: required, but missing"],
    ),
    "unknown tool type": (
        config(tools=[tool("t", "wether")]),
        [
            "/tools/0/tool_type: 'wether' is not one of "
            "['calendar', 'reminder', 'time', 'weather', 'sub_assistant']"
        ],
    ),
    "bad id": (config(tools=[tool("t", id="42")]), ["/tools/0/id: '42' is not a 'uuid'"]),
    "too long": (
        config([assistant("x" * 256)]),
        [f"/assistants/0/name: '{'x' * 256}' is too long"],
    ),
    "tool name format": (
        config(tools=[tool("get weather")]),
        [
            "/tools/0/name: Use 1 to 64 letters, digits, underscores or hyphens "
            "(it is the function name the LLM sees)."
        ],
    ),
    "duplicate names": (
        config(tools=[tool("t"), tool("t")]),
        ['/tools/1/name: duplicate name "t" (also at /tools/0)'],
    ),
    "duplicate ids": (
        config(
            [
                assistant("A", id="8f0c2b52-4f7e-4a55-9f3c-1d2e3f4a5b6c"),
                assistant("B", id="8f0c2b52-4f7e-4a55-9f3c-1d2e3f4a5b6c"),
            ]
        ),
        [
            "/assistants/1/id: duplicate id 8f0c2b52-4f7e-4a55-9f3c-1d2e3f4a5b6c "
            "(also at /assistants/0)"
        ],
    ),
    "invalid input schema": (
        config(
            tools=[
                tool(
                    "t", input_schema={"type": "object", "properties": {"city": {"type": "strin"}}}
                )
            ]
        ),
        None,  # checked below: the message comes from the metaschema
    ),
    "input schema not an object type": (
        config(tools=[tool("t", input_schema={"type": "string"})]),
        ['/tools/0/input_schema/type: the top-level type of a tool\'s arguments must be "object".'],
    ),
    "legacy input schema not JSON": (
        config(tools=[tool("t", input_schema="{type: object}")]),
        [
            "/tools/0/input_schema: not valid JSON (Expecting property name enclosed in double "
            "quotes at line 1 column 2)"
        ],
    ),
    "sub-assistant without delegate": (
        config(tools=[tool("ask", "sub_assistant")]),
        ["/tools/0/assistant: A sub-assistant tool must name the assistant it delegates to."],
    ),
    "delegate on another type": (
        config([assistant("A")], [tool("t", assistant="A")]),
        ["/tools/0/assistant: Only sub-assistant tools name a delegate assistant."],
    ),
    "unknown delegate": (
        config(tools=[tool("ask", "sub_assistant", assistant="Nobody")]),
        ['/tools/0/assistant: unknown assistant "Nobody"'],
    ),
    "unknown tool": (
        config([assistant("A", tools=["x"])]),
        ['/assistants/0/tools/0: unknown tool "x"'],
    ),
    "tool listed twice": (
        config([assistant("A", tools=["t", {"tool": "t"}])], [tool("t")]),
        ['/assistants/0/tools/1: tool "t" is listed twice (also at /assistants/0/tools/0)'],
    ),
    "self delegation": (
        config([assistant("A", tools=["ask_a"])], [tool("ask_a", "sub_assistant", assistant="A")]),
        ["/assistants/0/tools/0: This would create a delegation cycle: A → A."],
    ),
    "delegation cycle": (
        config(
            [assistant("A", tools=["ask_b"]), assistant("B", tools=["ask_a"])],
            [
                tool("ask_a", "sub_assistant", assistant="A"),
                tool("ask_b", "sub_assistant", assistant="B"),
            ],
        ),
        ["/assistants/0/tools/0: This would create a delegation cycle: A → B → A."],
    ),
    "two active secretaries": (
        config([assistant("A", is_secretary=True), assistant("B", is_secretary=True)]),
        [
            "/assistants/0/is_secretary: “B” is already the active secretary; there can be only "
            "one. Deactivate it or unset its secretary flag first.",
            "/assistants/1/is_secretary: “A” is already the active secretary; there can be only "
            "one. Deactivate it or unset its secretary flag first.",
        ],
    ),
    "llm without model": (
        config([{"name": "A"}]),
        ["/assistants/0/model: An LLM assistant needs a model."],
    ),
    "openai_api without id": (
        config([{"name": "A", "assistant_type": "openai_api", "openai_assistant_id": ""}]),
        [
            "/assistants/0/openai_assistant_id: An OpenAI Assistants API assistant needs an OpenAI "
            "assistant id."
        ],
    ),
    "thread of an unknown assistant": (
        config(threads=[{"user_id": "1", "assistant": "X", "thread_id": "t"}]),
        ['/threads/0/assistant: unknown assistant "X"'],
    ),
    "duplicate thread": (
        config(
            [assistant("A")],
            threads=[
                {"user_id": "1", "assistant": "A", "thread_id": "t"},
                {"user_id": "1", "assistant": "A", "thread_id": "u"},
            ],
        ),
        ['/threads/1: user "1" already has a thread with assistant "A" (/threads/0)'],
    ),
    "bad last_used": (
        config(
            [assistant("A")],
            threads=[
                {"user_id": "1", "assistant": "A", "thread_id": "t", "last_used": "yesterday"}
            ],
        ),
        [
            "/threads/0/last_used: not an ISO 8601 date-time with a time zone, "
            "e.g. 2026-01-01T00:00:00Z"
        ],
    ),
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_each_error_kind_is_reported_with_its_pointer(tmp_path, case):
    document, expected = ERROR_CASES[case]
    errors = import_errors(write(tmp_path, document))
    if expected is None:
        assert len(errors) == 1
        assert errors[0].startswith(
            "/tools/0/input_schema/properties/city/type: 'strin' is not valid"
        )
    else:
        assert errors == expected


def test_every_error_is_reported_not_just_the_first(tmp_path):
    document = config(
        [
            assistant("A", tools=["missing"], colour="red"),
            {"name": "B"},
            assistant("C", tools=["x"]),
        ],
        [tool("bad name"), tool("t", input_schema={"type": "array"}), tool("u", "wether")],
    )
    errors = import_errors(write(tmp_path, document))
    pointers = [line.split(": ", 1)[0] for line in errors]
    assert sorted(pointers) == sorted(
        [
            "/assistants/0/colour",
            "/tools/2/tool_type",
            "/assistants/1/model",
            "/tools/0/name",
            "/tools/1/input_schema/type",
            "/assistants/2/tools/0",
        ]
    )


def test_a_name_taken_by_a_row_the_file_does_not_mention_is_an_error(tmp_path, weather_tool):
    document = config(tools=[tool("get_weather", id=str(uuid.uuid4()))])
    assert import_errors(write(tmp_path, document)) == [
        f'/tools/0/name: "get_weather" is already the name of tool {weather_tool.pk}, which this '
        "file does not mention (give this entry that id to update it)"
    ]


def test_a_secretary_in_the_file_conflicts_with_one_in_the_database(tmp_path, secretary):
    errors = import_errors(write(tmp_path, config([assistant("New", is_secretary=True)])))
    assert errors == [
        "/assistants/0/is_secretary: “Secretary” is already the active secretary; there can be "
        "only one. Deactivate it or unset its secretary flag first."
    ]


def test_a_cycle_through_a_link_in_the_database_is_found(tmp_path, secretary, calendar_assistant):
    link(calendar_assistant, make_delegate_tool("ask_secretary", secretary))
    document = config(
        [assistant("Secretary", is_secretary=True, tools=["ask_calendar"])],
        [
            tool(
                "ask_calendar", "sub_assistant", input_schema=SCHEMA, assistant="Calendar assistant"
            )
        ],
    )
    assert import_errors(write(tmp_path, document)) == [
        "/assistants/0/tools/0: This would create a delegation cycle: "
        "Secretary → Calendar assistant → Secretary."
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the file is empty"),
        (b"  \n", "the file is empty"),
        (
            b"{not json",
            r"not valid JSON \(Expecting property name enclosed in double quotes at line 1 "
            r"column 2\)",
        ),
        (b"[" * 10_000 + b"]" * 10_000, "nested deeper than 40 levels"),
        (b"\xff\xfe{}", "not UTF-8 text"),
    ],
)
def test_an_unreadable_file_gets_a_clear_error(tmp_path, content, message):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(CommandError, match=message):
        run_import(path)


def test_a_50_mb_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.json"
    with open(path, "wb") as handle:
        handle.write(b'{"format_version": 1, "assistants": [], "tools": [], "padding": "')
        handle.truncate(50 * 2**20 - 2)
        handle.seek(0, 2)
        handle.write(b'"}')
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read a huge file"))
    with pytest.raises(CommandError, match=r"the file is 50.0 MB, larger than the 20 MB"):
        run_import(path)


def test_a_missing_file_gets_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run_import(tmp_path / "nope.json")


# --- --prune, --dry-run, backups ----------------------------------------------------------------


def test_prune_deletes_what_the_file_leaves_out_and_says_what(
    tmp_path, secretary, calendar_assistant
):
    ask = make_delegate_tool("ask_calendar", calendar_assistant)
    link(secretary, ask)
    UserAssistantThread.objects.create(user_id="1", assistant=calendar_assistant, thread_id="t")
    document = config([assistant("Secretary", is_secretary=True)])

    output = run_import(write(tmp_path, document), "--prune")

    assert "Assistants: 0 created, 1 updated, 0 unchanged, 1 deleted" in output
    assert "Tools: 0 created, 0 updated, 0 unchanged, 1 deleted" in output
    assert "Links: 0 created, 0 updated, 0 unchanged, 1 deleted" in output
    assert "Threads: 0 created, 0 updated, 0 unchanged, 1 deleted" in output
    assert "Deleted assistant: Calendar assistant" in output
    assert "Deleted tool: ask_calendar" in output
    assert list(Assistant.objects.values_list("name", flat=True)) == ["Secretary"]
    assert not Tool.objects.exists()


def test_without_prune_nothing_the_file_leaves_out_is_deleted(tmp_path, secretary, weather_tool):
    run_import(write(tmp_path, config(tools=[tool("get_time")])))
    assert Assistant.objects.count() == 1
    assert Tool.objects.count() == 2


def test_prune_names_a_reference_to_a_row_it_would_delete(tmp_path, calendar_assistant):
    document = config(tools=[tool("ask", "sub_assistant", assistant="Calendar assistant")])
    assert import_errors(write(tmp_path, document), "--prune") == [
        '/tools/0/assistant: unknown assistant "Calendar assistant": it is in the database but '
        "not in this file, so --prune would delete it"
    ]


def test_dry_run_reports_the_changes_and_writes_nothing(tmp_path, monkeypatch, secretary):
    monkeypatch.chdir(tmp_path)
    before = exported()
    out = StringIO()
    call_command("import_config", str(DEMO), "--dry-run", "--prune", stdout=out, stderr=StringIO())

    assert "Would be Assistants: 2 created, 1 updated, 0 unchanged, 0 deleted" in out.getvalue()
    assert "Would be Tools: 10 created" in out.getvalue()
    assert "dry run; nothing was written" in out.getvalue()
    assert exported() == before
    assert not (tmp_path / "backups").exists()


def test_a_backup_of_the_previous_config_is_written_first(tmp_path, monkeypatch, secretary):
    monkeypatch.chdir(tmp_path)
    before = exported()
    out = StringIO()
    call_command("import_config", str(DEMO), stdout=out, stderr=StringIO())

    backups = list((tmp_path / "backups").iterdir())
    assert len(backups) == 1
    assert backups[0].name.startswith("config-") and backups[0].suffix == ".json"
    assert backups[0].read_bytes() == before
    assert f"Backup of the previous config: backups/{backups[0].name}" in out.getvalue()


def test_backup_dir_and_no_backup(tmp_path, monkeypatch, secretary):
    monkeypatch.chdir(tmp_path)
    call_command("import_config", str(DEMO), "--backup-dir", "elsewhere", stdout=StringIO())
    assert len(list((tmp_path / "elsewhere").iterdir())) == 1
    Assistant.objects.filter(name="Calendar assistant").update(instructions="changed")
    call_command("import_config", str(DEMO), "--no-backup", stdout=StringIO())
    assert len(list((tmp_path / "elsewhere").iterdir())) == 1
    assert not (tmp_path / "backups").exists()


def test_no_backup_is_written_when_validation_fails(tmp_path, monkeypatch, secretary):
    monkeypatch.chdir(tmp_path)
    import_errors(write(tmp_path, config([assistant("A", tools=["x"])])))
    assert not (tmp_path / "backups").exists()


# --- scale: a fixed number of queries per entity type -------------------------------------------


def scaled_config(tools: int) -> dict:
    return config(
        [
            assistant(
                "Secretary",
                is_secretary=True,
                # At most 128 active tools per assistant (rule 9).
                tools=[f"t{i}" for i in range(min(tools, 127))] + ["ask_helper"],
            ),
            assistant("Helper", tools=[f"t{i}" for i in range(0, min(tools, 256), 2)]),
        ],
        [
            tool(
                f"t{i}",
                input_schema={"type": "object", "properties": {f"p{i}": {"type": "string"}}},
            )
            for i in range(tools)
        ]
        + [tool("ask_helper", "sub_assistant", assistant="Helper", input_schema=SCHEMA)],
        threads=[
            {"user_id": str(i), "assistant": "Secretary", "thread_id": f"th{i}"}
            for i in range(tools)
        ],
    )


def count_import_queries(tmp_path, document, *args) -> int:
    with CaptureQueriesContext(connection) as queries:
        run_import(write(tmp_path, document), *args)
    return len(queries)


def test_the_import_uses_the_same_number_of_queries_for_10_and_100_tools(
    tmp_path, django_assert_num_queries
):
    # The test's transaction holds one change set: the first import opens it (its revision
    # and what the change set's opening writes, such as webhook deliveries), the others add to
    # it. Counted: imports that add to it.
    run_import(write(tmp_path, scaled_config(10)), "--prune")
    for model in (UserAssistantThread, AssistantToolLink, Tool, Assistant):
        model.objects.all()._raw_delete(model.objects.db)
    first_small = count_import_queries(tmp_path, scaled_config(10), "--prune")
    noop_small = count_import_queries(tmp_path, scaled_config(10), "--prune")
    for model in (UserAssistantThread, AssistantToolLink, Tool, Assistant):
        model.objects.all()._raw_delete(model.objects.db)

    with django_assert_num_queries(first_small):
        run_import(write(tmp_path, scaled_config(100)), "--prune")
    with django_assert_num_queries(noop_small):
        run_import(write(tmp_path, scaled_config(100)), "--prune")
    assert Tool.objects.count() == 101
    assert noop_small <= 9  # lock, 5 reads, savepoints: no writes


def test_updating_and_pruning_uses_a_bounded_number_of_queries(
    tmp_path, django_assert_max_num_queries
):
    run_import(write(tmp_path, scaled_config(100)))
    changed = scaled_config(60)
    for entry in changed["tools"]:
        entry["description"] = "changed"
    changed["assistants"][0]["instructions"] = "changed"
    # 5 reads, 4 deletes, up to 4 creates and 4 updates, a revision bump, 5 verify reads.
    with django_assert_max_num_queries(25):
        run_import(write(tmp_path, changed), "--prune")
    assert Tool.objects.filter(description="changed").count() == 61


def test_a_large_file_reports_progress_on_stderr(tmp_path):
    err = StringIO()
    document = scaled_config(2100)
    call_command(
        "import_config",
        str(write(tmp_path, document)),
        "--no-backup",
        stdout=StringIO(),
        stderr=err,
    )
    progress = err.getvalue()
    assert "Read the current configuration" in progress
    assert "Checked 2,000 of 2,101 tools." in progress
    assert "Verified the database against the file." in progress


def test_an_import_while_the_cache_is_unreachable_changes_nothing(unreachable_redis):
    with pytest.raises(CommandError, match="nothing was changed"):
        call_command("import_config", "demo/config.json", "--no-backup")
    assert not Assistant.objects.exists()


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        (lambda doc: doc["tools"][0].update(name="get_weather\n"), "/tools/0/name"),
        (lambda doc: doc["tools"][0].update(description="a\x00b"), "/tools/0/description"),
        (
            lambda doc: doc["assistants"][0].update(instructions="\x00"),
            "/assistants/0/instructions",
        ),
        (
            lambda doc: doc["tools"][0]["input_schema"].update({"$schema": []}),
            "/tools/0/input_schema/$schema",
        ),
    ],
)
def test_unstorable_values_are_errors_with_their_pointer(tmp_path, change, pointer):
    document = json.loads(Path("demo/config.json").read_text())
    document["tools"][0]["input_schema"] = {"type": "object"}
    change(document)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    errors = StringIO()
    with pytest.raises(CommandError):
        call_command("import_config", str(path), "--no-backup", stderr=errors)
    assert any(line.startswith(pointer + ":") for line in errors.getvalue().splitlines()), (
        errors.getvalue()
    )
    assert not Assistant.objects.exists()
