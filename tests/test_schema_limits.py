"""Rule 1's limits with jsonschema-rs walking the metaschema: a strict schema as large as OpenAI
takes (5,000 values) goes in through the API and the import; past the limits, and for the
patterns and drafts the walk cannot take, a 400 naming the place (bench/schema_bench.py times
them)."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from tests.factories import (
    import_error_lines,
    strict_schema_of_values,
    tool_payload,
    write_config_file,
)
from tools.models import Tool

pytestmark = pytest.mark.django_db


def post_tool(client, schema, *, strict=True):
    payload = tool_payload(input_schema=schema, strict=strict)
    return client.post("/api/v1/tools/", json.dumps(payload), content_type="application/json")


def import_document(tools: list[dict]) -> dict:
    return {"format_version": 2, "assistants": [], "tools": tools}


def test_a_strict_schema_of_5000_values_is_accepted_through_the_api(writer, settings):
    schema = strict_schema_of_values(settings.SCHEMA_MAX_VALUES)

    response = post_tool(writer, schema)

    assert response.status_code == 201, response.content[:300]
    assert Tool.objects.get().input_schema == schema
    assert len(schema["properties"]) == 1_665


def test_a_strict_schema_of_5000_values_is_accepted_through_the_import(tmp_path, settings):
    schema = strict_schema_of_values(settings.SCHEMA_MAX_VALUES)
    tool = {"name": "big", "tool_type": "time", "input_schema": schema, "strict": True}

    call_command(
        "import_config",
        write_config_file(tmp_path, import_document([tool])),
        "--no-backup",
        stdout=StringIO(),
    )

    assert Tool.objects.get(name="big").input_schema == schema


def test_one_value_past_the_limit_is_refused_naming_it(writer, settings):
    schema = strict_schema_of_values(settings.SCHEMA_MAX_VALUES + 3)

    response = post_tool(writer, schema)

    assert response.status_code == 400
    assert response.json()["input_schema"] == ["/: more than 5,000 values"]
    assert not Tool.objects.exists()


def test_a_refused_schema_of_5000_values_is_told_its_first_problem(writer, settings):
    schema = strict_schema_of_values(settings.SCHEMA_MAX_VALUES)
    for name in ("p1000", "p1664"):
        schema["properties"][name]["type"] = "strin"

    response = post_tool(writer, schema)

    assert response.status_code == 400
    assert response.json()["input_schema"] == [
        "/properties/p1000/type: 'strin' is not valid under any of the given schemas"
    ]
    assert not Tool.objects.exists()


# Patterns that make Python's regex compiler raise instead of answering: before, a 500.
CRASHING_PATTERNS = {
    "a repetition over 4 billion": "a{99999999999}",
    "groups nested 500 deep": "(" * 500 + ")" * 500,
    "ASCII and Unicode flags together": "(?a)(?u)x",
}


@pytest.mark.parametrize("pattern", CRASHING_PATTERNS.values(), ids=CRASHING_PATTERNS.keys())
def test_a_pattern_that_crashes_pythons_compiler_is_400_at_its_pointer(writer, pattern):
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": pattern}}}

    response = post_tool(writer, schema, strict=False)

    assert response.status_code == 400
    assert response.json()["input_schema"] == [
        f"/properties/a/pattern: {pattern!r} is not a 'regex'"
    ]
    assert not Tool.objects.exists()


def test_patterns_past_their_character_budget_are_refused_naming_it(writer, settings):
    settings.SCHEMA_MAX_PATTERN_CHARACTERS = 100
    schema = {
        "type": "object",
        "properties": {"a": {"pattern": "a" * 60}},
        "patternProperties": {"b" * 50: {}},
    }

    refused = post_tool(writer, schema, strict=False)
    schema["patternProperties"] = {"b" * 40: {}}
    accepted = post_tool(writer, schema, strict=False)

    assert refused.status_code == 400
    assert refused.json()["input_schema"] == [
        "/: more than 100 characters of regular expressions (pattern, patternProperties) in all "
        "(SCHEMA_MAX_PATTERN_CHARACTERS)."
    ]
    assert accepted.status_code == 201, accepted.content


def test_a_draft_3_schema_is_refused_by_name_in_the_api_and_the_import(writer, tmp_path):
    schema = {"$schema": "http://json-schema.org/draft-03/schema#", "type": "object"}
    tool = {"name": "old", "tool_type": "time", "input_schema": schema}

    response = post_tool(writer, schema, strict=False)
    lines = import_error_lines(write_config_file(tmp_path, import_document([tool])))

    assert response.status_code == 400
    [message] = response.json()["input_schema"]
    assert message.startswith(
        "/$schema: JSON Schema draft 3 is not supported: 'http://json-schema.org/draft-03/schema#'"
    )
    assert any("/tools/0/input_schema/$schema: JSON Schema draft 3" in line for line in lines)
    assert not Tool.objects.exists()
