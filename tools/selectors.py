"""Reads of tools."""

from django.db.models import QuerySet

from tools.models import Tool


def tool_list(*, filters: dict | None = None) -> QuerySet[Tool]:
    """Tools by name; `filters` may hold `tool_type` and `is_active`."""
    return Tool.objects.filter(**(filters or {})).order_by("name")
