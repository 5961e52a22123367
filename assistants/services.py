"""Writes to assistants. Every write validates with full_clean() before it saves."""

from django.core.exceptions import ValidationError
from django.db import transaction

from assistants.models import Assistant

ASSISTANT_FIELDS = (
    "name",
    "is_secretary",
    "assistant_type",
    "model",
    "instructions",
    "openai_assistant_id",
    "is_active",
)


@transaction.atomic
def assistant_create(**fields) -> Assistant:
    assistant = Assistant(**fields)
    assistant.full_clean()
    assistant.save()
    return assistant


@transaction.atomic
def assistant_update(*, assistant: Assistant, **fields) -> Assistant:
    for name, value in fields.items():
        if name not in ASSISTANT_FIELDS:
            raise ValueError(f"{name} is not an editable assistant field")
        setattr(assistant, name, value)
    assistant.full_clean()
    assistant.save()
    return assistant


def assistant_references(*, assistant: Assistant) -> list[str]:
    """What would be left dangling if this assistant were deleted."""
    return [
        f"tool “{name}” delegates to it"
        for name in assistant.delegate_tools.order_by("name").values_list("name", flat=True)
    ]


@transaction.atomic
def assistant_delete(*, assistant: Assistant) -> None:
    """Delete an assistant, its own tool links and threads; refuse while a tool delegates to it."""
    references = assistant_references(assistant=assistant)
    if references:
        raise ValidationError(
            f"“{assistant.name}” is still referenced: " + "; ".join(references) + "."
        )
    assistant.delete()
