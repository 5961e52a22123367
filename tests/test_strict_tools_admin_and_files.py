"""Strict tools in the admin (errors, and warnings for tools that are not strict), in
check_config --strict, and in the file format (format_version 2 carries strict; version 1
files still import)."""

import json
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from assistants.models import Assistant
from config_backend import transfer
from tests.factories import (
    OPTIONAL_PROBLEM,
    OPTIONAL_SCHEMA,
    STRICT_READY_SCHEMA,
    import_error_lines,
    link,
    write_config_file,
)
from threads.models import UserAssistantThread
from tools.models import AssistantToolLink, Tool

pytestmark = pytest.mark.django_db


# --- the admin: errors for a strict tool, warnings for one that isn't ---------------------------


def tool_form(**overrides) -> dict:
    return {
        "name": "get_time",
        "tool_type": "time",
        "assistant": "",
        "is_active": "on",
        "description": "",
        "input_schema": json.dumps(OPTIONAL_SCHEMA),
        **overrides,
    }


def test_the_admin_refuses_a_strict_tool_with_the_problems_pointers(admin_client):
    response = admin_client.post(
        reverse("admin:tools_tool_add"), tool_form(strict="on"), follow=False
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["input_schema"] == [f"/properties/tz: {OPTIONAL_PROBLEM}"]
    assert not Tool.objects.exists()


def test_the_admin_form_warns_what_keeps_a_tool_that_is_not_strict_from_strict_mode(
    admin_client,
):
    tool = Tool.objects.create(name="get_time", tool_type="time", input_schema=OPTIONAL_SCHEMA)
    ready_tool = Tool.objects.create(
        name="get_weather", tool_type="weather", input_schema=STRICT_READY_SCHEMA
    )

    page = admin_client.get(reverse("admin:tools_tool_change", args=[tool.pk])).content.decode()
    assert "Strict-mode readiness" in page
    assert "✗ Not ready for strict mode" in page
    assert "<code>/properties/tz</code>: optional (not in &quot;required&quot;)" in page

    page = admin_client.get(reverse("admin:tools_tool_change", args=[ready_tool.pk]))
    assert "✓ Ready" in page.content.decode()


def test_the_tool_list_shows_which_tools_are_strict_ready(admin_client):
    Tool.objects.create(name="get_time", tool_type="time", input_schema=OPTIONAL_SCHEMA)
    Tool.objects.create(name="get_weather", tool_type="weather", input_schema=STRICT_READY_SCHEMA)

    page = admin_client.get(reverse("admin:tools_tool_changelist")).content.decode()

    assert "Strict-ready" in page
    rows = {
        name: row
        for row in page.split("<tr")
        for name in ("get_time", "get_weather")
        if f">{name}</a>" in row
    }
    ready_cell = re.compile(r'<td class="field-strict_ready"><img src="[^"]*icon-(yes|no)')
    assert ready_cell.search(rows["get_time"]).group(1) == "no"
    assert ready_cell.search(rows["get_weather"]).group(1) == "yes"


# --- check_config --strict ------------------------------------------------------------------


def test_check_config_strict_lists_each_tool_that_is_not_strict_ready_and_exits_1():
    Tool.objects.create(name="get_time", tool_type="time", input_schema=OPTIONAL_SCHEMA)
    Tool.objects.create(name="get_weather", tool_type="weather", input_schema=STRICT_READY_SCHEMA)
    Tool.objects.create(
        name="strict_one", tool_type="time", input_schema=STRICT_READY_SCHEMA, strict=True
    )

    plain = StringIO()
    call_command("check_config", stdout=plain)
    assert plain.getvalue() == (
        "OK: 0 assistants, 3 tools, 0 links, 0 snippets, 0 threads; every rule holds.\n"
    )

    out = StringIO()
    with pytest.raises(CommandError, match=r"1 problem\(s\) found"):
        call_command("check_config", "--strict", stdout=out)
    assert out.getvalue().splitlines() == [
        f'tool "get_time" (not strict) input_schema/properties/tz: {OPTIONAL_PROBLEM}'
    ]


def test_check_config_strict_passes_the_demo_config():
    call_command("import_config", "demo/config.json", "--no-backup", stdout=StringIO())
    out = StringIO()
    call_command("check_config", "--strict", stdout=out)
    assert out.getvalue().endswith("every rule holds; every tool is ready for strict mode.\n")


def test_check_config_reports_a_strict_tool_written_around_validation():
    tool = Tool.objects.create(
        name="get_time", tool_type="time", input_schema=STRICT_READY_SCHEMA, strict=True
    )
    Tool.objects.filter(pk=tool.pk).update(input_schema=OPTIONAL_SCHEMA)

    out = StringIO()
    with pytest.raises(CommandError, match=r"1 problem\(s\) found"):
        call_command("check_config", stdout=out)
    assert out.getvalue().splitlines() == [
        f'tool "get_time" input_schema/properties/tz: {OPTIONAL_PROBLEM}'
    ]


# --- import and export: format_version 2 carries strict, version 1 still reads --------------------


def a_tool(name="get_time", **fields) -> dict:
    return {"name": name, "tool_type": "time", "input_schema": STRICT_READY_SCHEMA, **fields}


def test_a_version_1_file_imports_with_every_tool_not_strict(tmp_path):
    document = {"format_version": 1, "assistants": [], "tools": [a_tool()]}

    call_command(
        "import_config", write_config_file(tmp_path, document), "--no-backup", stdout=StringIO()
    )

    assert Tool.objects.get().strict is False
    exported = transfer.export_config(include_threads=False)
    assert exported["format_version"] == 3  # the version written (2 added strict)
    assert exported["tools"][0]["strict"] is False


def test_strict_in_a_version_1_file_is_an_unknown_key(tmp_path):
    document = {"format_version": 1, "assistants": [], "tools": [a_tool(strict=True)]}

    assert import_error_lines(write_config_file(tmp_path, document)) == [
        "/tools/0/strict: unknown key in format_version 1 (it is in format_version 2: set that)"
    ]


def test_the_import_refuses_a_strict_tool_with_pointers_into_the_file(tmp_path):
    document = {
        "format_version": 2,
        "assistants": [],
        "tools": [
            a_tool("fine", strict=True),
            a_tool(strict=True, input_schema=OPTIONAL_SCHEMA),
        ],
    }

    assert import_error_lines(write_config_file(tmp_path, document)) == [
        f"/tools/1/input_schema/properties/tz: {OPTIONAL_PROBLEM}"
    ]
    assert not Tool.objects.exists()


def test_turning_strict_on_in_a_file_checks_the_unchanged_stored_schema(tmp_path):
    Tool.objects.create(name="get_time", tool_type="time", input_schema=OPTIONAL_SCHEMA)
    document = {
        "format_version": 2,
        "assistants": [],
        "tools": [a_tool(strict=True, input_schema=OPTIONAL_SCHEMA)],
    }

    assert import_error_lines(write_config_file(tmp_path, document)) == [
        f"/tools/0/input_schema/properties/tz: {OPTIONAL_PROBLEM}"
    ]


def test_export_then_import_into_an_empty_database_then_export_keeps_strict_byte_identical(
    tmp_path, secretary
):
    link(
        secretary,
        Tool.objects.create(
            name="a", tool_type="time", input_schema=STRICT_READY_SCHEMA, strict=True
        ),
    )
    link(
        secretary,
        Tool.objects.create(name="b", tool_type="time", input_schema=OPTIONAL_SCHEMA),
    )
    first = tmp_path / "first.json"
    call_command("export_config", "-o", str(first), "--include-threads", stdout=StringIO())
    for model in (UserAssistantThread, AssistantToolLink, Tool, Assistant):
        model.objects.all()._raw_delete(model.objects.db)

    call_command("import_config", str(first), "--no-backup", stdout=StringIO())
    second = tmp_path / "second.json"
    call_command("export_config", "-o", str(second), "--include-threads", stdout=StringIO())

    assert second.read_bytes() == first.read_bytes()
    document = json.loads(first.read_text())
    assert document["format_version"] == 3  # the version written (2 added strict)
    assert [(tool["name"], tool["strict"]) for tool in document["tools"]] == [
        ("a", True),
        ("b", False),
    ]
    assert list(document["tools"][0])[4:6] == ["input_schema", "strict"]


def test_the_demo_config_marks_its_tools_strict_and_loads():
    call_command("import_config", "demo/config.json", "--no-backup", stdout=StringIO())

    assert set(Tool.objects.values_list("strict", flat=True)) == {True}
    get_time = Tool.objects.get(name="get_time").input_schema
    assert get_time["properties"]["timezone"]["type"] == ["string", "null"]
    assert get_time["required"] == ["timezone"]
