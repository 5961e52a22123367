"""The rules that span rows (rule 6: one active secretary; rule 4: no delegation cycles;
rule 9: active tools per assistant), checked on the planned final state, each problem pointing
at the entry of the file that breaks the rule.

A part of the Planner (config_backend.transfer.plan), which has planned the rows first:
`final` (the state after the import), `assistant_rows` and `tool_rows` (the file's entries),
`link_places` (where each link is listed) and `error()`.
"""

from assistants.validators import secretary_conflicts
from config_backend.transfer.file_format import Problem
from tools.validators import (
    DelegationLink,
    counts_as_active_tool,
    delegation_cycle_message,
    delegation_cycles,
    delegation_edges,
    delegation_graph,
    tool_limit_problems,
)


class CrossRowRules:
    def _check_one_secretary(self) -> None:
        conflicts = secretary_conflicts(
            (pk, row["name"], row["is_secretary"], row["is_active"])
            for pk, row in self.final.assistants.items()
        )
        in_file = [row for row in self.assistant_rows if row.pk in conflicts]
        for row in in_file:
            self.error(row, "/is_secretary", conflicts[row.pk])
        if conflicts and not in_file:
            self.errors.append(Problem(next(iter(conflicts.values())), "assistants"))

    def _check_tool_limits(self) -> None:
        """Rule 9, pointing at the assistant's tools list (or at the section, for an assistant
        the file leaves out whose tools it activates)."""
        active_tools = dict.fromkeys(self.final.assistants, 0)
        for (assistant, tool), link in self.final.links.items():
            active_tools[assistant] += counts_as_active_tool(
                link_is_active=link["is_active"], tool_is_active=self.final.tools[tool]["is_active"]
            )
        over = tool_limit_problems(active_tools)
        rows = {row.pk: row for row in self.assistant_rows}
        for pk in sorted(over, key=lambda pk: self.final.assistants[pk]["name"]):
            if pk in rows:
                self.error(rows[pk], "/tools", over[pk])
            else:
                name = self.final.assistants[pk]["name"]
                self.errors.append(Problem(f'assistant "{name}": {over[pk]}', "assistants"))

    def _check_delegation_cycles(self) -> None:
        tools = self.final.tools
        links = [
            DelegationLink(
                key=key,
                assistant=key[0],
                is_active=link["is_active"],
                tool_is_active=tools[key[1]]["is_active"],
                delegate=tools[key[1]]["assistant"],
            )
            for key, link in self.final.links.items()
        ]
        via = {}  # (assistant, delegate) -> a link key that makes the edge, the file's if any
        for link in delegation_edges(links):
            edge = (link.assistant, link.delegate)
            if link.key in self.link_places or edge not in via:
                via[edge] = link.key
        names = {pk: row["name"] for pk, row in self.final.assistants.items()}
        tool_rows = {row.pk: row for row in self.tool_rows}
        for cycle in delegation_cycles(delegation_graph(links)):
            # Point at the first entry of the file (links before tools) that makes an edge.
            candidates = []
            for position, edge in enumerate(zip(cycle, cycle[1:], strict=False)):
                key = via[edge]
                if key in self.link_places:
                    row, index = self.link_places[key]
                    candidates.append((0, row.index, index, position, row, f"/tools/{index}"))
                elif key[1] in tool_rows:
                    row = tool_rows[key[1]]
                    candidates.append((1, row.index, 0, position, row, "/assistant"))
            first = 0
            if candidates:
                *_, first, row, inside = min(candidates, key=lambda candidate: candidate[:4])
            # Name the cycle from the assistant whose entry the problem is in.
            cycle = cycle[first:-1] + cycle[:first] + [cycle[first]]
            message = delegation_cycle_message(cycle, names)
            if candidates:
                self.error(row, inside, message)
            else:
                self.errors.append(Problem(message, "assistants"))
