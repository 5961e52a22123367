"""The rules about assistants, as pure functions over plain values (no database access).

Rule 5 (what each assistant type needs), rule 6 (one active secretary) and the size bound on
instructions (rule 12's MAX_INSTRUCTIONS_BYTES). Model clean(), the services (through
full_clean) and the import planner all call these, so each rule and its message exist once;
the callers only fetch the values.
"""

from collections.abc import Hashable, Iterable

from django.conf import settings
from django.utils.translation import gettext

LLM = "llm"  # Assistant.Type.LLM
OPENAI_API = "openai_api"  # Assistant.Type.OPENAI_API


def assistant_type_errors(
    *, assistant_type: str, model: str, openai_assistant_id: str | None
) -> dict[str, str]:
    """Rule 5 for one assistant: {field: message}, empty when it holds."""
    errors = {}
    if assistant_type == LLM and not model:
        errors["model"] = gettext("An LLM assistant needs a model.")
    if assistant_type == OPENAI_API and not openai_assistant_id:
        errors["openai_assistant_id"] = gettext(
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
    return gettext(
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
    return gettext(
        "Instructions are %(size)s bytes (UTF-8); at most %(limit)s are allowed "
        "(MAX_INSTRUCTIONS_BYTES)."
    ) % {"size": f"{size:,}", "limit": f"{limit:,}"}
