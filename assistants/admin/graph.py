"""The delegation graph as a picture (docs/admin.md "Delegation graph"): every assistant, the
tools it links, and the assistant each sub-assistant tool delegates to, drawn by Graphviz's
`dot` as SVG; what is inactive (an assistant, a tool, a link) is drawn grey, so staff see at a
glance what the runtime gets and what it does not.

The graph is read in three queries whatever its size, and written in the DOT language with
every name escaped (a name is data, never DOT syntax). `dot` runs as a subprocess with a
timeout; when it is missing or too slow the page says so instead of failing.
"""

import re
import shutil
import subprocess
from dataclasses import dataclass

from django.urls import reverse
from django.utils.translation import gettext

from assistants.models import Assistant
from tools.models import AssistantToolLink, Tool
from tools.validators import counts_as_active_tool

# Colours of what the runtime gets, and of what it does not (inactive).
ACTIVE_COLOUR = "#264b5d"
DELEGATE_COLOUR = "#417690"
INACTIVE_COLOUR = "#b0b0b0"
# The SVG class of an inactive node or edge (graphviz adds it to the element's own class).
INACTIVE_CLASS = "inactive"
# How long `dot` may take; a config of thousands of rows is drawn in well under a second.
DOT_TIMEOUT_SECONDS = 20


class GraphUnavailable(Exception):
    """`dot` could not draw the graph; the message says why, for the page to show."""


@dataclass(frozen=True)
class DelegationGraph:
    dot: str  # the graph in the DOT language
    assistants: int
    tools: int
    links: int


def assistant_node(pk) -> str:
    return f"assistant_{pk.hex}"


def tool_node(pk) -> str:
    return f"tool_{pk.hex}"


def dot_string(text: str) -> str:
    """`text` as a quoted DOT string that shows as itself: backslashes are escapes in DOT
    labels (\\n, \\N, \\G, ...) and quotes end the string; line breaks are kept as lines."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"\r\n|\r|\n", r"\\n", escaped) + '"'


def _statement(subject: str, **attributes) -> str:
    """A node or edge statement: `subject [name="value", ...];`."""
    listed = ", ".join(f"{name}={dot_string(str(value))}" for name, value in attributes.items())
    return f"  {subject} [{listed}];"


def _looks(is_active: bool, colour: str = ACTIVE_COLOUR) -> dict:
    if is_active:
        return {"color": colour, "fontcolor": colour}
    return {
        "color": INACTIVE_COLOUR,
        "fontcolor": INACTIVE_COLOUR,
        "style": "dashed",
        "class": INACTIVE_CLASS,
    }


def delegation_graph() -> DelegationGraph:
    """The whole configuration's delegation graph, as DOT; three queries."""
    assistants = list(
        Assistant.objects.order_by("name").values_list("pk", "name", "is_secretary", "is_active")
    )
    tools = list(
        Tool.objects.order_by("name").values_list("pk", "name", "is_active", "assistant_id")
    )
    links = list(
        AssistantToolLink.objects.order_by("assistant__name", "tool__name").values_list(
            "assistant_id", "tool_id", "is_active"
        )
    )
    active_assistants = {pk for pk, _, _, is_active in assistants if is_active}
    lines = [
        "digraph delegation {",
        "  rankdir=LR;",
        '  bgcolor="transparent";',
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for pk, name, is_secretary, is_active in assistants:
        label = f"{name}\n({gettext('secretary')})" if is_secretary else name
        looks = _looks(is_active)
        looks["style"] = ",".join(filter(None, ["rounded", looks.get("style", "")]))
        if is_secretary:
            looks["penwidth"] = 2
        url = reverse("admin:assistants_assistant_change", args=[pk])
        lines.append(
            _statement(
                assistant_node(pk), shape="box", label=label, URL=url, target="_top", **looks
            )
        )
    for pk, name, is_active, delegate in tools:
        url = reverse("admin:tools_tool_change", args=[pk])
        looks = _looks(is_active)
        shape = "component" if delegate is not None else "ellipse"
        lines.append(
            _statement(tool_node(pk), shape=shape, label=name, URL=url, target="_top", **looks)
        )
        if delegate is not None:
            reaches = is_active and delegate in active_assistants
            edge = _looks(reaches, DELEGATE_COLOUR)
            lines.append(
                _statement(
                    f"{tool_node(pk)} -> {assistant_node(delegate)}",
                    label=gettext("delegates to"),
                    **edge,
                )
            )
    tool_is_active = {pk: is_active for pk, _, is_active, _ in tools}
    for assistant, tool, is_active in links:
        # Grey unless the assistant's config gets the tool (the link and the tool active).
        counts = counts_as_active_tool(
            link_is_active=is_active, tool_is_active=tool_is_active[tool]
        )
        lines.append(
            _statement(f"{assistant_node(assistant)} -> {tool_node(tool)}", **_looks(counts))
        )
    lines.append("}")
    return DelegationGraph(
        dot="\n".join(lines) + "\n",
        assistants=len(assistants),
        tools=len(tools),
        links=len(links),
    )


def graph_svg(graph: DelegationGraph) -> str:
    """The graph drawn by `dot -Tsvg`: the <svg> element alone (no XML prologue), to be put
    in a page. Raises GraphUnavailable when `dot` is missing, fails or takes too long."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphUnavailable(
            gettext("Graphviz is not installed (its `dot` command draws the graph).")
        )
    try:
        drawn = subprocess.run(
            [dot, "-Tsvg"],
            input=graph.dot.encode(),
            capture_output=True,
            timeout=DOT_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GraphUnavailable(
            gettext("Graphviz took longer than %(seconds)s seconds to draw the graph.")
            % {"seconds": DOT_TIMEOUT_SECONDS}
        ) from None
    if drawn.returncode != 0:
        raise GraphUnavailable(
            gettext("Graphviz could not draw the graph: %(error)s")
            % {"error": drawn.stderr.decode(errors="replace").strip()[:500]}
        )
    svg = drawn.stdout.decode()
    return svg[svg.index("<svg") :]
