"""Validation rules for tools: JSON Schema of the arguments, names, delegation cycles."""

import json
import math
import re

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import connection
from jsonschema import Draft202012Validator, exceptions, validators

TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"

validate_tool_name = RegexValidator(
    # \A…\Z, not ^…$: in Python `$` also matches before a final newline.
    re.compile(r"\A[a-zA-Z0-9_-]{1,64}\Z"),
    "Use 1 to 64 letters, digits, underscores or hyphens (it is the function name the LLM sees).",
)


def json_pointer(path) -> str:
    """Return the RFC 6901 pointer of a jsonschema error path; '/' for the root."""
    parts = [str(part).replace("~", "~0").replace("/", "~1") for part in path]
    return "/" + "/".join(parts) if parts else "/"


def unstorable_json_problems(value, pointer: str = "") -> list[tuple[str, str]]:
    """Where a parsed JSON value holds what PostgreSQL cannot store: NUL characters (in strings
    or keys) and non-finite numbers. Each problem as (JSON pointer, message)."""
    problems = []
    stack = [(pointer, value)]
    while stack:
        here, item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            problems.append((here or "/", "must not contain NUL (\\u0000) characters."))
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append((here or "/", f"{item} is not a JSON number that can be stored."))
        elif isinstance(item, dict):
            for key, child in item.items():
                escaped = str(key).replace("~", "~0").replace("/", "~1")
                if "\x00" in str(key):
                    problems.append((f"{here}/{escaped}", "keys must not contain NUL characters."))
                stack.append((f"{here}/{escaped}", child))
        elif isinstance(item, list):
            stack.extend((f"{here}/{index}", child) for index, child in enumerate(item))
    return sorted(problems)


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
    unstorable = unstorable_json_problems(value)
    if unstorable:
        return None, unstorable
    dialect = value.get("$schema", Draft202012Validator.META_SCHEMA["$id"])
    if not isinstance(dialect, str):
        return None, [("/$schema", "must be a string naming a JSON Schema draft.")]
    validator_class = Draft202012Validator
    if "$schema" in value:
        validator_class = validators.validator_for(value, default=None)
    if validator_class is None:
        known = ", ".join(sorted(validators._META_SCHEMAS))  # noqa: SLF001
        return None, [("/$schema", f"unknown JSON Schema draft {dialect!r} (known: {known}).")]
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
