"""Validation rules for tools: JSON Schema of the arguments, names, delegation cycles."""

import itertools
import json
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import connection
from jsonschema import Draft202012Validator, exceptions, validators

from core.json_input import (
    MAX_PROBLEMS,
    JSONInputError,
    JSONProblem,
    json_pointer,
    json_problems,
    parse_json,
)

TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"

validate_tool_name = RegexValidator(
    # \A…\Z, not ^…$: in Python `$` also matches before a final newline.
    re.compile(r"\A[a-zA-Z0-9_-]{1,64}\Z"),
    "Use 1 to 64 letters, digits, underscores or hyphens (it is the function name the LLM sees).",
)


def input_schema_problems(value) -> tuple[dict | None, list[JSONProblem]]:
    """Parse and check a tool's input schema (rule 1); returns the schema and its problems.

    A JSON string (the legacy form) is parsed. Size, depth and storability are checked first,
    against the SCHEMA_MAX_* settings, so the metaschema walk that follows is bounded; `format:
    regex` is checked (`pattern`, `patternProperties`) the way Python's validators compile it.
    Each problem names the JSON pointer of the failing part of the schema.
    """
    if isinstance(value, str):
        if len(value) > settings.SCHEMA_MAX_BYTES:
            return None, [JSONProblem("/", _too_large_message())]
        try:
            value = parse_json(value, max_depth=settings.SCHEMA_MAX_DEPTH)
        except JSONInputError as exc:
            return None, exc.problems
    if not isinstance(value, dict):
        return None, [JSONProblem("/", f"must be a JSON object, not {type(value).__name__}.")]
    problems = json_problems(
        value, max_depth=settings.SCHEMA_MAX_DEPTH, max_values=settings.SCHEMA_MAX_VALUES
    )
    if problems:
        return None, problems
    if len(json.dumps(value, ensure_ascii=False).encode()) > settings.SCHEMA_MAX_BYTES:
        return None, [JSONProblem("/", _too_large_message())]
    dialect = value.get("$schema", Draft202012Validator.META_SCHEMA["$id"])
    if not isinstance(dialect, str):
        return None, [JSONProblem("/$schema", "must be a string naming a JSON Schema draft.")]
    validator_class = Draft202012Validator
    if "$schema" in value:
        validator_class = validators.validator_for(value, default=None)
    if validator_class is None:
        known = ", ".join(sorted(validators._META_SCHEMAS))  # noqa: SLF001
        return None, [
            JSONProblem("/$schema", f"unknown JSON Schema draft {dialect!r} (known: {known}).")
        ]
    metaschema = validator_class(
        validator_class.META_SCHEMA, format_checker=validator_class.FORMAT_CHECKER
    )
    # The first few errors are enough to fix a schema, and stopping there bounds the cost of
    # refusing one with thousands of mistakes.
    errors = itertools.islice(metaschema.iter_errors(value), MAX_PROBLEMS)
    problems = [
        JSONProblem(json_pointer(error.absolute_path), error.message)
        for error in sorted(errors, key=exceptions.relevance)
    ]
    if not problems and value.get("type") != "object":
        problems.append(
            JSONProblem("/type", 'the top-level type of a tool\'s arguments must be "object".')
        )
    return value, problems


def _too_large_message() -> str:
    return f"larger than {settings.SCHEMA_MAX_BYTES:,} bytes (SCHEMA_MAX_BYTES)."


def validate_input_schema(value) -> dict:
    """Return the schema as a dict, or raise ValidationError naming where it is invalid."""
    schema, problems = input_schema_problems(value)
    if problems:
        raise ValidationError([str(problem) for problem in problems])
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
