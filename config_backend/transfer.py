"""Import and export of the whole configuration as one JSON file (SPEC "Import/export format").

The file describes rows declaratively: an entry is the whole row (omitted fields take the model
defaults) and an assistant's `tools` list is the whole set of its links. Rows are matched by `id`
when given, else by name (threads: by `id`, else by user and assistant); references between
entities are by name.

An import reads the database once (one query per entity type), computes the final state in
memory, validates it with the models' own rules, then writes the difference with bulk
operations (a fixed number of queries per entity type) and, still inside the transaction,
re-reads the database and checks it equals the computed state before committing.
"""

import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from jsonschema import Draft202012Validator

from assistants.models import Assistant
from assistants.services import ASSISTANT_FIELDS
from core.cache import bump_config_revision
from core.json_input import JSONInputError, decode_json, json_pointer, json_problems
from threads.models import UserAssistantThread
from tools.models import AssistantToolLink, Tool, delegation_cycle_message
from tools.services import TOOL_FIELDS
from tools.validators import find_delegation_cycle, input_schema_problems

FORMAT_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("config_format.schema.json")
# A real configuration is a few MB (the 11,000-entity benchmark file is about 8 MB);
# anything much larger is almost certainly the wrong file.
MAX_FILE_BYTES = 20 * 1024 * 1024

THREAD_FIELDS = ("user_id", "assistant", "thread_id", "last_used")
ENTITIES = ("assistants", "tools", "links", "threads")
PROGRESS_EVERY = 2000

Progress = Callable[[str], None]


class ConfigFileError(Exception):
    """The file cannot be read as a configuration at all (missing, empty, too big, not JSON)."""


class ConfigValidationError(Exception):
    """The file breaks the format or a rule; `errors` lists every problem as 'POINTER: message'."""

    def __init__(self, errors: list[str]):
        super().__init__(f"{len(errors)} error(s)")
        self.errors = errors


class ConfigVerificationError(Exception):
    """After the writes the database did not match the file; the transaction was rolled back."""

    def __init__(self, mismatches: list[str]):
        super().__init__(f"{len(mismatches)} mismatch(es)")
        self.mismatches = mismatches


# --- state: the configuration as plain values, keyed by primary key ---------------------------


@dataclass
class ConfigState:
    """Rows as dicts of the exported fields; references are primary keys.

    links are keyed by (assistant id, tool id); link_ids maps those keys to the link rows' ids.
    """

    assistants: dict = field(default_factory=dict)
    tools: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)
    threads: dict = field(default_factory=dict)
    link_ids: dict = field(default_factory=dict)

    def counts(self) -> dict:
        return {entity: len(getattr(self, entity)) for entity in ENTITIES}


def load_state(*, include_threads: bool = True) -> ConfigState:
    """Read the configuration: one query per entity type."""
    state = ConfigState()
    for pk, *values in Assistant.objects.order_by().values_list("id", *ASSISTANT_FIELDS):
        state.assistants[pk] = dict(zip(ASSISTANT_FIELDS, values, strict=True))
    tool_columns = [name if name != "assistant" else "assistant_id" for name in TOOL_FIELDS]
    for pk, *values in Tool.objects.order_by().values_list("id", *tool_columns):
        state.tools[pk] = dict(zip(TOOL_FIELDS, values, strict=True))
    links = AssistantToolLink.objects.order_by().values_list(
        "id", "assistant_id", "tool_id", "is_active", "sub_assistant_id"
    )
    for pk, assistant_id, tool_id, is_active, sub_assistant_id in links:
        key = (assistant_id, tool_id)
        state.links[key] = {"is_active": is_active, "sub_assistant": sub_assistant_id}
        state.link_ids[key] = pk
    if include_threads:
        thread_columns = [name if name != "assistant" else "assistant_id" for name in THREAD_FIELDS]
        for pk, *values in UserAssistantThread.objects.order_by().values_list(
            "id", *thread_columns
        ):
            state.threads[pk] = dict(zip(THREAD_FIELDS, values, strict=True))
    return state


def _lock_config_tables(*, mode: str) -> None:
    """Keep concurrent admin/API writes out while we read (and write) the whole config."""
    if connection.vendor != "postgresql":
        return
    tables = ", ".join(
        connection.ops.quote_name(model._meta.db_table)
        for model in (Assistant, Tool, AssistantToolLink, UserAssistantThread)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {tables} IN {mode} MODE")


# --- export -------------------------------------------------------------------------------------


def format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def serialize_state(state: ConfigState, *, include_threads: bool) -> dict:
    """The file format of a state: stable key order, rows and link lists sorted by name."""
    assistant_names = {pk: row["name"] for pk, row in state.assistants.items()}
    tool_names = {pk: row["name"] for pk, row in state.tools.items()}
    links_by_assistant = defaultdict(list)
    for (assistant_id, tool_id), link in state.links.items():
        links_by_assistant[assistant_id].append((tool_names[tool_id], link["is_active"]))

    assistants = []
    for pk, row in sorted(state.assistants.items(), key=lambda item: item[1]["name"]):
        entry = {"id": str(pk), **{name: row[name] for name in ASSISTANT_FIELDS}}
        entry["tools"] = [
            name if is_active else {"tool": name, "is_active": False}
            for name, is_active in sorted(links_by_assistant[pk])
        ]
        assistants.append(entry)

    tools = []
    for pk, row in sorted(state.tools.items(), key=lambda item: item[1]["name"]):
        entry = {"id": str(pk), **{name: row[name] for name in TOOL_FIELDS}}
        entry["assistant"] = assistant_names.get(row["assistant"])
        tools.append(entry)

    document = {"format_version": FORMAT_VERSION, "assistants": assistants, "tools": tools}
    if include_threads:
        threads = []
        for pk, row in state.threads.items():
            entry = {"id": str(pk), **{name: row[name] for name in THREAD_FIELDS}}
            entry["assistant"] = assistant_names[row["assistant"]]
            entry["last_used"] = format_datetime(row["last_used"])
            threads.append(entry)
        threads.sort(key=lambda entry: (entry["assistant"], entry["user_id"], entry["id"]))
        document["threads"] = threads
    return document


def config_to_bytes(document: dict) -> bytes:
    """UTF-8, unescaped, indented, with a trailing newline: identical input, identical bytes."""
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode()


def export_config(*, include_threads: bool) -> dict:
    """The whole configuration in the file format, read as one consistent snapshot."""
    with transaction.atomic():
        _lock_config_tables(mode="SHARE")
        state = load_state(include_threads=include_threads)
    return serialize_state(state, include_threads=include_threads)


def write_config_file(path: Path, document: dict) -> None:
    """Write atomically (temporary file, then rename), so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(config_to_bytes(document))
    temporary.replace(path)


def write_backup(backup_dir: Path, document: dict) -> Path:
    """Write a timestamped backup file that never overwrites an earlier one."""
    backup_dir = Path(backup_dir)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    data = config_to_bytes(document)
    try:
        backup_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1000):
            path = backup_dir / (
                f"config-{stamp}.json" if not attempt else f"config-{stamp}-{attempt}.json"
            )
            try:
                with open(path, "xb") as handle:
                    handle.write(data)
            except FileExistsError:
                continue
            return path
    except OSError as exc:
        raise ConfigFileError(
            f"Cannot write the backup in {backup_dir} ({exc.strerror or exc}); nothing was "
            "changed. Choose another --backup-dir, or --no-backup."
        ) from None
    raise ConfigFileError(f"Could not pick a free backup file name in {backup_dir}.")


# --- reading and checking a file ----------------------------------------------------------------


def read_config_file(path) -> dict:
    """Read and parse a file, with a clear error for a missing, empty, huge or non-JSON one."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ConfigFileError(f"{path}: no such file.") from None
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read it ({exc.strerror}).") from None
    if not path.is_file():
        raise ConfigFileError(f"{path}: not a regular file.")
    if size > MAX_FILE_BYTES:
        raise ConfigFileError(
            f"{path}: the file is {size / 2**20:.1f} MB, larger than the "
            f"{MAX_FILE_BYTES / 2**20:.0f} MB an import accepts; is it the right file?"
        )
    raw = path.read_bytes()
    if not raw.strip():
        raise ConfigFileError(f"{path}: the file is empty.")
    try:
        # What the JSON holds (duplicate keys, refused numbers, NUL...) is checked by the
        # planner, which reports it with pointers.
        return decode_json(raw, max_depth=settings.JSON_MAX_DEPTH)
    except JSONInputError as exc:
        raise ConfigFileError(f"{path}: {exc.problems[0].message}.") from None


@cache
def format_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


@cache
def _format_validator() -> Draft202012Validator:
    return Draft202012Validator(format_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _format_error_lines(error) -> list[tuple[str, str]]:
    """One jsonschema error as (pointer, message) pairs, pointing at the offending key."""
    pointer = json_pointer(error.absolute_path)
    base = "" if pointer == "/" else pointer
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        return [
            (f"{base}/{key}", f"unknown key (allowed: {', '.join(allowed)})")
            for key in error.instance
            if key not in allowed
        ]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        return [(f"{base}/{key}", "required, but missing") for key in missing[:1]] or [
            (pointer, error.message)
        ]
    if error.validator == "const" and list(error.absolute_path) == ["format_version"]:
        return [(pointer, f"must be {FORMAT_VERSION} (this program reads format version 1)")]
    return [(pointer, error.message)]


# --- the import plan ----------------------------------------------------------------------------


@dataclass
class _FileRow:
    pointer: str
    pk: object
    values: dict


def _canonical(row: dict) -> str:
    # JSON text compares 1, 1.0 and true as different, as the database does.
    return json.dumps(row, sort_keys=True, default=str)


def _field_default(model, name):
    return model._meta.get_field(name).get_default()


def _parse_last_used(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


class _Planner:
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
        self.errors: list[tuple[str, str]] = []
        self.broken: set[tuple[str, int]] = set()
        self.final = ConfigState()
        self.mentioned = {entity: set() for entity in ENTITIES}
        self.assistant_rows: list[_FileRow] = []
        self.tool_rows: list[_FileRow] = []
        self.link_pointers: dict = {}  # (assistant id, tool id) -> pointer of the list entry
        self._schema_checks: dict = {}

    def error(self, pointer: str, message: str) -> None:
        self.errors.append((pointer, message))

    def model_errors(self, pointer: str, exc: ValidationError) -> None:
        for name, messages in exc.message_dict.items():
            for message in messages:
                self.error(f"{pointer}/{name}", message)

    # -- stage 1: the file format

    def check_format(self) -> bool:
        """Validate against the JSON Schema; False when the shape is too broken to go on.

        JSON that cannot be stored as it is (repeated keys, refused numbers, NUL characters,
        nesting too deep) is reported alone: the rest would only be noise until it is fixed.
        """
        problems = json_problems(self.document, max_depth=settings.JSON_MAX_DEPTH)
        for problem in problems:
            self.error(problem.pointer, problem.message)
        if problems:
            return False
        for error in _format_validator().iter_errors(self.document):
            path = list(error.absolute_path)
            if len(path) >= 2 and path[0] in ("assistants", "tools", "threads"):
                self.broken.add((path[0], path[1]))
            for pointer, message in _format_error_lines(error):
                self.error(pointer, message)
        document = self.document
        return (
            isinstance(document, dict)
            and isinstance(document.get("assistants"), list)
            and isinstance(document.get("tools"), list)
            and isinstance(document.get("threads", []), list)
        )

    # -- stage 2: rows, references and the rules of SPEC

    def _match(self, entity: str, entries: list, key_of, current_by_key: dict) -> list[_FileRow]:
        """Give each well-formed entry its primary key: its id, else the row its key names.

        key_of(index, entry) is the natural key (name; for threads user and assistant).
        """
        rows: list[_FileRow | None] = [None] * len(entries)
        claimed: dict = {}
        by_id: set = set()
        for index, entry in enumerate(entries):
            if (entity, index) in self.broken or "id" not in entry:
                continue
            pointer = f"/{entity}/{index}"
            pk = uuid.UUID(entry["id"])
            if pk in claimed:
                self.error(f"{pointer}/id", f"duplicate id {pk} (also at {claimed[pk]})")
                continue
            claimed[pk] = pointer
            by_id.add(pk)
            rows[index] = _FileRow(pointer, pk, {})
        for index, entry in enumerate(entries):
            if (entity, index) in self.broken or "id" in entry:
                continue
            pointer = f"/{entity}/{index}"
            key = key_of(index, entry)
            pk = current_by_key.get(key)
            if pk is None:
                pk = uuid.uuid4()
            elif pk in by_id:
                self.error(
                    pointer,
                    f"names the same {entity[:-1]} ({pk}) that {claimed[pk]} names by id; "
                    "give this entry its own id or drop one of them",
                )
                continue
            elif pk in claimed:
                if entity == "threads":
                    self.error(pointer, f"duplicate of {claimed[pk]} (same user and assistant)")
                else:
                    self.error(f"{pointer}/name", f'duplicate name "{key}" (also at {claimed[pk]})')
                continue
            claimed[pk] = pointer
            rows[index] = _FileRow(pointer, pk, {})
        return [row for row in rows if row is not None]

    def _kept(self, current_rows: dict, file_rows: list[_FileRow]) -> dict:
        """The current rows the file does not mention and that stay (all of them unless --prune)."""
        mentioned = {row.pk for row in file_rows}
        if self.prune:
            return {}
        return {pk: row for pk, row in current_rows.items() if pk not in mentioned}

    def _check_unique_names(self, entity: str, file_rows: list, kept: dict, entries: list) -> None:
        kept_names = {row["name"]: pk for pk, row in kept.items()}
        seen: dict = {}
        for row in file_rows:
            name = row.values["name"]
            if name in seen:
                self.error(f"{row.pointer}/name", f'duplicate name "{name}" (also at {seen[name]})')
            elif name in kept_names:
                self.error(
                    f"{row.pointer}/name",
                    f'"{name}" is already the name of {entity[:-1]} {kept_names[name]}, which '
                    "this file does not mention (give this entry that id to update it)",
                )
            seen.setdefault(name, row.pointer)
        # Broken entries still reserve their names, so a typo elsewhere isn't blamed on them.
        for index, entry in enumerate(entries):
            if (entity, index) in self.broken and isinstance(entry, dict):
                name = entry.get("name")
                if isinstance(name, str) and name in seen:
                    self.error(
                        f"/{entity}/{index}/name", f'duplicate name "{name}" (also at {seen[name]})'
                    )

    def plan_assistants(self) -> None:
        entries = self.document["assistants"]
        current = self.current.assistants
        by_name = {row["name"]: pk for pk, row in current.items()}
        self.assistant_rows = self._match(
            "assistants", entries, lambda index, entry: entry["name"], by_name
        )
        for row in self.assistant_rows:
            entry = entries[int(row.pointer.rsplit("/", 1)[1])]
            values = {
                name: entry[name] if name in entry else _field_default(Assistant, name)
                for name in ASSISTANT_FIELDS
            }
            instance = Assistant(id=row.pk, **values)
            try:
                instance.clean_fields()
            except ValidationError as exc:
                self.model_errors(row.pointer, exc)
            for name, message in instance.type_errors().items():
                self.error(f"{row.pointer}/{name}", message)
            values["openai_assistant_id"] = instance.openai_assistant_id
            row.values = values
        kept = self._kept(current, self.assistant_rows)
        self._check_unique_names("assistants", self.assistant_rows, kept, entries)
        self.final.assistants = {**kept, **{row.pk: row.values for row in self.assistant_rows}}
        self.mentioned["assistants"] = {row.pk for row in self.assistant_rows}
        self._check_one_secretary()

    def _check_one_secretary(self) -> None:
        secretaries = [
            pk
            for pk, row in self.final.assistants.items()
            if row["is_secretary"] and row["is_active"]
        ]
        if len(secretaries) <= 1:
            return
        names = ", ".join(sorted(f'"{self.final.assistants[pk]["name"]}"' for pk in secretaries))
        message = (
            f"there can be only one active secretary; this would make {names} active secretaries"
        )
        in_file = [row for row in self.assistant_rows if row.pk in secretaries]
        for row in in_file:
            self.error(f"{row.pointer}/is_secretary", message)
        if not in_file:
            self.error("/assistants", message)

    def _broken_names(self, entity: str) -> set:
        """Names of the entries that failed the format check (already reported)."""
        return {
            entry["name"]
            for index, entry in enumerate(self.document[entity])
            if (entity, index) in self.broken
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

    def _check_input_schema(self, pointer: str, pk, value) -> dict | None:
        stored = self.current.tools.get(pk)
        if (
            self.trust_unchanged
            and stored is not None
            and isinstance(value, dict)
            and _canonical(value) == _canonical(stored["input_schema"])
        ):
            return value
        key = value if isinstance(value, str) else _canonical(value)
        if key not in self._schema_checks:
            self._schema_checks[key] = input_schema_problems(value)
        schema, problems = self._schema_checks[key]
        for problem in problems:
            inner = "" if problem.pointer == "/" else problem.pointer
            self.error(f"{pointer}/input_schema{inner}", problem.message)
        return schema

    def plan_tools(self) -> None:
        entries = self.document["tools"]
        current = self.current.tools
        by_name = {row["name"]: pk for pk, row in current.items()}
        self.tool_rows = self._match("tools", entries, lambda index, entry: entry["name"], by_name)
        for done, row in enumerate(self.tool_rows, start=1):
            if done % PROGRESS_EVERY == 0:
                self.say(f"Checked {done:,} of {len(self.tool_rows):,} tools.")
            entry = entries[int(row.pointer.rsplit("/", 1)[1])]
            values = {
                name: entry[name] if name in entry else _field_default(Tool, name)
                for name in TOOL_FIELDS
                if name != "assistant"
            }
            schema = self._check_input_schema(row.pointer, row.pk, values["input_schema"])
            values["input_schema"] = schema
            delegate_name = entry.get("assistant")
            delegate = None
            if delegate_name is not None:
                delegate, problem = self._resolve_assistant(delegate_name)
                if problem:
                    self.error(f"{row.pointer}/assistant", problem)
            instance = Tool(id=row.pk, **values)
            try:
                instance.clean_fields(exclude=["assistant", "input_schema"])
            except ValidationError as exc:
                self.model_errors(row.pointer, exc)
            if delegate_name is None or delegate is not None:
                instance.assistant_id = delegate
                for name, message in instance.delegate_errors().items():
                    self.error(f"{row.pointer}/{name}", message)
            values["assistant"] = delegate
            row.values = {name: values[name] for name in TOOL_FIELDS}
        kept = self._kept(current, self.tool_rows)
        self._check_unique_names("tools", self.tool_rows, kept, entries)
        self.final.tools = {**kept, **{row.pk: row.values for row in self.tool_rows}}
        self.mentioned["tools"] = {row.pk for row in self.tool_rows}

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
            entry = entries[int(row.pointer.rsplit("/", 1)[1])]
            listed: dict = {}
            for index, item in enumerate(entry.get("tools", [])):
                pointer = f"{row.pointer}/tools/{index}"
                name = item if isinstance(item, str) else item["tool"]
                is_active = True if isinstance(item, str) else item.get("is_active", True)
                if name in listed:
                    self.error(pointer, f'tool "{name}" is listed twice (also at {listed[name]})')
                    continue
                listed[name] = pointer
                if name not in tool_names:
                    self.error(pointer, f'unknown tool "{name}"')
                    continue
                tool_pk = tool_names[name]
                if tool_pk is None:
                    continue
                links[(row.pk, tool_pk)] = {"is_active": is_active, "sub_assistant": None}
                self.link_pointers[(row.pk, tool_pk)] = pointer
                self.mentioned["links"].add((row.pk, tool_pk))
        # Links mirror their tool's delegate; bulk writes skip Link.save(), so set it here.
        for (_, tool_pk), link in links.items():
            link["sub_assistant"] = self.final.tools[tool_pk]["assistant"]
        self.final.links = links
        self._check_delegation_cycles()

    def _check_delegation_cycles(self) -> None:
        tools = self.final.tools
        edges = defaultdict(set)
        via = {}  # (assistant, delegate) -> a link key that makes the edge
        for (assistant_pk, tool_pk), link in self.final.links.items():
            tool = tools[tool_pk]
            if link["is_active"] and tool["is_active"] and tool["assistant"] is not None:
                edges[assistant_pk].add(tool["assistant"])
                if (assistant_pk, tool_pk) in self.link_pointers or (
                    assistant_pk,
                    tool["assistant"],
                ) not in via:
                    via[(assistant_pk, tool["assistant"])] = (assistant_pk, tool_pk)
        names = {pk: row["name"] for pk, row in self.final.assistants.items()}
        tool_pointers = {row.pk: f"{row.pointer}/assistant" for row in self.tool_rows}
        reported = set()
        for start in _nodes_that_may_be_on_cycles(edges):
            cycle = find_delegation_cycle(edges, start)
            if not cycle:
                continue
            nodes = frozenset(cycle)
            if nodes in reported:
                continue
            reported.add(nodes)
            # Point at the first entry of the file (links before tools) that makes an edge.
            candidates = []
            for position, (source, target) in enumerate(zip(cycle, cycle[1:], strict=False)):
                key = via[(source, target)]
                if key in self.link_pointers:
                    pointer = self.link_pointers[key]
                    candidates.append((0, _pointer_order(pointer), pointer, position))
                elif key[1] in tool_pointers:
                    pointer = tool_pointers[key[1]]
                    candidates.append((1, _pointer_order(pointer), pointer, position))
            pointer, first = "/assistants", 0
            if candidates:
                *_, pointer, first = min(candidates)
            # Name the cycle from the assistant whose entry the pointer is in.
            cycle = cycle[first:-1] + cycle[:first] + [cycle[first]]
            self.error(pointer, delegation_cycle_message(cycle, names))

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
                self.error(f"/threads/{index}/assistant", problem)
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
            index = int(row.pointer.rsplit("/", 1)[1])
            entry = entries[index]
            if "last_used" in entry:
                last_used = _parse_last_used(entry["last_used"])
                if last_used is None:
                    self.error(
                        f"{row.pointer}/last_used",
                        "not an ISO 8601 date-time with a time zone, e.g. 2026-01-01T00:00:00Z",
                    )
            elif row.pk in self.current.threads:
                last_used = self.current.threads[row.pk]["last_used"]
            else:
                last_used = now
            row.values = {
                "user_id": entry["user_id"],
                "assistant": assistant_pks[index],
                "thread_id": entry["thread_id"],
                "last_used": last_used,
            }
            instance = UserAssistantThread(id=row.pk, **{**row.values, "assistant": None})
            try:
                instance.clean_fields(exclude=["assistant", "last_used"])
            except ValidationError as exc:
                self.model_errors(row.pointer, exc)
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
                    row.pointer,
                    f'user "{key[0]}" already has a thread with assistant "{assistant}" '
                    f"({seen[key]})",
                )
            seen.setdefault(key, row.pointer)
        self.final.threads = {**kept, **{row.pk: row.values for row in rows}}
        self.mentioned["threads"] = {row.pk for row in rows}

    def plan(self) -> None:
        if not self.check_format():
            return
        self.plan_assistants()
        self._final_assistant_names = {row["name"]: pk for pk, row in self.final.assistants.items()}
        self._broken_assistant_names = self._broken_names("assistants")
        self.plan_tools()
        self.plan_links()
        self.plan_threads()


def _pointer_order(pointer: str) -> tuple:
    """Sort key of a pointer into the file: entries in file order (/tools/10 after /tools/9)."""
    return tuple(int(part) if part.isdigit() else part for part in pointer.split("/"))


def _nodes_that_may_be_on_cycles(edges: dict) -> list:
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


# --- the difference between two states and the writes --------------------------------------------


@dataclass
class EntityChanges:
    created: list = field(default_factory=list)
    updated: list = field(default_factory=list)
    unchanged: int = 0
    deleted: list = field(default_factory=list)

    def counts(self) -> dict:
        return {
            "created": len(self.created),
            "updated": len(self.updated),
            "unchanged": self.unchanged,
            "deleted": len(self.deleted),
        }


def _diff(current: dict, final: dict, mentioned: set) -> EntityChanges:
    changes = EntityChanges()
    for key, row in final.items():
        if key not in current:
            changes.created.append(key)
        elif _canonical(row) != _canonical(current[key]):
            changes.updated.append(key)
        elif key in mentioned:
            changes.unchanged += 1
    changes.deleted = [key for key in current if key not in final]
    return changes


@dataclass
class ImportResult:
    changes: dict
    verified: dict
    backup_path: Path | None = None
    dry_run: bool = False
    deleted_names: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(c.created or c.updated or c.deleted for c in self.changes.values())

    def counts(self) -> dict:
        return {entity: changes.counts() for entity, changes in self.changes.items()}


def _release_unique_values(current: ConfigState, final: ConfigState, changes: dict) -> None:
    """Move unique values out of the way first, so swaps and renames can't collide mid-update.

    Unique constraints are checked row by row within one UPDATE; a row renamed to a name that
    another row is giving up (or a new secretary while the old one steps down) would fail.
    """
    released = []
    for pk in changes["assistants"].updated:
        old, new = current.assistants[pk], final.assistants[pk]
        was_secretary = old["is_secretary"] and old["is_active"]
        stays_secretary = new["is_secretary"] and new["is_active"]
        if old["name"] != new["name"] or (was_secretary and not stays_secretary):
            released.append(
                Assistant(
                    id=pk,
                    name=f"~import {pk}" if old["name"] != new["name"] else old["name"],
                    is_secretary=old["is_secretary"] and stays_secretary,
                )
            )
    if released:
        _bulk_update(Assistant, released, ["name", "is_secretary"])
    renamed_tools = [
        Tool(id=pk, name=f"tmp-{pk.hex}")
        for pk in changes["tools"].updated
        if current.tools[pk]["name"] != final.tools[pk]["name"]
    ]
    if renamed_tools:
        _bulk_update(Tool, renamed_tools, ["name"])
    moved_threads = [
        UserAssistantThread(id=pk, user_id=f"~import {pk}")
        for pk in changes["threads"].updated
        if (current.threads[pk]["user_id"], current.threads[pk]["assistant"])
        != (final.threads[pk]["user_id"], final.threads[pk]["assistant"])
    ]
    if moved_threads:
        _bulk_update(UserAssistantThread, moved_threads, ["user_id"])


def _bulk_update(model, objects: list, fields: list[str]) -> None:
    """Update many rows with one statement.

    Django's bulk_update builds one CASE per field with a WHEN per row, which PostgreSQL
    evaluates row by row: quadratic (10,000 rows took minutes). On PostgreSQL an
    UPDATE … FROM (VALUES …) joins on the primary key instead.
    """
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objects, fields, batch_size=500)
        return
    quote = connection.ops.quote_name
    columns = [model._meta.pk, *(model._meta.get_field(name) for name in fields)]
    casts = [f"%s::{column.db_type(connection)}" for column in columns]
    rows = ", ".join(["(" + ", ".join(casts) + ")"] * len(objects))
    params = [
        column.get_db_prep_save(getattr(obj, column.attname), connection)
        for obj in objects
        for column in columns
    ]
    names = [quote(column.column) for column in columns]
    assignments = ", ".join(f"{name} = v.{name}" for name in names[1:])
    # Identifiers come from the model's metadata; every value is a bound parameter.
    sql = (
        f"UPDATE {quote(model._meta.db_table)} AS t SET {assignments} "  # noqa: S608
        f"FROM (VALUES {rows}) AS v({', '.join(names)}) WHERE t.{names[0]} = v.{names[0]}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _raw_delete(queryset) -> None:
    # A plain DELETE: QuerySet.delete() would send per-row signals (and per-row cache bumps);
    # the import bumps the revision once. What cascades is deleted explicitly, before.
    queryset._raw_delete(queryset.db)


def _apply(current: ConfigState, final: ConfigState, changes: dict) -> None:
    """Write the difference: deletes first (freeing names), then creates and updates."""
    now = timezone.now()
    if changes["links"].deleted:
        ids = [current.link_ids[key] for key in changes["links"].deleted]
        _raw_delete(AssistantToolLink.objects.filter(pk__in=ids))
    if changes["threads"].deleted:
        _raw_delete(UserAssistantThread.objects.filter(pk__in=changes["threads"].deleted))
    if changes["tools"].deleted:
        _raw_delete(Tool.objects.filter(pk__in=changes["tools"].deleted))
    if changes["assistants"].deleted:
        _raw_delete(Assistant.objects.filter(pk__in=changes["assistants"].deleted))

    _release_unique_values(current, final, changes)

    def _assistant(pk):
        return Assistant(id=pk, **final.assistants[pk], created_at=now, updated_at=now)

    def _tool(pk):
        row = {**final.tools[pk], "assistant_id": final.tools[pk]["assistant"]}
        del row["assistant"]
        return Tool(id=pk, **row, created_at=now, updated_at=now)

    def _link(key):
        link = final.links[key]
        return AssistantToolLink(
            id=current.link_ids.get(key),
            assistant_id=key[0],
            tool_id=key[1],
            is_active=link["is_active"],
            sub_assistant_id=link["sub_assistant"],
            created_at=now,
            updated_at=now,
        )

    def _thread(pk):
        row = {**final.threads[pk], "assistant_id": final.threads[pk]["assistant"]}
        del row["assistant"]
        return UserAssistantThread(id=pk, **row, created_at=now, updated_at=now)

    plan = (
        (Assistant, "assistants", _assistant, [*ASSISTANT_FIELDS, "updated_at"]),
        (
            Tool,
            "tools",
            _tool,
            [
                "name",
                "tool_type",
                "description",
                "input_schema",
                "assistant",
                "is_active",
                "updated_at",
            ],
        ),
        (AssistantToolLink, "links", _link, ["is_active", "sub_assistant", "updated_at"]),
        (UserAssistantThread, "threads", _thread, [*THREAD_FIELDS, "updated_at"]),
    )
    for model, entity, build, fields in plan:
        entity_changes = changes[entity]
        if entity_changes.created:
            model.objects.bulk_create([build(key) for key in entity_changes.created])
        if entity_changes.updated:
            _bulk_update(model, [build(key) for key in entity_changes.updated], fields)


def _verify(final: ConfigState) -> dict:
    """Re-read the database inside the transaction and compare it with the planned state."""
    actual = load_state()
    mismatches = []
    for entity in ENTITIES:
        expected_rows, actual_rows = getattr(final, entity), getattr(actual, entity)
        if len(expected_rows) != len(actual_rows):
            mismatches.append(
                f"{entity}: expected {len(expected_rows)} rows, the database has {len(actual_rows)}"
            )
        for key, row in expected_rows.items():
            if key not in actual_rows:
                mismatches.append(f"{entity}: {key} is missing")
            elif _canonical(row) != _canonical(actual_rows[key]):
                mismatches.append(f"{entity}: {key} differs from the file")
        for key in actual_rows.keys() - expected_rows.keys():
            mismatches.append(f"{entity}: {key} should not exist")
    for (assistant_pk, tool_pk), link in actual.links.items():
        tool = actual.tools.get(tool_pk)
        if tool is None or link["sub_assistant"] != tool["assistant"]:
            mismatches.append(f"links: ({assistant_pk}, {tool_pk}) sub_assistant out of sync")
    if mismatches:
        raise ConfigVerificationError(mismatches)
    return actual.counts()


def validate_config(document, *, current: ConfigState | None = None, prune: bool = False):
    """Every problem of a file against a current state (empty: as if imported into nothing)."""
    planner = _Planner(document, current or ConfigState(), prune=prune, trust_unchanged=False)
    planner.plan()
    return [f"{pointer}: {message}" for pointer, message in planner.errors]


def import_config(
    *,
    document,
    prune: bool = False,
    dry_run: bool = False,
    backup_dir: Path | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import a parsed file atomically; raise ConfigValidationError having written nothing.

    Order: lock and read the current config, validate the file against the final state, write
    the backup, write the changes, verify, bump the config revision once. With dry_run the
    writes and the verification run and are then rolled back.
    """
    say = progress or (lambda message: None)
    with transaction.atomic():
        _lock_config_tables(mode="SHARE ROW EXCLUSIVE")
        current = load_state()
        say("Read the current configuration: " + _count_text(current.counts()) + ".")
        planner = _Planner(document, current, prune=prune, trust_unchanged=True, progress=progress)
        planner.plan()
        if planner.errors:
            raise ConfigValidationError(
                [f"{pointer}: {message}" for pointer, message in planner.errors]
            )
        final = planner.final
        say("Validated the file: " + _count_text(final.counts()) + " after the import.")
        changes = {
            entity: _diff(
                getattr(current, entity), getattr(final, entity), planner.mentioned[entity]
            )
            for entity in ENTITIES
        }
        result = ImportResult(changes=changes, verified={}, dry_run=dry_run)
        result.deleted_names = {
            "assistants": sorted(
                current.assistants[pk]["name"] for pk in changes["assistants"].deleted
            ),
            "tools": sorted(current.tools[pk]["name"] for pk in changes["tools"].deleted),
        }
        if not result.changed:
            return result
        if backup_dir is not None and not dry_run:
            result.backup_path = write_backup(
                backup_dir, serialize_state(current, include_threads=True)
            )
            say(f"Wrote the backup {result.backup_path}.")
        say(
            "Writing: "
            + ", ".join(
                f"{entity} +{len(c.created)} ~{len(c.updated)} -{len(c.deleted)}"
                for entity, c in changes.items()
            )
            + "."
        )
        _apply(current, final, changes)
        if not dry_run:
            bump_config_revision()
        result.verified = _verify(final)
        say("Verified the database against the file.")
        if dry_run:
            transaction.set_rollback(True)
    return result


def _count_text(counts: dict) -> str:
    return ", ".join(f"{count} {entity}" for entity, count in counts.items())


def config_problems() -> tuple[list[str], dict]:
    """Check the live database against every rule; returns (problems, counts)."""
    with transaction.atomic():
        _lock_config_tables(mode="SHARE")
        state = load_state()
    document = serialize_state(state, include_threads=True)
    labels = {
        "assistants": [f'assistant "{entry["name"]}"' for entry in document["assistants"]],
        "tools": [f'tool "{entry["name"]}"' for entry in document["tools"]],
        "threads": [
            f'thread of user "{entry["user_id"]}" with "{entry["assistant"]}"'
            for entry in document["threads"]
        ],
    }
    problems = []
    for line in validate_config(document):
        pointer, _, message = line.partition(": ")
        parts = pointer.split("/")
        if len(parts) >= 3 and parts[1] in labels and parts[2].isdigit():
            where = labels[parts[1]][int(parts[2])]
            rest = "/".join(parts[3:])
            problems.append(f"{where}{' ' + rest if rest else ''}: {message}")
        else:
            problems.append(line)
    for row in sorted(state.tools.values(), key=lambda row: row["name"]):
        if not isinstance(row["input_schema"], dict):
            problems.append(
                f'tool "{row["name"]}" input_schema: stored as '
                f"{type(row['input_schema']).__name__}, not as a JSON object"
            )
    names = {pk: row["name"] for pk, row in state.assistants.items()}
    for (assistant_pk, tool_pk), link in sorted(
        state.links.items(), key=lambda item: (names[item[0][0]], state.tools[item[0][1]]["name"])
    ):
        delegate = state.tools[tool_pk]["assistant"]
        if link["sub_assistant"] != delegate:
            problems.append(
                f'link "{names[assistant_pk]}" → "{state.tools[tool_pk]["name"]}" sub_assistant: '
                f'is "{names.get(link["sub_assistant"])}" but the tool delegates to '
                f'"{names.get(delegate)}"'
            )
    return problems, state.counts()
