"""Reads of tools."""

from django.db.models import QuerySet

from tools.models import Tool


def tool_list(*, filters: dict | None = None) -> QuerySet[Tool]:
    """Tools by name; `filters` may hold `tool_type` and `is_active`."""
    return Tool.objects.filter(**(filters or {})).order_by("name")


def tool_references(*, tool: Tool) -> list[str]:
    """What would be left dangling if this tool were deleted: the assistants linking it."""
    return [
        f"assistant “{name}” uses it"
        for name in tool.assistant_links.order_by("assistant__name").values_list(
            "assistant__name", flat=True
        )
    ]
