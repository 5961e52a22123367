"""The rules about assistants, as pure functions over plain values (no database access).

Rule 5 (what each assistant type needs), rule 6 (one active secretary), the size bound on
instructions (rule 12's MAX_INSTRUCTIONS_BYTES), the model settings (their JSON Schema,
model_settings.schema.json; rule 10's tool_choice is tools.validators) and the structured
output (rules 1 and 8 applied to its schema). Rule 11 (templates and variables) is
assistants.prompts. Model clean(), the services (through full_clean) and the import planner
all call these, so each rule and its message exist once; the callers only fetch the values.
"""

import json
import re
from collections.abc import Hashable, Iterable
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _
from jsonschema import Draft202012Validator

from core.api.json_input import JSONProblem, json_pointer
from tools.strict_schema import strict_schema_problems
from tools.validators import TOOL_CHOICE_MODES, TOOL_NAME_CHARACTERS, input_schema_problems

LLM = "llm"  # Assistant.Type.LLM
OPENAI_API = "openai_api"  # Assistant.Type.OPENAI_API


def assistant_type_errors(
    *, assistant_type: str, model: str, openai_assistant_id: str | None
) -> dict[str, str]:
    """Rule 5 for one assistant: {field: message}, empty when it holds."""
    errors = {}
    if assistant_type == LLM and not model:
        errors["model"] = _("An LLM assistant needs a model.")
    if assistant_type == OPENAI_API and not openai_assistant_id:
        errors["openai_assistant_id"] = _(
            "An OpenAI Assistants API assistant needs an OpenAI assistant id."
        )
    return errors


def is_active_secretary(*, is_secretary: bool, is_active: bool) -> bool:
    """Only an active secretary counts: an inactive one may stay flagged."""
    return bool(is_secretary and is_active)


def secretary_conflicts(
    assistants: Iterable[tuple[Hashable, str, bool, bool]],
) -> dict[Hashable, str]:
    """Rule 6 (at most one active secretary) over (key, name, is_secretary, is_active) rows.

    Returns, for each active secretary when there are several, the message naming another one
    (the first by name), so each row can be told which one stands in its way.
    """
    secretaries = sorted(
        (
            (name, key)
            for key, name, is_secretary, is_active in assistants
            if is_active_secretary(is_secretary=is_secretary, is_active=is_active)
        ),
        key=lambda secretary: secretary[0],
    )
    if len(secretaries) <= 1:
        return {}
    return {
        key: one_secretary_message(
            other=next(other for other, other_key in secretaries if other_key != key)
        )
        for _, key in secretaries
    }


def one_secretary_message(*, other: str) -> str:
    return _(
        "“%(other)s” is already the active secretary; there can be only one. "
        "Deactivate it or unset its secretary flag first."
    ) % {"other": other}


def instructions_size_error(text: str) -> str | None:
    """The size bound on instructions: a message when `text` is over MAX_INSTRUCTIONS_BYTES
    UTF-8 bytes, else None. Takes the text itself, so it applies as well to instructions
    expanded from snippets as to what is stored."""
    limit = settings.MAX_INSTRUCTIONS_BYTES
    if len(text) <= limit // 4:  # at most 4 bytes a character: no need to encode
        return None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size <= limit:
        return None
    return _(
        "Instructions are %(size)s bytes (UTF-8); at most %(limit)s are allowed "
        "(MAX_INSTRUCTIONS_BYTES)."
    ) % {"size": f"{size:,}", "limit": f"{limit:,}"}


# Model settings: the JSON Schema shipped in the repo, with the bounds that are settings.

MODEL_SETTINGS_SCHEMA_PATH = Path(__file__).with_name("model_settings.schema.json")


def model_settings_schema() -> dict:
    """The shipped schema with max_output_tokens' maximum and reasoning_effort's values taken
    from the settings MAX_OUTPUT_TOKENS and REASONING_EFFORTS."""
    return _model_settings_schema(settings.MAX_OUTPUT_TOKENS, tuple(settings.REASONING_EFFORTS))


@lru_cache(maxsize=4)
def _model_settings_schema(max_output_tokens: int, reasoning_efforts: tuple) -> dict:
    schema = json.loads(MODEL_SETTINGS_SCHEMA_PATH.read_text())
    properties = schema["properties"]
    properties["max_output_tokens"]["maximum"] = max_output_tokens
    properties["reasoning_effort"]["enum"] = list(reasoning_efforts)
    return schema


@lru_cache(maxsize=4)
def _model_settings_validator(max_output_tokens: int, reasoning_efforts: tuple):
    return Draft202012Validator(_model_settings_schema(max_output_tokens, reasoning_efforts))


def model_settings_problems(value) -> list[JSONProblem]:
    """What is wrong with an assistant's model settings, each with its pointer; unknown keys are
    named. Rule 10 (a tool_choice naming a tool needs it linked and active) needs the links:
    tools.validators.tool_choice_problem."""
    if not isinstance(value, dict):
        return [JSONProblem("/", _("must be a JSON object, not %s.") % type(value).__name__)]
    validator = _model_settings_validator(
        settings.MAX_OUTPUT_TOKENS, tuple(settings.REASONING_EFFORTS)
    )
    problems = []
    for error in validator.iter_errors(value):
        path = list(error.absolute_path)
        if error.validator == "additionalProperties":
            allowed = ", ".join(error.schema["properties"])
            problems.extend(
                JSONProblem(
                    json_pointer([key]),
                    _("unknown model setting “%(key)s” (known: %(allowed)s).")
                    % {"key": key, "allowed": allowed},
                )
                for key in sorted(error.instance)
                if key not in error.schema["properties"]
            )
        elif path == ["tool_choice"]:
            problems.append(
                JSONProblem(
                    "/tool_choice",
                    _("must be %(modes)s, or the name of one of the assistant's tools.")
                    % {"modes": ", ".join(TOOL_CHOICE_MODES)},
                )
            )
        else:
            problems.append(JSONProblem(json_pointer(path), error.message))
    tokens = value.get("max_output_tokens")
    if isinstance(tokens, float) and not any(p.pointer == "/max_output_tokens" for p in problems):
        # JSON Schema counts 5.0 as an integer; the provider's APIs do not.
        problems.append(
            JSONProblem("/max_output_tokens", _("must be an integer, not %s.") % tokens)
        )
    return sorted(problems, key=lambda problem: problem.pointer)


# Structured output: null, or {"name", "schema", "strict"}.

OUTPUT_KEYS = ("name", "schema", "strict")
_OUTPUT_NAME = re.compile(rf"\A{TOOL_NAME_CHARACTERS}\Z")  # \A…\Z: `$` matches before "\n"


def output_problems(value) -> tuple[dict | None, list[JSONProblem]]:
    """Check an assistant's structured output; returns it normalized (`strict` present) and its
    problems, each with its pointer (`/schema/properties/x: …`). The schema obeys rule 1
    (tools.validators.input_schema_problems: limits, metaschema, top-level object) and, when
    `strict`, rule 8 (tools.strict_schema)."""
    if value is None:
        return None, []
    if not isinstance(value, dict):
        return None, [
            JSONProblem("/", _("must be null or a JSON object, not %s.") % type(value).__name__)
        ]
    problems = [
        JSONProblem(
            json_pointer([key]),
            _("unknown key “%(key)s” (known: %(known)s).")
            % {"key": key, "known": ", ".join(OUTPUT_KEYS)},
        )
        for key in sorted(value)
        if key not in OUTPUT_KEYS
    ]
    name = value.get("name")
    if not isinstance(name, str) or not _OUTPUT_NAME.match(name):
        problems.append(
            JSONProblem("/name", _("required: 1 to 64 letters, digits, underscores or hyphens."))
        )
    strict = value.get("strict", False)
    if not isinstance(strict, bool):
        problems.append(JSONProblem("/strict", _("must be true or false.")))
    if "schema" not in value:
        problems.append(JSONProblem("/schema", _("required: a JSON Schema object.")))
        schema = None
    else:
        # Only an object: the legacy string form is a tool's, not an output's.
        raw = value["schema"]
        if isinstance(raw, dict):
            schema, schema_problems = input_schema_problems(raw)
        else:
            schema, schema_problems = (
                None,
                [JSONProblem("/", _("must be a JSON object, not %s.") % type(raw).__name__)],
            )
        if strict is True and not schema_problems:
            schema_problems = strict_schema_problems(schema)
        problems.extend(
            JSONProblem("/schema" + ("" if p.pointer == "/" else p.pointer), p.message)
            for p in schema_problems
        )
    if problems:
        return None, problems
    return {"name": name, "schema": schema, "strict": strict}, []
