"""Rule 8: a strict tool's input schema must be one OpenAI strict function calling accepts;
every problem is a 400 naming its JSON pointer, and the flag travels through the API and the
resolved config."""

import copy

import pytest

from tests.factories import (
    OPTIONAL_PROBLEM,
    OPTIONAL_SCHEMA,
    STRICT_READY_SCHEMA,
    link,
)
from tools.models import Tool

pytestmark = pytest.mark.django_db


def ready(**changes) -> dict:
    """STRICT_READY_SCHEMA with some of its top-level keys replaced (None drops one)."""
    schema = copy.deepcopy(STRICT_READY_SCHEMA)
    schema.update(changes)
    return {key: value for key, value in schema.items() if value is not None}


def with_property(name, subschema) -> dict:
    schema = copy.deepcopy(STRICT_READY_SCHEMA)
    schema["properties"][name] = subschema
    schema["required"].append(name)
    return schema


def nested_objects(levels: int) -> dict:
    """A root object holding `levels - 1` objects nested in one another (`levels` in all)."""
    inner = {"type": "object", "properties": {}, "additionalProperties": False}
    for _ in range(levels - 1):
        inner = {
            "type": "object",
            "properties": {"a": inner},
            "required": ["a"],
            "additionalProperties": False,
        }
    return inner


def create_tool(client, schema, *, strict=True, name="get_weather"):
    payload = {"name": name, "tool_type": "weather", "input_schema": schema, "strict": strict}
    return client.post("/api/v1/tools/", payload, format="json")


# --- rule 8: what strict mode refuses, each problem with its pointer ----------------------------

REFUSED = {
    "an optional property": (
        OPTIONAL_SCHEMA,
        [f"/properties/tz: {OPTIONAL_PROBLEM}"],
    ),
    "an optional integer is told its own nullable type": (
        {**OPTIONAL_SCHEMA, "properties": {"hours": {"type": "integer"}}},
        [
            '/properties/hours: optional (not in "required"); strict mode sends every property: '
            'list it in "required" and, if it may be left out, make it nullable: '
            '"type": ["integer", "null"].'
        ],
    ),
    "no additionalProperties": (
        ready(additionalProperties=None),
        [
            '/additionalProperties: missing: strict mode needs "additionalProperties": false on '
            "every object."
        ],
    ),
    "additionalProperties as a schema": (
        ready(additionalProperties={}),
        [
            "/additionalProperties: is {}; strict mode needs false (only the listed properties "
            "can be produced)."
        ],
    ),
    "additionalProperties true": (
        ready(additionalProperties=True),
        [
            "/additionalProperties: is true; strict mode needs false (only the listed properties "
            "can be produced)."
        ],
    ),
    "a root anyOf": (
        ready(anyOf=[{"type": "object", "properties": {}, "additionalProperties": False}]),
        ['/anyOf: the root of a strict schema must not be an "anyOf".'],
    ),
    "a nested object left open": (
        with_property(
            "where",
            {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]},
        ),
        [
            "/properties/where/additionalProperties: missing: strict mode needs "
            '"additionalProperties": false on every object.'
        ],
    ),
    "a default": (
        with_property("hours", {"type": ["integer", "null"], "default": 24}),
        [
            "/properties/hours/default: 'default' is not supported in strict mode; every "
            'argument is always sent, so say in "description" what null stands for and make the '
            "property nullable."
        ],
    ),
    "oneOf": (
        with_property("when", {"oneOf": [{"type": "string"}, {"type": "integer"}]}),
        [
            '/properties/when: strict mode needs a "type" here (or "anyOf", "enum", "const").',
            "/properties/when/oneOf: 'oneOf' is not supported in strict mode; use \"anyOf\".",
        ],
    ),
    "allOf": (
        with_property("when", {"type": "string", "allOf": [{"minLength": 1}]}),
        [
            "/properties/when/allOf: 'allOf' is not supported in strict mode; OpenAI lists it "
            "as unsupported."
        ],
    ),
    "a format strict mode lacks": (
        with_property("site", {"type": "string", "format": "uri"}),
        [
            "/properties/site/format: 'uri' is not a format strict mode supports (date-time, "
            "time, date, duration, email, hostname, ipv4, ipv6, uuid)."
        ],
    ),
    "an array without items": (
        with_property("tags", {"type": "array"}),
        ['/properties/tags: strict mode needs "items" (the schema of every element).'],
    ),
    "a $ref with a sibling": (
        {
            **with_property("at", {"$ref": "#/$defs/place", "description": "Where."}),
            "$defs": {
                "place": {"type": "string"},
            },
        },
        [
            "/properties/at/$ref: must stand alone in strict mode (next to it: description); "
            "move those keywords into the definition it points at."
        ],
    ),
    "a $ref to nothing": (
        with_property("at", {"$ref": "#/$defs/nowhere"}),
        ["/properties/at/$ref: '#/$defs/nowhere' does not point at a schema in this document."],
    ),
    "a property without a type": (
        with_property("note", {"description": "Anything."}),
        ['/properties/note: strict mode needs a "type" here (or "anyOf", "enum", "const").'],
    ),
    "required naming no property": (
        ready(required=["city", "days", "units", "ghost"]),
        ["/required/3: 'ghost' is not one of the object's properties."],
    ),
    "11 levels of nesting": (
        nested_objects(11),
        [
            "/properties/a/properties/a/properties/a/properties/a/properties/a/properties/a/"
            "properties/a/properties/a/properties/a/properties/a: nested 11 levels deep; strict "
            "mode allows at most 10 (STRICT_SCHEMA_MAX_NESTING)."
        ],
    ),
}


@pytest.mark.parametrize(("schema", "expected"), REFUSED.values(), ids=REFUSED.keys())
def test_a_strict_tool_is_refused_with_every_problem_at_its_pointer(writer, schema, expected):
    response = create_tool(writer, schema)

    assert response.status_code == 400, response.content
    assert response.json() == {"input_schema": expected}
    assert not Tool.objects.exists()


@pytest.mark.parametrize("schema", [case[0] for case in REFUSED.values()], ids=REFUSED.keys())
def test_the_same_schema_is_accepted_for_a_tool_that_is_not_strict(writer, schema):
    response = create_tool(writer, schema, strict=False)

    assert response.status_code == 201, response.content
    assert response.json()["strict"] is False


ACCEPTED = {
    "nullable optionals": STRICT_READY_SCHEMA,
    "no arguments": {"type": "object", "properties": {}, "additionalProperties": False},
    "definitions and a recursive $ref": {
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/node"}, "again": {"$ref": "#"}},
        "required": ["root", "again"],
        "additionalProperties": False,
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "number", "multipleOf": 0.5},
                    "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]},
                },
                "required": ["value", "next"],
                "additionalProperties": False,
            }
        },
    },
    "every supported keyword": with_property(
        "all",
        {
            "type": "object",
            "title": "All",
            "properties": {
                "s": {"type": "string", "pattern": "^a", "format": "date", "maxLength": 9},
                "n": {"type": "number", "exclusiveMinimum": 0, "maximum": 5},
                "a": {"type": "array", "items": {"const": "x"}, "minItems": 1, "maxItems": 3},
                "e": {"enum": ["a", "b"]},
            },
            "required": ["s", "n", "a", "e"],
            "additionalProperties": False,
        },
    ),
    "10 levels of nesting": nested_objects(10),
}


@pytest.mark.parametrize("schema", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_a_strict_ready_schema_is_accepted(writer, schema):
    response = create_tool(writer, schema)

    assert response.status_code == 201, response.content
    assert response.json()["strict"] is True


def test_a_schema_with_many_problems_gets_all_of_them_at_once(writer):
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "default": "x"},
            "b": {"type": "object", "properties": {"c": {"type": "integer"}}},
        },
    }

    body = create_tool(writer, schema).json()

    assert [line.split(": ")[0] for line in body["input_schema"]] == [
        "/additionalProperties",
        "/properties/a",
        "/properties/a/default",
        "/properties/b",
        "/properties/b/additionalProperties",
        "/properties/b/properties/c",
    ]


LIMITS = {
    "properties": (
        {"STRICT_SCHEMA_MAX_PROPERTIES": 2},
        "/: 3 object properties in all; strict mode allows at most 2 "
        "(STRICT_SCHEMA_MAX_PROPERTIES).",
    ),
    "enum values": (
        {"STRICT_SCHEMA_MAX_ENUM_VALUES": 2},
        "/: 3 enum values in all; strict mode allows at most 2 (STRICT_SCHEMA_MAX_ENUM_VALUES).",
    ),
    "string length": (
        {"STRICT_SCHEMA_MAX_STRING_LENGTH": 20},
        "/: 31 characters of property names, definition names, enum and const values in all; "
        "strict mode allows at most 20 (STRICT_SCHEMA_MAX_STRING_LENGTH).",
    ),
    "one large string enum": (
        {"STRICT_SCHEMA_LARGE_ENUM_VALUES": 1, "STRICT_SCHEMA_MAX_LARGE_ENUM_LENGTH": 10},
        "/properties/units/enum: 3 values of 15 characters in all; strict mode allows at most 10 "
        "characters in one enum of more than 1 strings (STRICT_SCHEMA_MAX_LARGE_ENUM_LENGTH).",
    ),
}


@pytest.mark.parametrize(("limits", "expected"), LIMITS.values(), ids=LIMITS.keys())
def test_the_strict_limits_come_from_settings(writer, settings, limits, expected):
    for name, value in limits.items():
        setattr(settings, name, value)
    # STRICT_READY_SCHEMA: 3 properties (city, days, units: 13 characters), 3 enum values ("metric",
    # "imperial", null: 6 + 8 + 4 characters as text). The large-enum rule counts strings only.
    schema = STRICT_READY_SCHEMA
    if "STRICT_SCHEMA_LARGE_ENUM_VALUES" in limits:
        schema = with_property("x", {"type": "string"})
        schema["properties"]["units"] = {"type": "string", "enum": ["metric", "imperial", "k"]}

    assert create_tool(writer, schema).json() == {"input_schema": [expected]}


def test_the_default_limits_are_openais_published_ones(settings):
    assert settings.STRICT_SCHEMA_MAX_PROPERTIES == 5000
    assert settings.STRICT_SCHEMA_MAX_NESTING == 10
    assert settings.STRICT_SCHEMA_MAX_ENUM_VALUES == 1000
    assert settings.STRICT_SCHEMA_MAX_STRING_LENGTH == 120_000
    assert settings.STRICT_SCHEMA_LARGE_ENUM_VALUES == 250
    assert settings.STRICT_SCHEMA_MAX_LARGE_ENUM_LENGTH == 15_000
    assert settings.MAX_TOOLS_PER_ASSISTANT == 128


def test_a_schema_over_the_general_limits_is_refused_by_them_before_any_strict_check(writer):
    deep = '{"type": "object", "properties": {"p": ' * 1_000 + "{}" + "}}" * 1_000
    huge = {"type": "object", "description": "x" * 5_000_000}

    deep_response = create_tool(writer, deep)
    huge_response = create_tool(writer, huge)

    assert deep_response.status_code == 400
    assert deep_response.json()["input_schema"][0].endswith("nested deeper than 32 levels")
    assert huge_response.status_code in (400, 413), huge_response.content[:300]
    assert not Tool.objects.exists()


# --- the flag through the API and the resolved config ---------------------------------------


def test_patching_strict_on_is_refused_until_the_schema_is_ready(writer, secretary):
    tool = Tool.objects.create(name="get_time", tool_type="time", input_schema=OPTIONAL_SCHEMA)
    link(secretary, tool)
    url = f"/api/v1/tools/{tool.pk}/"

    refused = writer.patch(url, {"strict": True}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"input_schema": [f"/properties/tz: {OPTIONAL_PROBLEM}"]}
    tool.refresh_from_db()
    assert tool.strict is False

    fixed = {**OPTIONAL_SCHEMA, "required": ["tz"]}
    fixed["properties"] = {"tz": {"type": ["string", "null"]}}
    accepted = writer.patch(url, {"strict": True, "input_schema": fixed}, format="json")
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["strict"] is True
    config = writer.get(f"/api/v1/assistants/{secretary.pk}/config/").json()
    assert config["tools"][0]["strict"] is True
    assert list(config["tools"][0]) == [
        "id",
        "name",
        "tool_type",
        "description",
        "input_schema",
        "strict",
        "sub_assistant",
    ]


def test_a_strict_tool_cannot_be_given_a_schema_that_is_not_strict_ready(writer):
    tool = create_tool(writer, STRICT_READY_SCHEMA).json()

    response = writer.patch(
        f"/api/v1/tools/{tool['id']}/", {"input_schema": OPTIONAL_SCHEMA}, format="json"
    )

    assert response.json() == {"input_schema": [f"/properties/tz: {OPTIONAL_PROBLEM}"]}
    assert Tool.objects.get().input_schema == STRICT_READY_SCHEMA
