"""Hostile input through every entry point: the API (a schema as an object or as a JSON string,
POST, PUT and PATCH), the admin, and import files. Each is refused with a message naming the
place, never a 500 or a stall, and nothing changes."""

import json
import os
import re
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from assistants.models import Assistant
from config_backend import transfer
from core.store import committed_counter
from snippets.models import Snippet
from tests.factories import (
    assistant_payload,
    key_client,
    link,
    make_delegate_tool,
    tool_payload,
    write_config_file,
)
from tools.models import AssistantToolLink, Tool

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parent.parent / "demo" / "config.json"
# Python's own words for the failures this file provokes; none may reach a user.
INTERNALS = ("sys.set_int_max_str_digits", "RecursionError", "Traceback", "maximum recursion")


def nested_text(levels: int) -> str:
    """A schema nested `levels` JSON levels deep, as text (built as text: no recursion)."""
    return '{"type": "object", "x": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"


def nested_schema(levels: int) -> dict:
    """A schema of `levels` JSON levels: properties → p → properties → p …"""
    schema: dict = {"type": "object"}
    for _ in range((levels - 1) // 2):
        schema = {"type": "object", "properties": {"p": schema}}
    return schema


HOSTILE_SCHEMAS = {
    "a string nested 100 levels": nested_text(100),
    "a string nested 10,000 levels": nested_text(10_000),
    "a string holding a 5,000-digit integer": '{"type": "object", "maximum": ' + "9" * 5000 + "}",
    "a string holding a lone surrogate": '{"type": "object", "description": "\\ud800"}',
    "a string with a key twice": '{"type": "string", "type": "object"}',
    "an object nested 100 levels": nested_schema(100),
    "an invalid pattern": {"type": "object", "properties": {"a": {"pattern": "(unclosed"}}},
    "an invalid patternProperties key": {"type": "object", "patternProperties": {"[a-": {}}},
}


@pytest.fixture
def existing_tool(db):
    return Tool.objects.create(name="get_time", tool_type="time", description="The time.")


def send(client, method, url, payload):
    return client.generic(method, url, json.dumps(payload), content_type="application/json")


def assert_refused_cleanly(response):
    assert response.status_code == 400, response.content[:300]
    text = response.content.decode()
    assert "input_schema" in text
    assert not any(word in text for word in INTERNALS), text[:300]


@pytest.mark.parametrize("schema", HOSTILE_SCHEMAS.values(), ids=HOSTILE_SCHEMAS.keys())
def test_a_hostile_schema_is_400_on_post_put_and_patch(writer, existing_tool, schema):
    before = Tool.objects.get().input_schema
    url = f"/api/v1/tools/{existing_tool.pk}/"
    assert_refused_cleanly(
        send(writer, "POST", "/api/v1/tools/", tool_payload(name="new", input_schema=schema))
    )
    assert_refused_cleanly(send(writer, "PUT", url, tool_payload(input_schema=schema)))
    assert_refused_cleanly(send(writer, "PATCH", url, {"input_schema": schema}))
    assert list(Tool.objects.values_list("name", "input_schema")) == [("get_time", before)]


def test_an_invalid_pattern_is_named_by_its_pointer(writer):
    schema = HOSTILE_SCHEMAS["an invalid pattern"]
    response = send(writer, "POST", "/api/v1/tools/", tool_payload(input_schema=schema))
    assert response.json()["input_schema"][0].startswith("/properties/a/pattern: ")


def test_a_repeated_key_is_named_by_its_pointer_in_a_body(writer):
    body = (
        '{"name": "t", "tool_type": "time", "input_schema": {"type": "string", "type": "object"}}'
    )
    response = writer.generic("POST", "/api/v1/tools/", body, content_type="application/json")
    assert response.status_code == 400
    assert "/input_schema/type: duplicate key" in response.json()["detail"]
    assert not Tool.objects.exists()


def test_a_lone_surrogate_anywhere_in_a_body_is_400(writer):
    body = '{"name": "Helper", "model": "m", "instructions": "\\udc00"}'
    response = writer.generic("POST", "/api/v1/assistants/", body, content_type="application/json")
    assert response.status_code == 400
    assert "/instructions: must not contain lone surrogates" in response.json()["detail"]
    assert not Assistant.objects.exists()


def test_the_depth_limit_is_the_same_for_a_schema_as_object_or_as_string(writer, settings):
    deepest = nested_schema(settings.SCHEMA_MAX_DEPTH)
    too_deep = nested_schema(settings.SCHEMA_MAX_DEPTH + 2)
    for form in (lambda schema: schema, json.dumps):
        created = send(writer, "POST", "/api/v1/tools/", tool_payload(input_schema=form(deepest)))
        assert created.status_code == 201, created.content[:300]
        refused = send(
            writer, "POST", "/api/v1/tools/", tool_payload(name="x", input_schema=form(too_deep))
        )
        assert refused.status_code == 400
        assert f"nested deeper than {settings.SCHEMA_MAX_DEPTH} levels" in str(refused.json())
        # What the API returns can always be sent back.
        tool = writer.get(f"/api/v1/tools/{created.json()['id']}/").json()
        sent_back = {key: tool[key] for key in ("name", "tool_type", "description", "input_schema")}
        assert send(writer, "PUT", f"/api/v1/tools/{tool['id']}/", sent_back).status_code == 200
        Tool.objects.all().delete()


def anyof_schema(branches: int) -> dict:
    return {
        "type": "object",
        "anyOf": [{"maxLength": i % 10} for i in range(branches)],
    }


@pytest.mark.parametrize(
    "schema",
    [
        anyof_schema(20_000),
        anyof_schema(130_000),
        {"type": "object", "properties": {str(i): {"type": 1} for i in range(100_000)}},
        "x" * 2_000_000,
    ],
    ids=["20,000 anyOf branches", "130,000 anyOf branches", "100,000 bad properties", "2 MB"],
)
def test_an_oversized_schema_is_refused_before_the_metaschema_walk(writer, schema, settings):
    started = time.perf_counter()
    body = json.dumps(tool_payload(input_schema=schema), separators=(",", ":"))
    response = writer.generic("POST", "/api/v1/tools/", body, content_type="application/json")
    elapsed = time.perf_counter() - started
    assert response.status_code == 400
    message = response.json()["input_schema"][0]
    assert message.startswith("/: ")
    assert f"{settings.SCHEMA_MAX_VALUES:,} values" in message or "SCHEMA_MAX_BYTES" in message
    # A guard against a stall, not a benchmark (bench/schema_bench.py measures it): the
    # unbounded walk took 10 to 30 s here.
    assert elapsed < 5, elapsed


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_two_megabytes_of_instructions_are_400_naming_the_field_and_the_limit(
    writer, secretary, method
):
    url = "/api/v1/assistants/" if method == "POST" else f"/api/v1/assistants/{secretary.id}/"
    body = assistant_payload(name="Wordy", instructions="x" * 2_000_000)

    response = writer.generic(method, url, json.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert response.json()["instructions"][0].startswith("Instructions are 2,000,000 bytes")
    assert "MAX_INSTRUCTIONS_BYTES" in response.json()["instructions"][0]
    assert list(Assistant.objects.values_list("name", "instructions")) == [
        ("Secretary", "Help the user.")
    ]


# --- the admin -------------------------------------------------------------------------------


def admin_tool_form(input_schema: str) -> dict:
    return {
        "name": "get_time",
        "tool_type": "time",
        "assistant": "",
        "is_active": "on",
        "description": "Current time.",
        "input_schema": input_schema,
    }


ADMIN_INPUTS = {
    "nested 100 levels": json.dumps(nested_schema(100)),
    "a string nested 10,000 levels": json.dumps(nested_text(10_000)),
    "nested 10,000 levels": nested_text(10_000),
    "a 5,000-digit integer": '{"type": "object", "maximum": ' + "9" * 5000 + "}",
    "a lone surrogate": '{"type": "object", "description": "\\ud800"}',
    "a key twice": '{"type": "string", "type": "object"}',
    "an invalid pattern": '{"type": "object", "properties": {"a": {"pattern": "("}}}',
}


@pytest.mark.parametrize("text", ADMIN_INPUTS.values(), ids=ADMIN_INPUTS.keys())
def test_a_hostile_schema_is_a_form_error_in_the_admin(admin_client, text):
    response = admin_client.post(reverse("admin:tools_tool_add"), admin_tool_form(text))
    assert response.status_code == 200  # the form again, with its errors
    errors = response.context["adminform"].form.errors
    assert "input_schema" in errors, errors
    assert not any(word in str(errors) for word in INTERNALS)
    assert not Tool.objects.exists()


# --- the X-Change-Note header (core.api.change_notes; what it accepts: test_change_notes.py) ------

# Bytes as sent; Django gets them decoded as Latin-1, as WSGI and ASGI servers hand them over.
HOSTILE_NOTES = {
    "Latin-1, not UTF-8": b"caf\xe9",
    "a cut UTF-8 sequence": "Исправил".encode()[:-1],
    "percent-encoded Latin-1": b"caf%E9",
    "a percent-encoded NUL": b"note%00",
}


@pytest.mark.parametrize("sent", HOSTILE_NOTES.values(), ids=HOSTILE_NOTES.keys())
def test_a_change_note_that_is_not_utf8_is_400_naming_the_header(writer, existing_tool, sent):
    url = f"/api/v1/tools/{existing_tool.pk}/"
    header = {"HTTP_X_CHANGE_NOTE": sent.decode("latin-1")}
    for response in (
        writer.patch(url, {"description": "Changed."}, format="json", **header),
        writer.delete(url, **header),
        writer.post("/api/v1/tools/", tool_payload(name="new"), format="json", **header),
    ):
        assert response.status_code == 400, response.content
        assert list(response.json()) == ["X-Change-Note"]
    assert list(Tool.objects.values_list("name", "description")) == [("get_time", "The time.")]


# --- import files ----------------------------------------------------------------------------


def demo_text() -> str:
    return DEMO.read_text()


def with_first_schema(text: str) -> str:
    """The demo file with its first tool's input_schema replaced by raw JSON `text`."""
    document = json.loads(demo_text())
    document["tools"][0]["input_schema"] = "@@SCHEMA@@"
    return json.dumps(document).replace('"@@SCHEMA@@"', text)


def with_first_instructions(text: str) -> str:
    """The demo file with its first assistant's instructions replaced by `text`."""
    document = json.loads(demo_text())
    document["assistants"][0]["instructions"] = text
    return json.dumps(document)


HOSTILE_FILES = {
    "nested 10,000 levels": (
        "[" * 10_000 + "]" * 10_000,
        "hostile.json: nested deeper than 40 levels.",
    ),
    "a deep legacy string": (
        with_first_schema(json.dumps(nested_text(10_000))),
        "/tools/0/input_schema: nested deeper than",
    ),
    "a 5,000-digit integer": (
        with_first_schema('{"type": "object", "maximum": ' + "9" * 5000 + "}"),
        "/tools/0/input_schema/maximum: a number of more than",
    ),
    "a lone surrogate": (
        with_first_schema('{"type": "object", "description": "\\ud800"}'),
        "/tools/0/input_schema/description: must not contain lone surrogates",
    ),
    "2 MB of instructions": (
        with_first_instructions("x" * 2_000_000),
        "/assistants/0/instructions: Instructions are 2,000,000 bytes (UTF-8); at most 262,144",
    ),
    "two tools arrays": (
        demo_text().rstrip().removesuffix("}") + ', "tools": []}',
        "/tools: duplicate key",
    ),
}


@pytest.mark.parametrize(("text", "expected"), HOSTILE_FILES.values(), ids=HOSTILE_FILES.keys())
def test_a_hostile_import_file_exits_1_with_a_pointer_and_changes_nothing(tmp_path, text, expected):
    call_command("import_config", str(DEMO), "--no-backup", stdout=StringIO())
    before = transfer.config_to_bytes(transfer.export_config(include_threads=True))
    path = tmp_path / "hostile.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    errors = StringIO()
    with pytest.raises(CommandError) as exc_info:
        call_command("import_config", str(path), "--no-backup", stdout=StringIO(), stderr=errors)
    said = errors.getvalue() + str(exc_info.value)
    assert expected in said, said[:500]
    assert not any(word in said for word in INTERNALS)
    assert transfer.config_to_bytes(transfer.export_config(include_threads=True)) == before


def unusable_backup_dirs(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere" / "at-all")
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o500)
    dirs = {"a file": a_file, "a dangling symlink": dangling, "under /proc": Path("/proc/backups")}
    if os.geteuid() != 0:  # root writes anywhere
        dirs["unwritable"] = read_only
    return dirs


def test_an_unusable_backup_dir_is_one_clear_sentence_and_nothing_changes(tmp_path):
    call_command("import_config", str(DEMO), "--no-backup", stdout=StringIO())
    document = json.loads(demo_text())
    document["assistants"][0]["instructions"] = "Changed."
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document))
    before = transfer.config_to_bytes(transfer.export_config(include_threads=True))
    for what, backup_dir in unusable_backup_dirs(tmp_path).items():
        with pytest.raises(CommandError, match="Cannot write the backup in .*nothing was changed"):
            call_command(
                "import_config", str(changed), "--backup-dir", str(backup_dir), stdout=StringIO()
            )
        assert transfer.config_to_bytes(transfer.export_config(include_threads=True)) == before, (
            what
        )


# --- fuzzing: random hostile JSON text, through the API's string and body forms -----------------

JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**120), max_value=10**120),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=5),
)


@st.composite
def hostile_json_text(draw) -> str:
    """JSON-ish text: nested up to 3,000 levels, long numbers, NUL and surrogate escapes, keys
    repeated."""
    value = draw(st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=3), max_leaves=8))
    text = json.dumps(value, allow_nan=True)
    depth = draw(st.integers(min_value=0, max_value=3000))
    text = "[" * depth + text + "]" * depth
    extra = draw(st.sampled_from(["", '"a": 1, "a": 2, ', '"\\ud800": 1, ', '"\\u0000": 1, ']))
    return '{"type": "object", ' + extra + '"x": ' + text + "}"


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=hostile_json_text())
def test_random_hostile_schemas_are_never_a_server_error(text):
    client = key_client("write")
    Tool.objects.all().delete()
    for body in (
        json.dumps(tool_payload(input_schema=text)),  # the legacy string form
        '{"name": "t", "tool_type": "time", "input_schema": ' + text + "}",  # the object form
    ):
        response = client.generic("POST", "/api/v1/tools/", body, content_type="application/json")
        assert response.status_code in (201, 400), response.content[:300]
        assert not any(word in response.content.decode() for word in INTERNALS)


# --- the agent fields (model_settings, output, variables) and the render endpoint -------------

AGENT_FIELDS = ("model_settings", "output", "variables")


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=hostile_json_text(), field=st.sampled_from(AGENT_FIELDS))
def test_random_hostile_agent_fields_are_never_a_server_error(text, field):
    client = key_client("write")
    Assistant.objects.all().delete()
    body = '{"name": "A", "model": "m", "' + field + '": ' + text + "}"
    response = client.generic("POST", "/api/v1/assistants/", body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert not any(word in response.content.decode() for word in INTERNALS)
    assert "Unknown field." not in response.content.decode()  # the field's own rules spoke
    assert not Assistant.objects.exists()


@pytest.mark.parametrize("field", AGENT_FIELDS)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[" * 5000 + "]" * 5000, "nested deeper"),
        ('{"a": "\\ud800"}', "surrogate"),
        ('{"a": 1, "a": 2}', "duplicate key"),
        ('{"a": ' + "9" * 5000 + "}", "digits"),
    ],
)
def test_hostile_json_in_an_agent_field_is_400_and_changes_nothing(writer, field, value, message):
    body = '{"name": "A", "model": "m", "' + field + '": ' + value + "}"
    response = writer.generic("POST", "/api/v1/assistants/", body, content_type="application/json")
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Assistant.objects.exists()


@pytest.fixture
def greeter(db):
    assistant = Assistant(
        name="Greeter",
        model="m",
        instructions="Hi {{ name }}" * 100,
        variables=[{"name": "name", "type": "string"}],
    )
    assistant.full_clean()
    assistant.save()
    return assistant


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"variables": {"name": "\\ud800"}}', "detail"),
        ('{"variables": {"name": "a", "name": "b"}}', "detail"),
        ('{"variables": ' + "[" * 5000 + "]" * 5000 + "}", "detail"),
        ('{"variables": {"name": ' + "9" * 5000 + "}}", "detail"),
        ('{"variables": {"name": {"a": [1]}}}', "variables.name"),
        ('{"variables": {"name": "x"}, "revision": -1}', "revision"),
        ('{"variables": {"name": "x"}, "revision": 99999999999999999999999}', "revision"),
        ('{"variables": {"name": "x"}, "label": "\\u0000"}', "detail"),
        ('{"variables": {"name": "x"}, "label": "' + "a" * 5000 + '"}', "label"),
        ('{"variables": "name"}', "variables"),
        ("[]", "non_field_errors"),
    ],
)
def test_hostile_render_requests_are_400_naming_the_place(reader, greeter, body, field):
    response = reader.generic(
        "POST", f"/api/v1/assistants/{greeter.pk}/render/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    assert field in response.json()
    assert not any(word in response.content.decode() for word in INTERNALS)


def test_a_value_that_would_render_huge_is_400_not_a_huge_answer(reader, greeter):
    value = "x" * 20_000  # 100 placeholders: 2 MB rendered
    response = reader.post(
        f"/api/v1/assistants/{greeter.pk}/render/", {"variables": {"name": value}}, format="json"
    )
    assert response.status_code == 400
    assert "exceed" in response.json()["variables"][0]


# --- control characters in stored text, printed by the management commands -------------------

# Clear the screen, write the clipboard (OSC 52), return to the line start, a C1 CSI (UTF-8
# terminals obey it), DEL and a newline that would forge a line of the command's own output.
HOSTILE_TEXT = "Evil\x1b[2J\x1b]52;c;cHduZWQ=\x07\r\x9b31m\x7f\nforged line"
# What a terminal would obey: any control character but the newline ending each line, and tab.
TERMINAL_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# How the commands show it instead: the escapes JSON uses.
ESCAPED_HOSTILE_TEXT = r"Evil\u001b[2J\u001b]52;c;cHduZWQ=\u0007\r\u009b31m\u007f\nforged line"


def command_output(*args) -> str:
    """All a command prints: stdout, stderr, and the CommandError Django would print."""
    out, err = StringIO(), StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except CommandError as exc:
        err.write(f"CommandError: {exc}\n")
    return out.getvalue() + err.getvalue()


def hostile_rollback_in_the_log(tmp_path):
    secretary = Assistant.objects.create(name="Secretary", model="m", is_secretary=True)
    at = committed_counter()
    secretary.instructions = "Changed."
    secretary.save()
    call_command("config_rollback", str(at), "--message", HOSTILE_TEXT, stdout=StringIO())
    return ["config_log"]


def hostile_names_in_a_diff(tmp_path):
    Assistant.objects.create(name="Secretary", model="m", is_secretary=True)
    at = committed_counter()
    Assistant.objects.create(name=HOSTILE_TEXT, model="m", instructions=HOSTILE_TEXT)
    return ["config_diff", str(at), "live"]


def hostile_name_kept_by_a_rollback(tmp_path):
    Assistant.objects.create(name="Secretary", model="m", is_secretary=True)
    at = committed_counter()
    Assistant.objects.create(name=HOSTILE_TEXT, model="m")
    return ["config_rollback", str(at)]


def hostile_names_in_an_import_file(tmp_path):
    document = json.loads(demo_text())
    document["assistants"][0]["tools"] = [HOSTILE_TEXT]
    document["assistants"][0]["name"] = HOSTILE_TEXT
    return ["import_config", write_config_file(tmp_path, document), "--no-backup"]


def hostile_name_deleted_by_an_import(tmp_path):
    Assistant.objects.create(name=HOSTILE_TEXT, model="m")
    return ["import_config", str(DEMO), "--no-backup", "--prune"]


def hostile_point_to_export(tmp_path):
    return ["export_config", "--at", HOSTILE_TEXT]


def hostile_name_in_a_config_problem(tmp_path):
    secretary = Assistant.objects.create(name="Secretary", model="m", is_secretary=True)
    link(
        secretary, make_delegate_tool("ask", Assistant.objects.create(name=HOSTILE_TEXT, model="m"))
    )
    # Out of sync with the tool's delegate, as an operator's SQL could leave it.
    AssistantToolLink.objects.update(sub_assistant=None)
    return ["check_config"]


def hostile_api_key_name(tmp_path):
    return ["create_api_key", HOSTILE_TEXT]


def hostile_backup_path(tmp_path):
    return ["restore_service", str(tmp_path / HOSTILE_TEXT)]


def hostile_backup_output(tmp_path):
    (tmp_path / "a-file").write_text("")
    return ["backup_service", "-o", str(tmp_path / "a-file" / HOSTILE_TEXT)]


HOSTILE_COMMANDS = {
    "config_log: a rollback message": hostile_rollback_in_the_log,
    "config_diff: a name and instructions": hostile_names_in_a_diff,
    "config_rollback: a name kept": hostile_name_kept_by_a_rollback,
    "import_config: names in a refused file": hostile_names_in_an_import_file,
    "import_config: a name pruned": hostile_name_deleted_by_an_import,
    "export_config: a point refused": hostile_point_to_export,
    "check_config: a name in a problem": hostile_name_in_a_config_problem,
    "create_api_key: the key's name": hostile_api_key_name,
    "restore_service: a file name": hostile_backup_path,
    "backup_service: a file name": hostile_backup_output,
}


@pytest.mark.django_db(transaction=True)  # the history records committed change sets
@pytest.mark.parametrize("make_case", HOSTILE_COMMANDS.values(), ids=HOSTILE_COMMANDS.keys())
def test_no_command_prints_a_control_character_from_stored_text(tmp_path, make_case):
    said = command_output(*make_case(tmp_path))

    assert ESCAPED_HOSTILE_TEXT in said, said
    assert not TERMINAL_CONTROL.search(said), said
    assert not any(line.startswith("forged line") for line in said.splitlines()), said


# --- snippets and the include grammar --------------------------------------------------------


def test_a_chain_of_includes_thousands_deep_is_400_not_a_server_error(writer):
    # Written with a bare bulk_create, as SQL would: the API would refuse to build it.
    Snippet.objects.bulk_create(
        Snippet(name=f"c{i}", text=f"{{{{> c{i + 1} }}}}" if i < 3000 else "end")
        for i in range(3001)
    )

    assistant = writer.post(
        "/api/v1/assistants/", assistant_payload(instructions="{{> c0 }}"), format="json"
    )
    snippet = writer.post("/api/v1/snippets/", {"name": "top", "text": "{{> c0 }}"}, format="json")

    assert assistant.status_code == 400
    assert "too deeply" in assistant.json()["instructions"][0]
    assert snippet.status_code == 400 and "too deeply" in snippet.json()["text"][0]
    assert not Assistant.objects.exists()


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_two_megabytes_of_snippet_text_are_400_naming_the_field(writer, method):
    existing = Snippet.objects.create(name="big", text="small")
    url = "/api/v1/snippets/" if method == "POST" else f"/api/v1/snippets/{existing.id}/"
    body = {"name": "big" if method == "PUT" else "huge", "text": "x" * 2_000_000}

    response = writer.generic(method, url, json.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert "exceed" in response.json()["text"][0]
    assert list(Snippet.objects.values_list("name", "text")) == [("big", "small")]


TEMPLATE_PIECES = st.sampled_from(
    [
        "{{",
        "}}",
        "{{>",
        "\\{{",
        " ",
        ">",
        "a",
        "tone",
        "x_1",
        "-",
        "{{ name }}",
        "{{> tone }}",
        "{{>tone}}",
        "{{> missing }}",
        "\x00",
        "\ud800",
        "é",
        "\n",
    ]
)


@hypothesis_settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(TEMPLATE_PIECES, max_size=12), name=st.text(max_size=8))
def test_random_templates_in_snippets_and_instructions_are_never_a_server_error(pieces, name):
    client = key_client("write")
    Assistant.objects.all().delete()
    Snippet.objects.all().delete()
    Snippet.objects.create(name="tone", text="Be brief.")
    text = "".join(pieces)
    for url, body in (
        ("/api/v1/snippets/", {"name": name or "n", "text": text}),
        ("/api/v1/assistants/", assistant_payload(instructions=text)),
    ):
        response = client.generic("POST", url, json.dumps(body), content_type="application/json")
        assert response.status_code in (201, 400), response.content[:300]
        assert not any(word in response.content.decode() for word in INTERNALS)
