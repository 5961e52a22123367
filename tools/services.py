"""Writes to tools and to the links between assistants and tools."""

from django.core.exceptions import ValidationError
from django.db import transaction

from assistants.models import Assistant
from tools.models import AssistantToolLink, Tool

TOOL_FIELDS = ("name", "tool_type", "description", "input_schema", "assistant", "is_active")


@transaction.atomic
def tool_create(**fields) -> Tool:
    tool = Tool(**fields)
    tool.full_clean()
    tool.save()
    return tool


@transaction.atomic
def tool_update(*, tool: Tool, **fields) -> Tool:
    for name, value in fields.items():
        if name not in TOOL_FIELDS:
            raise ValueError(f"{name} is not an editable tool field")
        setattr(tool, name, value)
    tool.full_clean()
    tool.save()
    return tool


def tool_references(*, tool: Tool) -> list[str]:
    """What would be left dangling if this tool were deleted."""
    return [
        f"assistant “{name}” uses it"
        for name in tool.assistant_links.order_by("assistant__name").values_list(
            "assistant__name", flat=True
        )
    ]


@transaction.atomic
def tool_delete(*, tool: Tool) -> None:
    """Delete a tool; refuse while an assistant links it."""
    references = tool_references(tool=tool)
    if references:
        raise ValidationError(f"“{tool.name}” is still referenced: " + "; ".join(references) + ".")
    tool.delete()


@transaction.atomic
def tool_link(
    *, assistant: Assistant, tool: Tool, is_active: bool = True
) -> tuple[AssistantToolLink, bool]:
    """Link a tool to an assistant (or update the existing link); returns (link, created)."""
    link = AssistantToolLink.objects.filter(assistant=assistant, tool=tool).first()
    created = link is None
    if created:
        link = AssistantToolLink(assistant=assistant, tool=tool)
    link.is_active = is_active
    link.full_clean()
    link.save()
    return link, created


@transaction.atomic
def tool_unlink(*, assistant: Assistant, tool: Tool) -> bool:
    """Remove the link; returns whether there was one."""
    deleted, _ = AssistantToolLink.objects.filter(assistant=assistant, tool=tool).delete()
    return bool(deleted)
