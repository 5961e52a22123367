"""The agent fields (model_settings, output, variables) in the import/export file (format
version 3; versions 1 and 2 still import), in the history, in configs at a revision, and in
check_config."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from jsonschema import Draft202012Validator

from assistants.models import Assistant
from config_backend.transfer import export_config, format_schema
from core.store import committed_counter
from snippets.models import Snippet
from tests.factories import (
    OPTIONAL_SCHEMA,
    import_error_lines,
    link,
    write_config_file,
)
from threads.models import UserAssistantThread
from tools.models import AssistantToolLink, Tool

pytestmark = pytest.mark.django_db

SETTINGS = {"temperature": 0.3, "max_output_tokens": 800, "tool_choice": "get_weather"}
OUTPUT = {
    "name": "reply",
    "schema": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": False,
    },
    "strict": True,
}
VARIABLES = [
    {"name": "user_name", "type": "string", "required": True, "default": None, "description": ""}
]


def agent(name="Secretary", **fields) -> dict:
    return {"name": name, "model": "gpt-4o-mini", **fields}


def weather(**fields) -> dict:
    return {"name": "get_weather", "tool_type": "weather", **fields}


def import_file(tmp_path, document) -> str:
    out = StringIO()
    call_command("import_config", write_config_file(tmp_path, document), "--no-backup", stdout=out)
    return out.getvalue()


@pytest.fixture
def configured(weather_tool):
    secretary = Assistant.objects.create(
        name="Secretary", model="gpt-4o-mini", instructions="Hello {{ user_name }}."
    )
    link(secretary, weather_tool)
    secretary.model_settings, secretary.output, secretary.variables = SETTINGS, OUTPUT, VARIABLES
    secretary.full_clean()
    secretary.save()
    return secretary


def test_the_export_writes_format_version_3_with_the_agent_fields(configured):
    document = export_config(include_threads=True)
    # The file the export writes is one the shipped schema describes.
    Draft202012Validator(format_schema()).validate(json.loads(json.dumps(document)))
    assert document["format_version"] == 3
    entry = document["assistants"][0]
    assert list(entry)[-4:] == ["model_settings", "output", "variables", "tools"]
    assert (entry["model_settings"], entry["output"], entry["variables"]) == (
        SETTINGS,
        OUTPUT,
        VARIABLES,
    )


def test_export_import_into_an_empty_database_export_is_byte_identical(tmp_path, configured):
    first = tmp_path / "first.json"
    call_command("export_config", "-o", str(first), stdout=StringIO())
    for model in (UserAssistantThread, AssistantToolLink, Tool, Assistant):
        model.objects.all()._raw_delete(model.objects.db)

    call_command("import_config", str(first), "--no-backup", stdout=StringIO())
    second = tmp_path / "second.json"
    call_command("export_config", "-o", str(second), stdout=StringIO())

    assert second.read_bytes() == first.read_bytes()
    assert Assistant.objects.get().model_settings == SETTINGS


def test_a_version_2_file_imports_with_the_defaults(tmp_path):
    import_file(tmp_path, {"format_version": 2, "assistants": [agent()], "tools": []})
    secretary = Assistant.objects.get()
    assert (secretary.model_settings, secretary.output, secretary.variables) == ({}, None, [])


def test_model_settings_in_a_version_2_file_are_an_unknown_key(tmp_path):
    document = {"format_version": 2, "assistants": [agent(model_settings={})], "tools": []}
    assert import_error_lines(write_config_file(tmp_path, document)) == [
        "/assistants/0/model_settings: unknown key in format_version 2 (it is in format_version "
        "3: set that)"
    ]


def test_each_agent_field_problem_points_into_the_file(tmp_path):
    document = {
        "format_version": 3,
        "assistants": [
            agent("A", model_settings={"temperature": 9, "seed": 1}),
            agent("B", output={"name": "r", "schema": OPTIONAL_SCHEMA, "strict": True}),
            agent("C", variables=[{"name": "n", "type": "integer", "default": "x"}]),
            agent("D", instructions="Hi {{ who }}"),
            agent("E", instructions="Hi {{ who"),
        ],
        "tools": [],
    }
    lines = import_error_lines(write_config_file(tmp_path, document))
    assert lines[0].startswith("/assistants/0/model_settings/seed: unknown model setting")
    assert lines[1].startswith("/assistants/0/model_settings/temperature: 9 is greater")
    assert lines[2].startswith("/assistants/1/output/schema/properties/tz: optional")
    assert lines[3] == "/assistants/2/variables/0/default: must be of type integer, not str 'x'"
    assert lines[4] == (
        "/assistants/3/instructions: placeholders name undeclared variables: “who”; declare "
        "them under variables."
    )
    assert lines[5].startswith("/assistants/4/instructions: template syntax error at character 3")
    assert len(lines) == 6
    assert not Assistant.objects.exists()


def test_the_import_refuses_a_tool_choice_naming_a_tool_the_assistant_lacks(tmp_path):
    document = {
        "format_version": 3,
        "assistants": [
            agent(model_settings={"tool_choice": "get_weather"}, tools=[]),
            agent("Other", model_settings={"tool_choice": "get_weather"}, tools=["get_weather"]),
        ],
        "tools": [weather()],
    }
    assert import_error_lines(write_config_file(tmp_path, document)) == [
        "/assistants/0/model_settings/tool_choice: “get_weather” is not one of this assistant's "
        "active linked tools; link and activate it first, or choose auto, required or none."
    ]


def test_the_import_refuses_deactivating_a_tool_an_assistant_it_leaves_out_chooses(
    tmp_path, configured
):
    document = {"format_version": 3, "assistants": [], "tools": [weather(is_active=False)]}
    assert import_error_lines(write_config_file(tmp_path, document)) == [
        "/tools/0/is_active: The model settings of “Secretary” name “get_weather” as "
        "tool_choice; change their tool_choice first."
    ]
    assert Tool.objects.get().is_active


@pytest.mark.django_db(transaction=True)
def test_the_history_records_the_agent_fields_and_the_config_at_a_revision_shows_them(
    writer, reader, configured
):
    before = committed_counter()
    response = writer.patch(
        f"/api/v1/assistants/{configured.pk}/",
        {"model_settings": {"temperature": 1.0}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    after = committed_counter()

    changes = reader.get(f"/api/v1/revisions/{after}/").json()["changes"]
    assert changes[0]["fields"] == {
        "model_settings": {"old": SETTINGS, "new": {"temperature": 1.0}}
    }
    then = reader.get(f"/api/v1/assistants/{configured.pk}/config/?revision={before}").json()
    assert (then["model_settings"], then["output"], then["variables"]) == (
        SETTINGS,
        OUTPUT,
        VARIABLES,
    )
    diff = reader.get(f"/api/v1/diff/?from={before}&to=live").json()
    assert diff["changes"][0]["fields"]["model_settings"]["new"] == {"temperature": 1.0}


@pytest.mark.django_db(transaction=True)
def test_rolling_back_restores_the_agent_fields(writer, configured):
    before = committed_counter()
    refused = writer.patch(
        f"/api/v1/assistants/{configured.pk}/", {"output": None, "variables": []}, format="json"
    )
    assert refused.status_code == 400  # the placeholder still names the variable
    writer.patch(
        f"/api/v1/assistants/{configured.pk}/",
        {"output": None, "variables": [], "instructions": "Hello."},
        format="json",
    )
    configured.refresh_from_db()
    assert (configured.output, configured.variables) == (None, [])

    assert writer.post("/api/v1/rollback/", {"to": before}, format="json").status_code == 200
    configured.refresh_from_db()
    assert (configured.output, configured.variables) == (OUTPUT, VARIABLES)


def test_check_config_warns_of_a_declared_variable_no_placeholder_uses(configured):
    extra = {"name": "tone", "type": "string", "required": False, "default": None}
    Assistant.objects.filter(pk=configured.pk).update(variables=[*VARIABLES, extra])
    out = StringIO()
    call_command("check_config", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        'warning: assistant "Secretary" variables: Declared but used by no placeholder: “tone”.'
    )
    assert lines[1].startswith("OK: ")


def test_check_config_lists_a_tool_choice_whose_link_was_deactivated_around_the_rules(
    configured,
):
    AssistantToolLink.objects.update(is_active=False)
    out = StringIO()
    with pytest.raises(Exception, match="problem"):
        call_command("check_config", stdout=out)
    assert out.getvalue().splitlines() == [
        'assistant "Secretary" model_settings/tool_choice: “get_weather” is not one of this '
        "assistant's active linked tools; link and activate it first, or choose auto, required "
        "or none."
    ]


def test_an_import_bringing_an_undeclared_placeholder_to_an_assistant_it_leaves_out_is_refused(
    tmp_path,
):
    Snippet.objects.create(name="tone", text="Be brief.")
    Assistant.objects.create(name="Includer", model="m", instructions="Hi. {{> tone }}")
    document = {
        "format_version": 3,
        "assistants": [],
        "tools": [],
        "snippets": [{"name": "tone", "text": "Be brief, {{ user_name }}."}],
    }
    assert import_error_lines(write_config_file(tmp_path, document)) == [
        '/snippets: assistant "Includer", which this file does not mention: placeholders name '
        "undeclared variables: “user_name”; declare them under variables."
    ]
    assert Snippet.objects.get().text == "Be brief."
