"""The rules about tools, as pure functions over plain values (no database access).

Rule 1 (input schemas), rule 2 (names), rule 3 (delegates), rule 4 (delegation cycles, and
which links make the delegation graph), the link's mirrored delegate and rule 9 (active tools
per assistant), rule 10 (a tool_choice names a usable tool); rule 8 (strict schemas) is
tools.strict_schema. Model clean(), the
services (through full_clean) and the import planner all call these, so each rule and its
message exist once; the callers only fetch the values.
"""

import json
import re
from collections import defaultdict
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.api.json_input import JSONInputError, JSONProblem, json_problems, parse_json
from tools.metaschema import metaschema_problems

# Rule 2: the function name the LLM sees. One definition, two anchored forms of it.
TOOL_NAME_CHARACTERS = r"[a-zA-Z0-9_-]{1,64}"
# For the database's CheckConstraint: PostgreSQL's ^ and $ match only at the ends of the string.
TOOL_NAME_PATTERN = f"^{TOOL_NAME_CHARACTERS}$"

validate_tool_name = RegexValidator(
    # \A…\Z, not ^…$: in Python `$` also matches before a final newline.
    re.compile(rf"\A{TOOL_NAME_CHARACTERS}\Z"),
    gettext_lazy(
        "Use 1 to 64 letters, digits, underscores or hyphens (it is the function name the LLM "
        "sees)."
    ),
)


def input_schema_problems(value) -> tuple[dict | None, list[JSONProblem]]:
    """Parse and check a tool's input schema (rule 1); returns the schema and its problems.

    A JSON string (the legacy form) is parsed. Size, depth and storability are checked first,
    against the SCHEMA_MAX_* settings, so the metaschema walk that follows (tools.metaschema) is
    bounded; `format: regex` is checked (`pattern`, `patternProperties`) the way Python's
    validators compile it. Each problem names the JSON pointer of the failing part of the schema.
    """
    if isinstance(value, str):
        if len(value) > settings.SCHEMA_MAX_BYTES:
            return None, [JSONProblem("/", _too_large_message())]
        try:
            value = parse_json(value, max_depth=settings.SCHEMA_MAX_DEPTH)
        except JSONInputError as exc:
            return None, exc.problems
    if not isinstance(value, dict):
        return None, [
            JSONProblem(
                "/",
                _("must be a JSON object, not %(type)s.") % {"type": type(value).__name__},
            )
        ]
    problems = json_problems(
        value, max_depth=settings.SCHEMA_MAX_DEPTH, max_values=settings.SCHEMA_MAX_VALUES
    )
    if problems:
        return None, problems
    if len(json.dumps(value, ensure_ascii=False).encode()) > settings.SCHEMA_MAX_BYTES:
        return None, [JSONProblem("/", _too_large_message())]
    problems = metaschema_problems(value)
    if not problems and value.get("type") != "object":
        problems.append(
            JSONProblem("/type", _('the top-level type of a tool\'s arguments must be "object".'))
        )
    return value, problems


def _too_large_message() -> str:
    return _("larger than %(limit)s bytes (SCHEMA_MAX_BYTES).") % {
        "limit": f"{settings.SCHEMA_MAX_BYTES:,}"
    }


def validate_input_schema(value) -> dict:
    """Return the schema as a dict, or raise ValidationError naming where it is invalid."""
    schema, problems = input_schema_problems(value)
    if problems:
        raise ValidationError([str(problem) for problem in problems])
    return schema


# Rule 3: only a sub-assistant tool names a delegate, and it must.

SUB_ASSISTANT = "sub_assistant"  # Tool.Type.SUB_ASSISTANT


def delegate_errors(*, tool_type: str, delegate) -> dict[str, str]:
    """Rule 3 for one tool: {field: message}, empty when it holds. `delegate` is its id or None."""
    if tool_type == SUB_ASSISTANT and delegate is None:
        return {"assistant": _("A sub-assistant tool must name the assistant it delegates to.")}
    if tool_type != SUB_ASSISTANT and delegate is not None:
        return {"assistant": _("Only sub-assistant tools name a delegate assistant.")}
    return {}


# A link's sub_assistant mirrors its tool's delegate (the contract: kept in sync automatically).


def link_sub_assistant(*, tool_delegate):
    """What a link's sub_assistant must hold: its tool's delegate (an id, or None).

    The column is a copy kept so that deleting a delegate is refused by the database (PROTECT)
    and the graph can be read from the links alone. Every writer sets it from this, and every
    check (import verification, check_config) compares against it.
    """
    return tool_delegate


# Rule 4: no delegation cycles.


class DelegationLink(NamedTuple):
    """A link as the delegation graph sees it. `key` is however the caller names the link."""

    key: Hashable
    assistant: Hashable  # the assistant that has the tool
    is_active: bool  # the link's flag
    tool_is_active: bool
    delegate: Hashable | None  # the tool's delegate assistant


def makes_delegation_edge(*, link_is_active: bool, tool_is_active: bool, delegate) -> bool:
    """A link delegates (assistant → the tool's delegate) when it and its tool are active and
    the tool names a delegate; inactive ones don't count, so they can't close a cycle."""
    return bool(link_is_active and tool_is_active and delegate is not None)


def delegation_edges(links: Iterable[DelegationLink]) -> Iterator[DelegationLink]:
    """The links that are edges of the delegation graph."""
    return (
        link
        for link in links
        if makes_delegation_edge(
            link_is_active=link.is_active,
            tool_is_active=link.tool_is_active,
            delegate=link.delegate,
        )
    )


def delegation_graph(links: Iterable[DelegationLink]) -> defaultdict:
    """The delegation graph {assistant: {delegates}} made by these links."""
    edges = defaultdict(set)
    for link in delegation_edges(links):
        edges[link.assistant].add(link.delegate)
    return edges


def find_delegation_cycle(edges: Mapping, start) -> list | None:
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


def delegation_cycles(edges: Mapping) -> list[list]:
    """One cycle (start → … → start) per set of assistants that delegate in a circle."""
    cycles, reported = [], set()
    for start in _nodes_that_may_be_on_cycles(edges):
        cycle = find_delegation_cycle(edges, start)
        if cycle and frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            cycles.append(cycle)
    return cycles


def _nodes_that_may_be_on_cycles(edges: Mapping) -> list:
    """Peel off nodes without incoming edges (Kahn); only the rest can be on a cycle.

    Searching for a cycle from every assistant would cost O(V·E) on a large configuration.
    """
    nodes = set(edges)
    for targets in edges.values():
        nodes |= targets
    incoming = dict.fromkeys(nodes, 0)
    for targets in edges.values():
        for target in targets:
            incoming[target] += 1
    queue = [node for node, count in incoming.items() if count == 0]
    while queue:
        node = queue.pop()
        for target in edges.get(node, ()):
            incoming[target] -= 1
            if incoming[target] == 0:
                queue.append(target)
    return sorted((node for node, count in incoming.items() if count > 0), key=str)


def delegation_cycle_message(cycle: list, names: Mapping) -> str:
    """Name the cycle, with `names` ({assistant id: name})."""
    return _("This would create a delegation cycle: %(cycle)s.") % {
        "cycle": " → ".join(names[pk] for pk in cycle)
    }


# Rule 9: at most MAX_TOOLS_PER_ASSISTANT active tools per assistant.


def counts_as_active_tool(*, link_is_active: bool, tool_is_active: bool) -> bool:
    """A link counts toward its assistant's tools when it and its tool are active."""
    return bool(link_is_active and tool_is_active)


def tool_limit_problems(active_tools: Mapping[Hashable, int]) -> dict[Hashable, str]:
    """Rule 9 over {assistant: its number of active tools}: {assistant: message} for each
    assistant over MAX_TOOLS_PER_ASSISTANT."""
    limit = settings.MAX_TOOLS_PER_ASSISTANT
    return {
        assistant: (
            _(
                "%(count)s active tools; an assistant may have at most %(limit)s "
                "(MAX_TOOLS_PER_ASSISTANT). Deactivate or unlink some first."
            )
            % {"count": count, "limit": limit}
        )
        for assistant, count in active_tools.items()
        if count > limit
    }


# Rule 10: a model setting's `tool_choice` that names a tool needs that tool linked and active.
# (The rest of the model settings is the assistant's: assistants.validators.) It lives here,
# below assistants, because unlinking or deactivating a tool is refused by it too.

TOOL_CHOICE_MODES = ("auto", "required", "none")


def tool_choice_tool(model_settings) -> str | None:
    """The name of the tool that `model_settings["tool_choice"]` names, or None (unset, a mode
    such as "auto", or settings that are no object)."""
    if not isinstance(model_settings, Mapping):
        return None
    choice = model_settings.get("tool_choice")
    if not isinstance(choice, str) or choice in TOOL_CHOICE_MODES:
        return None
    return choice


def tool_choice_problem(*, tool: str, usable_tools: Iterable[str]) -> str | None:
    """Rule 10 from the assistant's side: why `tool_choice` cannot name `tool`, given the names
    of the assistant's active links to active tools (counts_as_active_tool), else None."""
    if tool in set(usable_tools):
        return None
    return _(
        "“%(tool)s” is not one of this assistant's active linked tools; link and "
        "activate it first, or choose auto, required or none."
    ) % {"tool": tool}


def tool_choice_dependents_message(*, tool: str, assistants: Iterable[str]) -> str:
    """Rule 10 from the tool's side: unlinking or deactivating `tool` is refused while these
    assistants' tool_choice names it."""
    names = ", ".join(f"“{name}”" for name in sorted(assistants))
    return _(
        "The model settings of %(assistants)s name “%(tool)s” as tool_choice; change their "
        "tool_choice first."
    ) % {"assistants": names, "tool": tool}
