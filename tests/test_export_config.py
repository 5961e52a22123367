"""export_config: the file format, deterministic bytes, byte-identical round trip."""

import json
import os
import stat
import threading
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from jsonschema import Draft202012Validator

from assistants.models import Assistant
from config_backend import transfer
from tests.factories import link, make_delegate_tool
from threads.models import UserAssistantThread
from tools.models import AssistantToolLink, Tool

pytestmark = pytest.mark.django_db


def export(*args) -> str:
    out = StringIO()
    call_command("export_config", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def populated(secretary, calendar_assistant, weather_tool):
    """A config with every kind of row: delegation, an inactive link and tool, Cyrillic, threads."""
    ask = make_delegate_tool("ask_calendar", calendar_assistant)
    old = Tool.objects.create(
        name="old_time", tool_type="time", is_active=False, description="Старое время."
    )
    link(secretary, weather_tool)
    link(secretary, ask)
    link(secretary, old, is_active=False)
    Assistant.objects.create(
        name="Помощник",
        assistant_type="openai_api",
        openai_assistant_id="asst_123",
        instructions="Отвечай по-русски.",
        is_active=False,
    )
    UserAssistantThread.objects.create(
        user_id="42",
        assistant=secretary,
        thread_id="thread_abc",
        last_used=datetime(2026, 1, 1, tzinfo=UTC),
    )
    UserAssistantThread.objects.create(user_id="7", assistant=calendar_assistant, thread_id="t7")


def test_export_then_import_into_an_empty_database_then_export_gives_identical_bytes(
    populated, tmp_path
):
    first = tmp_path / "first.json"
    call_command("export_config", "-o", str(first), "--include-threads", stdout=StringIO())
    for model in (UserAssistantThread, AssistantToolLink, Tool, Assistant):
        model.objects.all()._raw_delete(model.objects.db)

    call_command("import_config", str(first), "--no-backup", stdout=StringIO())
    second = tmp_path / "second.json"
    call_command("export_config", "-o", str(second), "--include-threads", stdout=StringIO())

    assert second.read_bytes() == first.read_bytes()


def test_the_export_is_sorted_with_a_stable_key_order(populated):
    document = json.loads(export())

    assert list(document) == ["format_version", "assistants", "tools", "snippets"]
    assert [a["name"] for a in document["assistants"]] == [
        "Calendar assistant",
        "Secretary",
        "Помощник",
    ]
    assert [t["name"] for t in document["tools"]] == [
        "ask_calendar",
        "get_weather",
        "old_time",
    ]
    secretary = document["assistants"][1]
    assert list(secretary) == ["id", *Assistant.CONFIG_FIELDS, "tools"]
    assert secretary["tools"] == [
        "ask_calendar",
        "get_weather",
        {"tool": "old_time", "is_active": False},
    ]
    ask = document["tools"][0]
    assert list(ask) == ["id", *Tool.CONFIG_FIELDS]
    assert ask["assistant"] == "Calendar assistant"


def test_it_writes_utf8_unescaped_with_a_trailing_newline(populated):
    text = export()
    assert '"name": "Помощник"' in text
    assert "\\u" not in text
    assert text.endswith("}\n")
    assert export() == text


def test_threads_are_exported_only_when_asked(populated):
    assert "threads" not in json.loads(export())
    threads = json.loads(export("--include-threads"))["threads"]
    assert [(t["assistant"], t["user_id"]) for t in threads] == [
        ("Calendar assistant", "7"),
        ("Secretary", "42"),
    ]
    assert threads[1]["last_used"] == "2026-01-01T00:00:00Z"
    assert list(threads[1]) == ["id", "user_id", "assistant", "thread_id", "last_used"]


def test_output_file_gets_the_same_bytes_as_stdout(populated, tmp_path):
    out = StringIO()
    call_command("export_config", "-o", str(tmp_path / "x.json"), stdout=out)
    assert "Exported 3 assistants, 3 tools to" in out.getvalue()
    assert (tmp_path / "x.json").read_bytes() == export().encode()


def test_the_export_is_valid_against_the_shipped_format_schema(populated):
    document = json.loads(export("--include-threads"))
    validator = Draft202012Validator(
        transfer.format_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    assert list(validator.iter_errors(document)) == []


def test_the_format_schema_agrees_with_the_models():
    definitions = transfer.format_schema()["$defs"]
    assistant = definitions["assistant"]["properties"]
    tool = definitions["tool"]["properties"]
    assert assistant["assistant_type"]["enum"] == Assistant.Type.values
    assert tool["tool_type"]["enum"] == Tool.Type.values
    assert assistant["name"]["maxLength"] == Assistant._meta.get_field("name").max_length
    assert tool["name"]["maxLength"] == Tool._meta.get_field("name").max_length
    assert set(assistant) == {"id", "tools", *transfer.ASSISTANT_FIELDS}
    assert set(tool) == {"id", *transfer.TOOL_FIELDS}
    assert set(definitions["thread"]["properties"]) == {"id", *transfer.THREAD_FIELDS}


def make_config(size: int) -> None:
    helper = Assistant.objects.create(name="Helper", model="m")
    assistants = [Assistant.objects.create(name=f"A{i}", model="m") for i in range(size // 10)]
    tools = [Tool.objects.create(name=f"t{i}", tool_type="time") for i in range(size)]
    ask = make_delegate_tool("ask_helper", helper)
    for index, tool in enumerate(tools):
        link(assistants[index % len(assistants)], tool)
    link(assistants[0], ask)
    for i in range(size):
        UserAssistantThread.objects.create(user_id=str(i), assistant=helper, thread_id=f"t{i}")


@pytest.mark.parametrize("size", [10, 100])
def test_the_export_uses_a_fixed_number_of_queries(size, django_assert_num_queries):
    make_config(size)
    # A lock, then one query per entity type (savepoints around the transaction).
    with django_assert_num_queries(8):
        document = transfer.export_config(include_threads=True)
    assert len(document["tools"]) == size + 1


def test_exporting_to_a_pipe_writes_into_it_and_leaves_it_a_pipe(populated, tmp_path):
    # As to /dev/null or /dev/stdout: renaming a file over it would replace the device itself.
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    call_command("export_config", "-o", str(pipe), stdout=StringIO())
    reader.join(timeout=10)
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert json.loads(received[0])["format_version"] == transfer.FORMAT_VERSION
