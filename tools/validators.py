"""Validation rules for tools: JSON Schema of the arguments, names, delegation cycles."""

import json

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import connection
from jsonschema import Draft202012Validator, exceptions, validators

TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"

validate_tool_name = RegexValidator(
    TOOL_NAME_PATTERN,
    "Use 1 to 64 letters, digits, underscores or hyphens (it is the function name the LLM sees).",
)


def json_pointer(path) -> str:
    """Return the RFC 6901 pointer of a jsonschema error path; '/' for the root."""
    parts = [str(part).replace("~", "~0").replace("/", "~1") for part in path]
    return "/" + "/".join(parts) if parts else "/"


def input_schema_errors(value) -> tuple[dict | None, list[str]]:
    """Parse and check a tool's input schema.

    Returns the schema as a dict (a JSON string, the legacy form, is parsed) and the list of
    problems, each starting with the JSON pointer of the failing part of the schema.
    """
    schema, problems = input_schema_problems(value)
    return schema, [f"{pointer}: {message}" for pointer, message in problems]


def input_schema_problems(value) -> tuple[dict | None, list[tuple[str, str]]]:
    """Like input_schema_errors(), with each problem as (JSON pointer, message)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            return None, [
                ("/", f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}).")
            ]
    if not isinstance(value, dict):
        return None, [("/", f"must be a JSON object, not {type(value).__name__}.")]
    validator_class = validators.validator_for(value, default=Draft202012Validator)
    problems = [
        (json_pointer(error.absolute_path), error.message)
        for error in sorted(
            validator_class(validator_class.META_SCHEMA).iter_errors(value),
            key=exceptions.relevance,
        )
    ]
    if not problems and value.get("type") != "object":
        problems.append(("/type", 'the top-level type of a tool\'s arguments must be "object".'))
    return value, problems


def validate_input_schema(value) -> dict:
    """Return the schema as a dict, or raise ValidationError naming where it is invalid."""
    schema, problems = input_schema_errors(value)
    if problems:
        raise ValidationError(problems)
    return schema


def find_delegation_cycle(edges: dict, start) -> list | None:
    """Return a path start → … → start through `edges` ({node: set(nodes)}), or None."""
    stack = [(start, [start])]
    seen = set()
    while stack:
        node, path = stack.pop()
        for nxt in edges.get(node, ()):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def lock_delegation_graph():
    """Serialize changes to the delegation graph, so two concurrent edits can't close a cycle."""
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('delegation_graph'))")
