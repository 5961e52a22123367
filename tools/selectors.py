"""Reads of tools, and which assistants' resolved configs a change touches."""

from collections.abc import Iterable, Mapping

from django.db.models import Q, QuerySet
from django.utils.translation import gettext

from tools.models import AssistantToolLink, Tool

# What a delegating assistant's resolved config shows of its delegate (the `sub_assistant`
# object, and whether the tool appears at all).
DELEGATE_FIELDS = frozenset({"name", "is_active"})


def tool_list(*, filters: dict | None = None) -> QuerySet[Tool]:
    """Tools by name; `filters` may hold `tool_type` and `is_active`."""
    return Tool.objects.filter(**(filters or {})).order_by("name")


def tool_references(*, tool: Tool) -> list[str]:
    """What would be left dangling if this tool were deleted: the assistants linking it."""
    return [
        gettext("assistant “%(name)s” uses it") % {"name": name}
        for name in tool.assistant_links.order_by("assistant__name").values_list(
            "assistant__name", flat=True
        )
    ]


def config_dependents(
    *,
    assistant_fields: Mapping[object, Iterable[str]] | None = None,
    tool_ids: Iterable = (),
    link_assistant_ids: Iterable = (),
) -> set[str]:
    """The assistants whose resolved config a change set touches (docs/contract.md "Fine-grained
    freshness"), read after its writes, in its transaction.

    `assistant_fields`: the assistants it created, updated or deleted, with the fields that
    changed; `tool_ids`: the tools it updated; `link_assistant_ids`: the assistants of the links
    it created, updated or deleted. An assistant's config changes with the assistant, its links
    and its linked tools, and with the name and activity of the delegates of its linked tools.
    A tool created has no links yet; a tool deleted took its links along, each recorded.
    """
    assistant_fields = assistant_fields or {}
    affected = {str(pk) for pk in (*assistant_fields, *link_assistant_ids)}
    delegates = [pk for pk, fields in assistant_fields.items() if DELEGATE_FIELDS & set(fields)]
    tool_ids = list(tool_ids)
    if tool_ids or delegates:
        linking = AssistantToolLink.objects.filter(
            Q(tool_id__in=tool_ids) | Q(tool__assistant_id__in=delegates)
        ).values_list("assistant_id", flat=True)
        affected.update(str(pk) for pk in linking.distinct())
    return affected
