"""Rule 8: a strict tool's input schema is one that OpenAI strict function calling accepts.

OpenAI's structured outputs accept a subset of JSON Schema ("Supported schemas",
https://platform.openai.com/docs/guides/structured-outputs#supported-schemas): the root is an
object and not an `anyOf`; every object has `"additionalProperties": false` and lists every
property in `required` (an optional argument is a nullable one, `"type": ["string", "null"]`);
only some keywords; size limits. The OpenAI Agents SDK (`agents.strict_schema.
ensure_strict_json_schema`) makes a schema strict by rewriting it, adding the missing
`additionalProperties: false` and making every property required, which silently turns an
optional argument into a mandatory one. Here nothing is rewritten: every departure is reported
with its JSON pointer, so staff decide what the argument means.

A pure function over a schema that already passed rule 1 (tools.validators), whose limits
(SCHEMA_MAX_*) bound this walk too; it is iterative, so depth costs no stack. `$ref`s are not
followed: each definition is checked where it is written.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from django.conf import settings

from core.api.json_input import JSONProblem, json_pointer

STRING_FORMATS = (
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uuid",
)
# What OpenAI documents as supported, by kind of value; the kinds are not cross-checked
# against `type` (JSON Schema ignores a keyword that does not apply to the value).
ANY_KEYWORDS = {
    "type",
    "description",
    "title",
    "enum",
    "const",
    "anyOf",
    "$ref",
    "$defs",
    "definitions",
}
STRING_KEYWORDS = {"pattern", "format", "minLength", "maxLength"}
NUMBER_KEYWORDS = {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"}
ARRAY_KEYWORDS = {"items", "minItems", "maxItems"}
OBJECT_KEYWORDS = {"properties", "required", "additionalProperties"}
SUPPORTED_KEYWORDS = (
    ANY_KEYWORDS | STRING_KEYWORDS | NUMBER_KEYWORDS | ARRAY_KEYWORDS | OBJECT_KEYWORDS
)
_UNSUPPORTED_HINTS = {
    "default": (
        'every argument is always sent, so say in "description" what null stands for and '
        "make the property nullable"
    ),
    "oneOf": 'use "anyOf"',
    "nullable": 'not JSON Schema; add "null" to "type", e.g. "type": ["string", "null"]',
    "$schema": "strict schemas are read as JSON Schema 2020-12; drop it",
}
_DOCUMENTED_UNSUPPORTED = (
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
)
# What lets strict decoding know which values to produce.
_TYPING_KEYWORDS = ("type", "anyOf", "$ref", "enum", "const")


@dataclass
class _Totals:
    properties: int = 0
    enum_values: int = 0
    string_length: int = 0


def strict_schema_problems(schema) -> list[JSONProblem]:
    """Every reason OpenAI strict mode would refuse this input schema, each with its pointer.

    Empty when the schema can be sent with `"strict": true` as it is.
    """
    if not isinstance(schema, dict):
        return [JSONProblem("/", f"must be a JSON object, not {type(schema).__name__}.")]
    problems: list[JSONProblem] = []
    if schema.get("type") != "object":
        problems.append(
            JSONProblem("/type", 'the root of a strict schema must be "type": "object".')
        )
    if "anyOf" in schema:
        problems.append(
            JSONProblem("/anyOf", 'the root of a strict schema must not be an "anyOf".')
        )
    totals = _Totals()
    for path, node, nesting in _subschemas(schema):
        problems.extend(_node_problems(schema, path, node, nesting, totals))
    problems.extend(_total_problems(totals))
    return sorted(problems, key=lambda problem: problem.pointer)


def _subschemas(schema: dict) -> Iterator[tuple[tuple, object, int]]:
    """(path, subschema, nesting) for every subschema, in document order.

    Nesting counts the objects and arrays from the root (1) down to here: `properties/*` and
    `items` go one level down, `anyOf/*` and definitions do not.
    """
    stack = [((), schema, 1)]
    while stack:
        path, node, nesting = stack.pop()
        yield path, node, nesting
        if not isinstance(node, dict) or "$ref" in node:
            continue
        children = []
        for keyword in ("$defs", "definitions"):
            if isinstance(node.get(keyword), dict):
                children += [
                    ((*path, keyword, name), sub, nesting) for name, sub in node[keyword].items()
                ]
        if isinstance(node.get("properties"), dict):
            children += [
                ((*path, "properties", name), sub, nesting + 1)
                for name, sub in node["properties"].items()
            ]
        if "items" in node:
            children.append(((*path, "items"), node["items"], nesting + 1))
        if isinstance(node.get("anyOf"), list):
            children += [
                ((*path, "anyOf", index), sub, nesting) for index, sub in enumerate(node["anyOf"])
            ]
        stack.extend(reversed(children))


def _node_problems(
    root: dict, path: tuple, node, nesting: int, totals: _Totals
) -> Iterator[JSONProblem]:
    here = json_pointer(path)

    def at(*tail) -> str:
        return json_pointer((*path, *tail))

    if not isinstance(node, dict):
        yield JSONProblem(
            here, "a boolean schema is not supported in strict mode; write the schema out."
        )
        return
    for keyword in node:
        if keyword not in SUPPORTED_KEYWORDS:
            yield JSONProblem(at(keyword), _unsupported_message(keyword))
    if "$ref" in node:
        yield from _ref_problems(root, path, node)
        return
    if not any(keyword in node for keyword in _TYPING_KEYWORDS):
        yield JSONProblem(here, 'strict mode needs a "type" here (or "anyOf", "enum", "const").')
    types = node.get("type")
    types = types if isinstance(types, list) else [types]
    is_object = "object" in types or "properties" in node
    is_array = "array" in types or "items" in node
    if (is_object or is_array) and nesting == settings.STRICT_SCHEMA_MAX_NESTING + 1:
        yield JSONProblem(
            here,
            f"nested {nesting} levels deep; strict mode allows at most "
            f"{settings.STRICT_SCHEMA_MAX_NESTING} (STRICT_SCHEMA_MAX_NESTING).",
        )
    if is_object:
        yield from _object_problems(path, node, totals)
    if is_array and "items" not in node:
        yield JSONProblem(here, 'strict mode needs "items" (the schema of every element).')
    if "format" in node and node["format"] not in STRING_FORMATS:
        yield JSONProblem(
            at("format"),
            f"{node['format']!r} is not a format strict mode supports "
            f"({', '.join(STRING_FORMATS)}).",
        )
    for keyword in ("$defs", "definitions"):
        if isinstance(node.get(keyword), dict):
            totals.string_length += sum(len(name) for name in node[keyword])
    if "enum" in node and isinstance(node["enum"], list):
        yield from _enum_problems(at("enum"), node["enum"], totals)
    if "const" in node:
        totals.string_length += _text_length(node["const"])


def _object_problems(path: tuple, node: dict, totals: _Totals) -> Iterator[JSONProblem]:
    properties = node.get("properties") if isinstance(node.get("properties"), dict) else {}
    additional = node.get("additionalProperties")
    if "additionalProperties" not in node:
        yield JSONProblem(
            json_pointer((*path, "additionalProperties")),
            'missing: strict mode needs "additionalProperties": false on every object.',
        )
    elif additional is not False:
        yield JSONProblem(
            json_pointer((*path, "additionalProperties")),
            f"is {json.dumps(additional)}; strict mode needs false (only the listed properties "
            "can be produced).",
        )
    required = node.get("required", [])
    required = required if isinstance(required, list) else []
    for name, subschema in properties.items():
        if name not in required:
            yield JSONProblem(
                json_pointer((*path, "properties", name)),
                'optional (not in "required"); strict mode sends every property: list it in '
                '"required" and, if it may be left out, make it nullable: '
                f"{_nullable_example(subschema)}.",
            )
    for index, name in enumerate(required):
        if name not in properties:
            yield JSONProblem(
                json_pointer((*path, "required", index)),
                f"{name!r} is not one of the object's properties.",
            )
    totals.properties += len(properties)
    totals.string_length += sum(len(name) for name in properties)


def _enum_problems(pointer: str, values: list, totals: _Totals) -> Iterator[JSONProblem]:
    length = sum(_text_length(value) for value in values)
    totals.enum_values += len(values)
    totals.string_length += length
    if (
        len(values) > settings.STRICT_SCHEMA_LARGE_ENUM_VALUES
        and all(isinstance(value, str) for value in values)
        and length > settings.STRICT_SCHEMA_MAX_LARGE_ENUM_LENGTH
    ):
        yield JSONProblem(
            pointer,
            f"{len(values):,} values of {length:,} characters in all; strict mode allows at most "
            f"{settings.STRICT_SCHEMA_MAX_LARGE_ENUM_LENGTH:,} characters in one enum of more than "
            f"{settings.STRICT_SCHEMA_LARGE_ENUM_VALUES:,} strings "
            "(STRICT_SCHEMA_MAX_LARGE_ENUM_LENGTH).",
        )


def _ref_problems(root: dict, path: tuple, node: dict) -> Iterator[JSONProblem]:
    pointer = json_pointer((*path, "$ref"))
    others = sorted(set(node) - {"$ref"})
    if others:
        yield JSONProblem(
            pointer,
            f"must stand alone in strict mode (next to it: {', '.join(others)}); move those "
            "keywords into the definition it points at.",
        )
    ref = node["$ref"]
    if not isinstance(ref, str) or not ref.startswith("#") or _resolve(root, ref) is None:
        yield JSONProblem(pointer, f"{ref!r} does not point at a schema in this document.")


def _resolve(root: dict, ref: str):
    """The subschema a local `$ref` ("#", "#/$defs/name") names, or None."""
    target = root
    fragment = ref[1:]
    if not fragment:
        return root
    if not fragment.startswith("/"):
        return None
    for token in unquote(fragment[1:]).split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and token in target:
            target = target[token]
        elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
            target = target[int(token)]
        else:
            return None
    return target if isinstance(target, dict) else None


def _total_problems(totals: _Totals) -> Iterator[JSONProblem]:
    limits = (
        (
            totals.properties,
            settings.STRICT_SCHEMA_MAX_PROPERTIES,
            "object properties",
            "STRICT_SCHEMA_MAX_PROPERTIES",
        ),
        (
            totals.enum_values,
            settings.STRICT_SCHEMA_MAX_ENUM_VALUES,
            "enum values",
            "STRICT_SCHEMA_MAX_ENUM_VALUES",
        ),
        (
            totals.string_length,
            settings.STRICT_SCHEMA_MAX_STRING_LENGTH,
            "characters of property names, definition names, enum and const values",
            "STRICT_SCHEMA_MAX_STRING_LENGTH",
        ),
    )
    for count, limit, what, setting in limits:
        if count > limit:
            yield JSONProblem(
                "/", f"{count:,} {what} in all; strict mode allows at most {limit:,} ({setting})."
            )


def _nullable_example(subschema) -> str:
    types = subschema.get("type") if isinstance(subschema, dict) else None
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, list) or not types or "null" in types:
        return '"type": [..., "null"]'
    return f'"type": {json.dumps([*types, "null"])}'


def _text_length(value) -> int:
    return len(value) if isinstance(value, str) else len(json.dumps(value))


def _unsupported_message(keyword: str) -> str:
    hint = _UNSUPPORTED_HINTS.get(keyword)
    if hint is None and keyword in _DOCUMENTED_UNSUPPORTED:
        hint = "OpenAI lists it as unsupported"
    return f"{keyword!r} is not supported in strict mode" + (f"; {hint}." if hint else ".")
