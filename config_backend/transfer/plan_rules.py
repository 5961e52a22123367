"""The rules that span rows (rule 6: one active secretary; rule 4: no delegation cycles;
rule 9: active tools per assistant; rule 10: a tool_choice names an active linked tool;
rule 12: includes expand; rule 11 for the assistants a snippet change reaches), checked on the
planned final state, each problem pointing
at the entry of the file that breaks the rule.

Functions of what the Planner (config_backend.transfer.plan) has planned first: `final` (the
state after the import), `assistant_rows` and `tool_rows` (the file's entries, each a FileRow
that makes a Problem at a place inside it) and `link_places` (where each link is listed). Each
returns its problems.
"""

from assistants.prompts import instructions_problem
from assistants.validators import secretary_conflicts
from config_backend.transfer.file_format import Problem
from config_backend.transfer.state import ConfigState
from snippets.validators import could_include, expansion_error, snippet_expansion_error
from tools.validators import (
    DelegationLink,
    counts_as_active_tool,
    delegation_cycle_message,
    delegation_cycles,
    delegation_edges,
    delegation_graph,
    tool_choice_dependents_message,
    tool_choice_problem,
    tool_choice_tool,
    tool_limit_problems,
)


def secretary_problems(final: ConfigState, assistant_rows: list) -> list[Problem]:
    conflicts = secretary_conflicts(
        (pk, row["name"], row["is_secretary"], row["is_active"])
        for pk, row in final.assistants.items()
    )
    in_file = [row for row in assistant_rows if row.pk in conflicts]
    problems = [row.problem("/is_secretary", conflicts[row.pk]) for row in in_file]
    if conflicts and not in_file:
        problems.append(Problem(next(iter(conflicts.values())), "assistants"))
    return problems


def tools_per_assistant_problems(final: ConfigState, assistant_rows: list) -> list[Problem]:
    """Rule 9, pointing at the assistant's tools list (or at the section, for an assistant
    the file leaves out whose tools it activates)."""
    active_tools = dict.fromkeys(final.assistants, 0)
    for (assistant, tool), link in final.links.items():
        active_tools[assistant] += counts_as_active_tool(
            link_is_active=link["is_active"], tool_is_active=final.tools[tool]["is_active"]
        )
    over = tool_limit_problems(active_tools)
    rows = {row.pk: row for row in assistant_rows}
    problems = []
    for pk in sorted(over, key=lambda pk: final.assistants[pk]["name"]):
        if pk in rows:
            problems.append(rows[pk].problem("/tools", over[pk]))
        else:
            name = final.assistants[pk]["name"]
            problems.append(Problem(f'assistant "{name}": {over[pk]}', "assistants"))
    return problems


def delegation_cycle_problems(
    final: ConfigState, tool_rows: list, link_places: dict
) -> list[Problem]:
    tools = final.tools
    links = [
        DelegationLink(
            key=key,
            assistant=key[0],
            is_active=link["is_active"],
            tool_is_active=tools[key[1]]["is_active"],
            delegate=tools[key[1]]["assistant"],
        )
        for key, link in final.links.items()
    ]
    via = {}  # (assistant, delegate) -> a link key that makes the edge, the file's if any
    for link in delegation_edges(links):
        edge = (link.assistant, link.delegate)
        if link.key in link_places or edge not in via:
            via[edge] = link.key
    names = {pk: row["name"] for pk, row in final.assistants.items()}
    rows_by_pk = {row.pk: row for row in tool_rows}
    problems = []
    for cycle in delegation_cycles(delegation_graph(links)):
        # Point at the first entry of the file (links before tools) that makes an edge.
        candidates = []
        for position, edge in enumerate(zip(cycle, cycle[1:], strict=False)):
            key = via[edge]
            if key in link_places:
                row, index = link_places[key]
                candidates.append((0, row.index, index, position, row, f"/tools/{index}"))
            elif key[1] in rows_by_pk:
                row = rows_by_pk[key[1]]
                candidates.append((1, row.index, 0, position, row, "/assistant"))
        first = 0
        if candidates:
            *_, first, row, inside = min(candidates, key=lambda candidate: candidate[:4])
        # Name the cycle from the assistant whose entry the problem is in.
        cycle = cycle[first:-1] + cycle[:first] + [cycle[first]]
        message = delegation_cycle_message(cycle, names)
        if candidates:
            problems.append(row.problem(inside, message))
        else:
            problems.append(Problem(message, "assistants"))
    return problems


def tool_choice_problems(
    final: ConfigState, assistant_rows: list, tool_rows: list
) -> list[Problem]:
    """Rule 10, pointing at the assistant's tool_choice when the file has the assistant, else
    at the tool the file deactivates or renames (naming the assistant), else at the section."""
    usable = {pk: set() for pk in final.assistants}
    for (assistant, tool), link in final.links.items():
        if counts_as_active_tool(
            link_is_active=link["is_active"], tool_is_active=final.tools[tool]["is_active"]
        ):
            usable[assistant].add(final.tools[tool]["name"])
    rows = {row.pk: row for row in assistant_rows}
    problems, left_out = [], {}
    for pk, assistant in sorted(final.assistants.items(), key=lambda item: item[1]["name"]):
        tool = tool_choice_tool(assistant.get("model_settings"))
        if tool is None:
            continue
        problem = tool_choice_problem(tool=tool, usable_tools=usable[pk])
        if problem is None:
            continue
        if pk in rows:
            problems.append(rows[pk].problem("/model_settings/tool_choice", problem))
        else:
            left_out.setdefault(tool, []).append(assistant["name"])
    tools_by_name = {row.values.get("name"): row for row in tool_rows}
    for tool, assistants in left_out.items():
        message = tool_choice_dependents_message(tool=tool, assistants=assistants)
        if tool in tools_by_name:
            problems.append(tools_by_name[tool].problem("/is_active", message))
        else:
            problems.append(Problem(message, "assistants"))
    return problems


def include_problems(final: ConfigState, file_rows: list) -> list[Problem]:
    """Rule 12 on the planned state: every snippet's text and every assistant's instructions
    expand with the active snippets (each include names one, no cycle, within
    MAX_INSTRUCTIONS_BYTES). Rows the file does not mention are checked too: deactivating or
    pruning a snippet they include is refused at the file's `/snippets` (rule 7). `file_rows`:
    the file's snippet and assistant entries."""
    snippets = final.snippets
    active = {row["name"]: row["text"] for row in snippets.values() if row["is_active"]}
    in_file = {row.pk: row for row in file_rows}
    checks = [(pk, row["name"], row["text"], "snippet", "/text") for pk, row in snippets.items()]
    checks += [
        (pk, row["name"], row["instructions"], "assistant", "/instructions")
        for pk, row in final.assistants.items()
    ]
    problems = []
    for pk, name, text, kind, field in checks:
        if not (isinstance(text, str) and isinstance(name, str) and could_include(text)):
            continue
        if kind == "snippet":
            problem = snippet_expansion_error(name, text, active)
        else:
            problem = expansion_error(text, active)
        if problem is None:
            continue
        if pk in in_file:
            problems.append(in_file[pk].problem(field, problem))
        else:
            problems.append(
                Problem(f'{kind} "{name}", which this file does not mention: {problem}', "snippets")
            )
    return problems


def placeholder_problems(
    final: ConfigState, assistant_rows: list, snippet_texts: dict[str, str]
) -> list[Problem]:
    """Rule 11 for the assistants the file does not mention (its own entries were checked with
    their rows): the snippets it changes must not bring them a placeholder they do not
    declare; reported at the file's `/snippets`."""
    in_file = {row.pk for row in assistant_rows}
    problems = []
    for pk, row in sorted(final.assistants.items(), key=lambda item: str(item[0])):
        text, variables = row.get("instructions"), row.get("variables") or []
        if pk in in_file or not isinstance(text, str) or "{{" not in text:
            continue
        problem = instructions_problem(text, variables, snippet_texts)
        if problem:
            problems.append(
                Problem(
                    f'assistant "{row["name"]}", which this file does not mention: {problem}',
                    "snippets",
                )
            )
    return problems
