"""The import plan: the final state a file asks for and every rule it breaks, without writing.

Rows are matched by `id` when given, else by name (threads: by `id`, else by user and
assistant); references between entities are by name. The rules are the apps' own pure
functions (assistants.validators, tools.validators, tools.strict_schema) applied to the
planned rows in memory, plus the models' field validation (clean_fields) on unsaved instances;
the rules that span rows are in plan_rules.
"""

from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.utils import timezone

from assistants.models import Assistant
from assistants.prompts import (
    instructions_problem,
    unused_variables,
    unused_variables_warning,
    variables_problems,
)
from assistants.validators import (
    assistant_type_errors,
    instructions_size_error,
    model_settings_problems,
    output_problems,
)
from config_backend.transfer.file_format import (
    SECTIONS_NOT_IN_VERSION,
    Problem,
    format_problems,
    parse_last_used,
)
from config_backend.transfer.matching import FileRow, matched_rows, unique_name_problems
from config_backend.transfer.plan_rules import (
    delegation_cycle_problems,
    include_problems,
    placeholder_problems,
    secretary_problems,
    tool_choice_problems,
    tools_per_assistant_problems,
)
from config_backend.transfer.state import (
    ASSISTANT_FIELDS,
    ENTITIES,
    SNIPPET_FIELDS,
    TOOL_FIELDS,
    ConfigState,
    canonical,
)
from snippets.models import Snippet
from threads.models import UserAssistantThread
from tools.models import Tool
from tools.strict_schema import strict_schema_problems
from tools.validators import delegate_errors, input_schema_problems, link_sub_assistant

PROGRESS_EVERY = 2000

Progress = Callable[[str], None]


def _field_default(model, name):
    return model._meta.get_field(name).get_default()


class Planner:
    """Computes the final state a file asks for and every rule it breaks, without writing.

    `trust_unchanged`: an input schema identical to the one stored for that row was validated
    when it was stored, so it is not checked again (what makes a no-op re-import cheap).
    """

    def __init__(
        self,
        document: dict,
        current: ConfigState,
        *,
        prune: bool,
        trust_unchanged: bool,
        progress: Progress | None = None,
    ):
        self.say = progress or (lambda message: None)
        self.document = document
        self.current = current
        self.prune = prune
        self.trust_unchanged = trust_unchanged
        self.errors: list[Problem] = []
        # What is allowed but likely a mistake (a declared variable no placeholder uses).
        self.warnings: list[Problem] = []
        self._snippet_texts: dict[str, str] | None = None
        self.broken: set[tuple[str, int]] = set()
        self.final = ConfigState()
        self.mentioned = {entity: set() for entity in ENTITIES}
        self.assistant_rows: list[FileRow] = []
        self.tool_rows: list[FileRow] = []
        self.snippet_rows: list[FileRow] = []
        # (assistant id, tool id) -> (the assistant's row, the index in its `tools` list)
        self.link_places: dict[tuple, tuple[FileRow, int]] = {}
        self._schema_checks: dict = {}

    def error(self, row: FileRow, inside: str, message: str) -> None:
        self.errors.append(row.problem(inside, message))

    def model_errors(self, row: FileRow, exc: ValidationError) -> None:
        for name, messages in exc.message_dict.items():
            for message in messages:
                self.error(row, f"/{name}", message)

    def plan(self) -> None:
        check = format_problems(self.document)
        self.errors.extend(check.problems)
        self.broken = set(check.broken)
        if not check.readable:
            return
        self.plan_snippets()
        self.plan_assistants()
        self.errors += include_problems(self.final, [*self.snippet_rows, *self.assistant_rows])
        self.errors += placeholder_problems(self.final, self.assistant_rows, self.snippet_texts())
        self._final_assistant_names = {row["name"]: pk for pk, row in self.final.assistants.items()}
        self._broken_assistant_names = self._broken_names("assistants")
        self.plan_tools()
        self.plan_links()
        self.plan_threads()

    # -- matching entries to rows

    def _match(self, section: str, entries: list, key_of, current_by_key: dict) -> list[FileRow]:
        rows, problems = matched_rows(section, entries, key_of, current_by_key, self.broken)
        self.errors += problems
        return rows

    def _check_unique_names(self, section: str, file_rows: list, kept: dict, entries: list) -> None:
        self.errors += unique_name_problems(section, file_rows, kept, entries, self.broken)

    def _kept(self, current_rows: dict, file_rows: list[FileRow]) -> dict:
        """The current rows the file does not mention and that stay (all of them unless --prune)."""
        mentioned = {row.pk for row in file_rows}
        if self.prune:
            return {}
        return {pk: row for pk, row in current_rows.items() if pk not in mentioned}

    def _broken_names(self, section: str) -> set:
        """Names of the entries that failed the format check (already reported)."""
        return {
            entry["name"]
            for index, entry in enumerate(self.document[section])
            if (section, index) in self.broken
            and isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
        }

    def _resolve_assistant(self, name: str) -> tuple[object | None, str | None]:
        """The final-state assistant with this name, or why there is none.

        (None, None) for the name of a broken entry: that entry's error is already reported.
        """
        pk = self._final_assistant_names.get(name)
        if pk is not None or name in self._broken_assistant_names:
            return pk, None
        if self.prune and name in {row["name"] for row in self.current.assistants.values()}:
            return None, (
                f'unknown assistant "{name}": it is in the database but not in this file, '
                "so --prune would delete it"
            )
        return None, f'unknown assistant "{name}"'

    # -- assistants

    def plan_assistants(self) -> None:
        entries = self.document["assistants"]
        current = self.current.assistants
        by_name = {row["name"]: pk for pk, row in current.items()}
        self.assistant_rows = self._match(
            "assistants", entries, lambda index, entry: entry["name"], by_name
        )
        for row in self.assistant_rows:
            entry = entries[row.index]
            values = {
                name: entry[name] if name in entry else _field_default(Assistant, name)
                for name in ASSISTANT_FIELDS
            }
            instance = Assistant(id=row.pk, **values)
            try:
                instance.clean_fields()
            except ValidationError as exc:
                self.model_errors(row, exc)
            instance.normalize()
            type_errors = assistant_type_errors(
                assistant_type=instance.assistant_type,
                model=instance.model,
                openai_assistant_id=instance.openai_assistant_id,
            )
            for name, message in type_errors.items():
                self.error(row, f"/{name}", message)
            too_large = isinstance(instance.instructions, str) and instructions_size_error(
                instance.instructions
            )
            if too_large:
                self.error(row, "/instructions", too_large)
            values.update(self._agent_values(row, instance, check_instructions=not too_large))
            values["openai_assistant_id"] = instance.openai_assistant_id
            row.values = values
        kept = self._kept(current, self.assistant_rows)
        self._check_unique_names("assistants", self.assistant_rows, kept, entries)
        self.final.assistants = {**kept, **{row.pk: row.values for row in self.assistant_rows}}
        self.mentioned["assistants"] = {row.pk for row in self.assistant_rows}
        self.errors += secretary_problems(self.final, self.assistant_rows)

    def snippet_texts(self) -> dict[str, str]:
        """The texts of the snippets that includes may name after the import (the planned
        active ones), by name; planned before the assistants, so read once."""
        if self._snippet_texts is None:
            self._snippet_texts = {
                row["name"]: row["text"] for row in self.final.snippets.values() if row["is_active"]
            }
        return self._snippet_texts

    def _agent_values(self, row: FileRow, instance: Assistant, *, check_instructions: bool) -> dict:
        """The model settings, output and variables of an entry (normalized), each problem
        reported at its pointer, and rule 11 on its instructions; rule 10 (tool_choice) needs
        the links: plan_rules.tool_choice_problems."""
        for problem in model_settings_problems(instance.model_settings):
            inner = "" if problem.pointer == "/" else problem.pointer
            self.error(row, f"/model_settings{inner}", problem.message)
        output, output_errors = output_problems(instance.output)
        for problem in output_errors:
            inner = "" if problem.pointer == "/" else problem.pointer
            self.error(row, f"/output{inner}", problem.message)
        variables, problems = variables_problems(instance.variables)
        for problem in problems:
            inner = "" if problem.pointer == "/" else problem.pointer
            self.error(row, f"/variables{inner}", problem.message)
        if check_instructions and variables is not None and isinstance(instance.instructions, str):
            problem = instructions_problem(instance.instructions, variables, self.snippet_texts())
            if problem:
                self.error(row, "/instructions", problem)
            else:
                unused = unused_variables(instance.instructions, variables, self.snippet_texts())
                if unused:
                    self.warnings.append(
                        row.problem("/variables", unused_variables_warning(unused))
                    )
        return {
            "model_settings": instance.model_settings,
            "output": instance.output if output_errors else output,
            "variables": variables if variables is not None else instance.variables,
        }

    # -- snippets

    def plan_snippets(self) -> None:
        current = self.current.snippets
        entries = self.document.get("snippets")
        version = self.document.get("format_version")
        if entries is None or "snippets" in SECTIONS_NOT_IN_VERSION.get(version, ()):
            # A file without the section (every version 1 and 2 file) leaves them as they are.
            self.final.snippets = dict(current)
            return
        by_name = {row["name"]: pk for pk, row in current.items()}
        self.snippet_rows = self._match(
            "snippets", entries, lambda index, entry: entry["name"], by_name
        )
        for row in self.snippet_rows:
            entry = entries[row.index]
            row.values = {
                name: entry[name] if name in entry else _field_default(Snippet, name)
                for name in SNIPPET_FIELDS
            }
            try:
                Snippet(id=row.pk, **row.values).clean_fields()
            except ValidationError as exc:
                self.model_errors(row, exc)
        kept = self._kept(current, self.snippet_rows)
        self._check_unique_names("snippets", self.snippet_rows, kept, entries)
        self.final.snippets = {**kept, **{row.pk: row.values for row in self.snippet_rows}}
        self.mentioned["snippets"] = {row.pk for row in self.snippet_rows}

    # -- tools

    def _check_input_schema(self, row: FileRow, value, *, strict: bool) -> dict | None:
        """Rule 1, and rule 8 for a strict tool; each schema is checked once per import."""
        stored = self.current.tools.get(row.pk)
        if (
            self.trust_unchanged
            and stored is not None
            and isinstance(value, dict)
            and canonical(value) == canonical(stored["input_schema"])
            and (stored["strict"] or not strict)
        ):
            return value
        key = (value if isinstance(value, str) else canonical(value), strict)
        if key not in self._schema_checks:
            schema, problems = input_schema_problems(value)
            if strict and not problems:
                problems = strict_schema_problems(schema)
            self._schema_checks[key] = schema, problems
        schema, problems = self._schema_checks[key]
        for problem in problems:
            inner = "" if problem.pointer == "/" else problem.pointer
            self.error(row, f"/input_schema{inner}", problem.message)
        return schema

    def plan_tools(self) -> None:
        entries = self.document["tools"]
        current = self.current.tools
        by_name = {row["name"]: pk for pk, row in current.items()}
        self.tool_rows = self._match("tools", entries, lambda index, entry: entry["name"], by_name)
        for done, row in enumerate(self.tool_rows, start=1):
            if done % PROGRESS_EVERY == 0:
                self.say(f"Checked {done:,} of {len(self.tool_rows):,} tools.")
            entry = entries[row.index]
            values = {
                name: entry[name] if name in entry else _field_default(Tool, name)
                for name in TOOL_FIELDS
                if name != "assistant"
            }
            values["input_schema"] = self._check_input_schema(
                row, values["input_schema"], strict=bool(values["strict"])
            )
            delegate_name = entry.get("assistant")
            delegate = None
            if delegate_name is not None:
                delegate, problem = self._resolve_assistant(delegate_name)
                if problem:
                    self.error(row, "/assistant", problem)
            instance = Tool(id=row.pk, **values)
            try:
                instance.clean_fields(exclude=["assistant", "input_schema"])
            except ValidationError as exc:
                self.model_errors(row, exc)
            if delegate_name is None or delegate is not None:
                errors = delegate_errors(tool_type=instance.tool_type, delegate=delegate)
                for name, message in errors.items():
                    self.error(row, f"/{name}", message)
            values["assistant"] = delegate
            row.values = {name: values[name] for name in TOOL_FIELDS}
        kept = self._kept(current, self.tool_rows)
        self._check_unique_names("tools", self.tool_rows, kept, entries)
        self.final.tools = {**kept, **{row.pk: row.values for row in self.tool_rows}}
        self.mentioned["tools"] = {row.pk for row in self.tool_rows}

    # -- links

    def plan_links(self) -> None:
        entries = self.document["assistants"]
        tool_names = {row["name"]: pk for pk, row in self.final.tools.items()}
        # A broken tool entry still answers to its name: don't also call it unknown.
        for name in self._broken_names("tools"):
            tool_names.setdefault(name, None)
        in_file = set(self.mentioned["assistants"])
        links = {
            key: dict(link)
            for key, link in self.current.links.items()
            if key[0] in self.final.assistants
            and key[1] in self.final.tools
            and key[0] not in in_file
        }
        for row in self.assistant_rows:
            listed: dict = {}
            for index, item in enumerate(entries[row.index].get("tools", [])):
                name = item if isinstance(item, str) else item["tool"]
                is_active = True if isinstance(item, str) else item.get("is_active", True)
                if name in listed:
                    message = f'tool "{name}" is listed twice (also at {listed[name]})'
                    self.error(row, f"/tools/{index}", message)
                    continue
                listed[name] = f"{row.pointer}/tools/{index}"
                if name not in tool_names:
                    self.error(row, f"/tools/{index}", f'unknown tool "{name}"')
                    continue
                tool_pk = tool_names[name]
                if tool_pk is None:
                    continue
                links[(row.pk, tool_pk)] = {"is_active": is_active, "sub_assistant": None}
                self.link_places[(row.pk, tool_pk)] = (row, index)
                self.mentioned["links"].add((row.pk, tool_pk))
        # Bulk writes skip AssistantToolLink.save(), so the mirrored delegate is set here.
        for (_, tool_pk), link in links.items():
            link["sub_assistant"] = link_sub_assistant(
                tool_delegate=self.final.tools[tool_pk]["assistant"]
            )
        self.final.links = links
        self.errors += delegation_cycle_problems(self.final, self.tool_rows, self.link_places)
        self.errors += tools_per_assistant_problems(self.final, self.assistant_rows)
        self.errors += tool_choice_problems(self.final, self.assistant_rows, self.tool_rows)

    # -- threads

    def plan_threads(self) -> None:
        entries = self.document.get("threads")
        kept_threads = {
            pk: row
            for pk, row in self.current.threads.items()
            if row["assistant"] in self.final.assistants
        }
        if entries is None:
            self.final.threads = kept_threads
            return
        assistant_pks = {}
        for index, entry in enumerate(entries):
            if ("threads", index) in self.broken:
                continue
            pk, problem = self._resolve_assistant(entry["assistant"])
            if problem:
                self.errors.append(Problem(problem, "threads", index, "/assistant"))
            if pk is None:
                self.broken.add(("threads", index))
            assistant_pks[index] = pk
        by_key = {(row["user_id"], row["assistant"]): pk for pk, row in kept_threads.items()}
        rows = self._match(
            "threads",
            entries,
            lambda index, entry: (entry["user_id"], assistant_pks[index]),
            by_key,
        )
        now = timezone.now()
        for row in rows:
            entry = entries[row.index]
            if "last_used" in entry:
                last_used = parse_last_used(entry["last_used"])
                if last_used is None:
                    self.error(
                        row,
                        "/last_used",
                        "not an ISO 8601 date-time with a time zone, e.g. 2026-01-01T00:00:00Z",
                    )
            elif row.pk in self.current.threads:
                last_used = self.current.threads[row.pk]["last_used"]
            else:
                last_used = now
            row.values = {
                "user_id": entry["user_id"],
                "assistant": assistant_pks[row.index],
                "thread_id": entry["thread_id"],
                "last_used": last_used,
            }
            instance = UserAssistantThread(id=row.pk, **{**row.values, "assistant": None})
            try:
                instance.clean_fields(exclude=["assistant", "last_used"])
            except ValidationError as exc:
                self.model_errors(row, exc)
        in_file = {row.pk for row in rows}
        kept = (
            {} if self.prune else {pk: row for pk, row in kept_threads.items() if pk not in in_file}
        )
        seen = {(row["user_id"], row["assistant"]): f"thread {pk}" for pk, row in kept.items()}
        for row in rows:
            key = (row.values["user_id"], row.values["assistant"])
            if key in seen:
                assistant = self.final.assistants[key[1]]["name"]
                self.error(
                    row,
                    "",
                    f'user "{key[0]}" already has a thread with assistant "{assistant}" '
                    f"({seen[key]})",
                )
            seen.setdefault(key, row.pointer)
        self.final.threads = {**kept, **{row.pk: row.values for row in rows}}
        self.mentioned["threads"] = {row.pk for row in rows}
