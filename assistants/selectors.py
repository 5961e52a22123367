"""Reads of assistants, and the resolved runtime config (docs/contract.md, "Resolved
runtime config").

The config shape is defined in one place, `resolved_config` (and `resolved_bundle`), from plain
values: used by the live configs (`assistant_config_build`, per assistant and in the bundle)
and by the configs at a revision (config_backend.history.selectors). Building the live ones
costs a fixed number of queries however many assistants and tools there are: the links come
in one prefetch, joined to their tool and the tool's delegate.
"""

from collections.abc import Iterable, Mapping

from django.db.models import Prefetch, Q, QuerySet
from django.utils.translation import gettext

from assistants.models import Assistant
from assistants.prompts import expanded_instructions, snippet_texts
from core.changes import assistant_revisions
from snippets.validators import could_include
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
        gettext("tool “%(name)s” delegates to it") % {"name": name}
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


# The resolved config's shape, built from plain values: the live configs below (from rows) and
# the configs at a revision (config_backend.history, from a state) both go through these.


def resolved_config(*, assistant: Mapping, tools: Iterable[Mapping], revision: int) -> dict:
    """The resolved runtime config of an assistant, in the contract's shape and key order.

    `assistant`: its `id` and config fields; `tools`: the tools it shows (each with `id`, its
    config fields, and `sub_assistant`: {"id", "name"} of its delegate, or None), in any order.
    """
    # Sorted here, not by the database, so the order is the same under every collation.
    return {
        "id": str(assistant["id"]),
        "name": assistant["name"],
        "assistant_type": assistant["assistant_type"],
        "model": assistant["model"],
        "instructions": assistant["instructions"],
        "openai_assistant_id": assistant["openai_assistant_id"],
        "is_secretary": assistant["is_secretary"],
        "model_settings": assistant["model_settings"],
        "output": assistant["output"],
        "variables": assistant["variables"],
        "revision": revision,
        "tools": [
            {
                "id": str(tool["id"]),
                "name": tool["name"],
                "tool_type": tool["tool_type"],
                "description": tool["description"],
                "input_schema": tool["input_schema"],
                "strict": tool["strict"],
                "sub_assistant": tool["sub_assistant"],
            }
            for tool in sorted(tools, key=lambda tool: tool["name"])
        ],
    }


def resolved_bundle(*, configs: Iterable[dict], revision: int) -> dict:
    """The bundle of active assistants' resolved configs (sorted by name here)."""
    configs = sorted(configs, key=lambda config: config["name"])
    secretary = next((config for config in configs if config["is_secretary"]), None)
    return {
        "revision": revision,
        "secretary": None if secretary is None else secretary["id"],
        "assistants": configs,
    }


def _tool_values(tool: Tool) -> dict:
    delegate = tool.assistant
    return {
        "id": tool.id,
        "name": tool.name,
        "tool_type": tool.tool_type,
        "description": tool.description,
        "input_schema": tool.input_schema,
        "strict": tool.strict,
        "sub_assistant": (
            None if delegate is None else {"id": str(delegate.id), "name": delegate.name}
        ),
    }


def assistant_config_build(
    *, assistant: Assistant, revision: int, snippets: Mapping[str, str] | None = None
) -> dict:
    """The resolved runtime config of an assistant (`resolved_config`), from its rows, its
    instructions with every include expanded.

    Uses `assistant.config_links` when prefetched (`assistants_for_config`), else one query;
    `snippets` (the active snippets' texts) when given, else one query if the instructions may
    include any: a fixed number however many snippets they include.
    """
    links = getattr(assistant, "config_links", None)
    if links is None:
        links = list(_config_links().filter(assistant=assistant))
    values = {name: getattr(assistant, name) for name in ("id", *Assistant.CONFIG_FIELDS)}
    if snippets is None and could_include(assistant.instructions):
        snippets = snippet_texts()
    values["instructions"] = expanded_instructions(assistant.instructions, snippets or {})
    return resolved_config(
        assistant=values,
        tools=[_tool_values(link.tool) for link in links],
        revision=revision,
    )


def config_bundle_build(*, revision: int) -> dict:
    """Every active assistant's resolved config, by name, and which one is the secretary.

    The bundle has the config revision; each config in it has its own, as when read alone.
    """
    assistants = list(assistants_for_config())
    revisions = assistant_revisions(assistant.id for assistant in assistants)
    # One query for the snippets of all of them, and none when no instructions may include one.
    includes = any(could_include(assistant.instructions) for assistant in assistants)
    snippets = snippet_texts() if includes else {}
    return resolved_bundle(
        configs=[
            assistant_config_build(
                assistant=assistant, revision=revisions[str(assistant.id)], snippets=snippets
            )
            for assistant in assistants
        ],
        revision=revision,
    )


def assistant_names(*, ids) -> dict:
    """{id: name} of the assistants among `ids` that exist (active or not); one query."""
    return dict(Assistant.objects.filter(id__in=ids).values_list("id", "name"))
