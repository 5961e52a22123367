"""Reads of assistants, and the resolved runtime config (SPEC "Resolved runtime config").

The config shape is built in one place, `assistant_config_build`, used by the per-assistant
endpoint and the bundle alike. Building costs a fixed number of queries however many
assistants and tools there are: the links come in one prefetch, joined to their tool and the
tool's delegate.
"""

from django.db.models import Prefetch, Q, QuerySet

from assistants.models import Assistant
from core.changes import assistant_revisions
from tools.models import AssistantToolLink, Tool


def assistant_list(*, filters: dict | None = None) -> QuerySet[Assistant]:
    """Assistants by name; `filters` may hold `is_active` and `is_secretary`."""
    return Assistant.objects.filter(**(filters or {})).order_by("name")


def assistant_tool_links(*, assistant: Assistant | None = None) -> QuerySet[AssistantToolLink]:
    """An assistant's links (active or not) with their tools, by tool name."""
    links = AssistantToolLink.objects.select_related("tool").order_by("tool__name")
    return links if assistant is None else links.filter(assistant=assistant)


def assistants_with_tools() -> QuerySet[Assistant]:
    """Assistants with their `tool_links` prefetched (for the detail endpoint)."""
    return Assistant.objects.prefetch_related(
        Prefetch("tool_links", queryset=assistant_tool_links())
    )


def assistant_references(*, assistant: Assistant) -> list[str]:
    """What would be left dangling if this assistant were deleted: the tools delegating to it."""
    return [
        f"tool “{name}” delegates to it"
        for name in assistant.delegate_tools.order_by("name").values_list("name", flat=True)
    ]


def _config_links() -> QuerySet[AssistantToolLink]:
    """Links that appear in a resolved config: active, to an active tool, and for a
    sub_assistant tool only while its delegate is active."""
    return (
        AssistantToolLink.objects.filter(is_active=True, tool__is_active=True)
        .filter(Q(tool__assistant__isnull=True) | Q(tool__assistant__is_active=True))
        .select_related("tool__assistant")
    )


def assistants_for_config() -> QuerySet[Assistant]:
    """Active assistants with their config links prefetched (as `config_links`)."""
    return Assistant.objects.filter(is_active=True).prefetch_related(
        Prefetch("tool_links", queryset=_config_links(), to_attr="config_links")
    )


def active_assistant_exists(*, assistant_id) -> bool:
    return Assistant.objects.filter(pk=assistant_id, is_active=True).exists()


def assistant_for_config(*, assistant_id) -> Assistant | None:
    """The active assistant with this id, ready for `assistant_config_build`, or None."""
    return assistants_for_config().filter(pk=assistant_id).first()


def _tool_config(tool: Tool) -> dict:
    delegate = tool.assistant
    return {
        "id": str(tool.id),
        "name": tool.name,
        "tool_type": tool.tool_type,
        "description": tool.description,
        "input_schema": tool.input_schema,
        "strict": tool.strict,
        "sub_assistant": (
            None if delegate is None else {"id": str(delegate.id), "name": delegate.name}
        ),
    }


def assistant_config_build(*, assistant: Assistant, revision: int) -> dict:
    """The resolved runtime config of an assistant, in SPEC's shape and key order.

    Uses `assistant.config_links` when prefetched (`assistants_for_config`), else one query.
    """
    links = getattr(assistant, "config_links", None)
    if links is None:
        links = list(_config_links().filter(assistant=assistant))
    # Sorted here, not by the database, so the order is the same under every collation.
    tools = sorted((link.tool for link in links), key=lambda tool: tool.name)
    return {
        "id": str(assistant.id),
        "name": assistant.name,
        "assistant_type": assistant.assistant_type,
        "model": assistant.model,
        "instructions": assistant.instructions,
        "openai_assistant_id": assistant.openai_assistant_id,
        "is_secretary": assistant.is_secretary,
        "revision": revision,
        "tools": [_tool_config(tool) for tool in tools],
    }


def config_bundle_build(*, revision: int) -> dict:
    """Every active assistant's resolved config, by name, and which one is the secretary.

    The bundle has the config revision; each config in it has its own, as when read alone.
    """
    assistants = sorted(assistants_for_config(), key=lambda assistant: assistant.name)
    revisions = assistant_revisions(assistant.id for assistant in assistants)
    secretary = next((assistant for assistant in assistants if assistant.is_secretary), None)
    return {
        "revision": revision,
        "secretary": None if secretary is None else str(secretary.id),
        "assistants": [
            assistant_config_build(assistant=assistant, revision=revisions[str(assistant.id)])
            for assistant in assistants
        ],
    }
