"""Checking: every problem of a file, and every rule against the live database."""

from django.db import transaction

from config_backend.transfer.file_format import serialize_state
from config_backend.transfer.plan import Planner
from config_backend.transfer.state import (
    ConfigState,
    links_out_of_sync,
    load_state,
    lock_config_tables,
)
from tools.strict_schema import strict_schema_problems
from tools.validators import input_schema_problems


def validate_config(document, *, current: ConfigState | None = None, prune: bool = False):
    """Every problem of a file against a current state (empty: as if imported into nothing)."""
    planner = Planner(document, current or ConfigState(), prune=prune, trust_unchanged=False)
    planner.plan()
    return [str(problem) for problem in planner.errors]


def config_problems(*, strict_readiness: bool = False) -> tuple[list[str], dict, list[str]]:
    """Check the live database against every rule; returns (problems, counts, warnings).

    The database is exported and planned as a file into an empty database, so the rules are
    the import's; each problem is then named by the row it is about rather than by pointer.
    With `strict_readiness`, what keeps each tool that is not strict from being made strict
    (rule 8's findings) counts as a problem too.
    """
    with transaction.atomic():
        lock_config_tables(mode="SHARE")
        state = load_state()
    document = serialize_state(state, include_threads=True)
    labels = {
        "assistants": [f'assistant "{entry["name"]}"' for entry in document["assistants"]],
        "tools": [f'tool "{entry["name"]}"' for entry in document["tools"]],
        "snippets": [f'snippet "{entry["name"]}"' for entry in document["snippets"]],
        "threads": [
            f'thread of user "{entry["user_id"]}" with "{entry["assistant"]}"'
            for entry in document["threads"]
        ],
    }
    planner = Planner(document, ConfigState(), prune=False, trust_unchanged=False)
    planner.plan()

    def by_row(problem) -> str:
        if problem.index is None:
            return str(problem)
        where = labels[problem.section][problem.index]
        rest = problem.inside.removeprefix("/")
        return f"{where}{' ' + rest if rest else ''}: {problem.message}"

    problems = [by_row(problem) for problem in planner.errors]
    warnings = [by_row(warning) for warning in planner.warnings]
    for row in sorted(state.tools.values(), key=lambda row: row["name"]):
        if not isinstance(row["input_schema"], dict):
            problems.append(
                f'tool "{row["name"]}" input_schema: stored as '
                f"{type(row['input_schema']).__name__}, not as a JSON object"
            )
    names = {pk: row["name"] for pk, row in state.assistants.items()}
    tool_names = {pk: row["name"] for pk, row in state.tools.items()}
    for assistant_pk, tool_pk in sorted(
        links_out_of_sync(state), key=lambda key: (names[key[0]], tool_names[key[1]])
    ):
        sub_assistant = state.links[(assistant_pk, tool_pk)]["sub_assistant"]
        delegate = state.tools[tool_pk]["assistant"]
        problems.append(
            f'link "{names[assistant_pk]}" → "{tool_names[tool_pk]}" sub_assistant: '
            f'is "{names.get(sub_assistant)}" but the tool delegates to "{names.get(delegate)}"'
        )
    if strict_readiness:
        problems.extend(strict_readiness_problems(state))
    return problems, state.counts(), warnings


def strict_readiness_problems(state: ConfigState) -> list[str]:
    """Rule 8's findings for every tool that is not strict (a strict one breaking it is a
    problem already), by tool name; a schema that breaks rule 1 is reported by that rule."""
    problems = []
    for row in sorted(state.tools.values(), key=lambda row: row["name"]):
        if row["strict"] or input_schema_problems(row["input_schema"])[1]:
            continue
        for problem in strict_schema_problems(row["input_schema"]):
            inside = "" if problem.pointer == "/" else problem.pointer
            problems.append(
                f'tool "{row["name"]}" (not strict) input_schema{inside}: {problem.message}'
            )
    return problems
