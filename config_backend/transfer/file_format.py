"""The configuration file format (docs/contract.md "Import/export format"): its JSON Schema, reading
a file, where a problem is in it, and writing a state (config_backend.transfer.state) as a file (the
export, bytes, backups).

An entry's fields are the state's (ASSISTANT_FIELDS, ... in state), which are the models'
CONFIG_FIELDS. Adding a field there needs the schema and a format version here.
"""

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from jsonschema import Draft202012Validator

from config_backend.transfer.state import (
    ASSISTANT_FIELDS,
    SNIPPET_FIELDS,
    THREAD_FIELDS,
    TOOL_FIELDS,
    ConfigState,
    load_state,
    lock_config_tables,
)
from core.api.json_input import JSONInputError, decode_json, json_pointer, json_problems

# Version 2 added the tools' `strict`; version 1 files are still read (every tool not strict).
# Version 3 added the `snippets` section (version 1 and 2 files leave the snippets as they are)
# and the assistants' model settings, output and variables (taking the defaults).
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
SCHEMA_PATH = Path(__file__).with_name("config_format.schema.json")
# A real configuration is a few MB (the 11,000-entity benchmark file is about 8 MB);
# anything much larger is almost certainly the wrong file.
MAX_FILE_BYTES = 20 * 1024 * 1024

# What each older version's entries lack: {version: {section: fields}}.
AGENT_FIELDS = ("model_settings", "output", "variables")
NOT_IN_VERSION = {
    1: {"tools": ("strict",), "assistants": AGENT_FIELDS},
    2: {"assistants": AGENT_FIELDS},
}
# The sections each older version lacks: {version: sections}.
SECTIONS_NOT_IN_VERSION = {1: ("snippets",), 2: ("snippets",)}
# The sections of the file that are lists of entries.
SECTIONS = ("assistants", "tools", "snippets", "threads")


class ConfigFileError(Exception):
    """The file cannot be read as a configuration at all (missing, empty, too big, not JSON)."""


class ConfigValidationError(Exception):
    """The file breaks the format or a rule; `errors` lists every problem as 'POINTER: message'."""

    def __init__(self, errors: list[str]):
        super().__init__(f"{len(errors)} error(s)")
        self.errors = errors


@dataclass(frozen=True)
class Problem:
    """Something wrong with a file: where it is and what.

    `section` and `index` name the entry it is in (a section alone: the list as a whole;
    neither: the document), `inside` the JSON pointer within that entry or section.
    """

    message: str
    section: str | None = None
    index: int | None = None
    inside: str = ""

    @property
    def pointer(self) -> str:
        if self.section is None:
            return self.inside or "/"
        entry = f"/{self.section}" if self.index is None else f"/{self.section}/{self.index}"
        return entry + self.inside

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}"


def _problem_at(path: list, message: str, *, key: str | None = None) -> Problem:
    """A Problem at a path of keys and indexes into the document, plus an unescaped `key`."""
    tail = "" if key is None else f"/{key}"
    if len(path) >= 2 and path[0] in SECTIONS and isinstance(path[1], int):
        inside = json_pointer(path[2:]) if len(path) > 2 else ""
        return Problem(message, path[0], path[1], inside + tail)
    pointer = json_pointer(path)
    return Problem(message, inside=("" if pointer == "/" else pointer) + tail)


# --- reading ------------------------------------------------------------------------------------


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
        # What the JSON holds (duplicate keys, refused numbers, NUL...) is checked by
        # format_problems(), which reports it with pointers.
        return decode_json(raw, max_depth=settings.JSON_MAX_DEPTH)
    except JSONInputError as exc:
        raise ConfigFileError(f"{path}: {exc.problems[0].message}.") from None


@cache
def format_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


@cache
def _format_validator() -> Draft202012Validator:
    return Draft202012Validator(format_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


@dataclass
class FormatCheck:
    """What format_problems() found: the problems, the entries too broken to read further
    ((section, index) pairs), and whether the document's shape allows reading its entries."""

    problems: list[Problem]
    broken: set[tuple[str, int]]
    readable: bool


def format_problems(document) -> FormatCheck:
    """Check a parsed file against its JSON Schema, every problem pointing at its place.

    JSON that cannot be stored as it is (repeated keys, refused numbers, NUL characters,
    nesting too deep) is reported alone: the rest would only be noise until it is fixed.
    """
    unstorable = json_problems(document, max_depth=settings.JSON_MAX_DEPTH)
    if unstorable:
        problems = [_problem_at_pointer(problem.pointer, problem.message) for problem in unstorable]
        return FormatCheck(problems, set(), readable=False)
    problems, broken = [], set()
    for error in _format_validator().iter_errors(document):
        path = list(error.absolute_path)
        if len(path) >= 2 and path[0] in SECTIONS:
            broken.add((path[0], path[1]))
        problems.extend(_schema_error_problems(error))
    readable = (
        isinstance(document, dict)
        and isinstance(document.get("assistants"), list)
        and isinstance(document.get("tools"), list)
        and isinstance(document.get("threads", []), list)
        and isinstance(document.get("snippets", []), list)
    )
    if readable:
        problems.extend(_newer_field_problems(document, broken))
    return FormatCheck(problems, broken, readable)


def _newer_field_problems(document: dict, broken: set) -> list[Problem]:
    """A field that a file's format_version does not have is an unknown key there (a file
    that uses it says the version that has it)."""
    version = document.get("format_version")
    problems = [
        Problem(
            f"unknown key in format_version {version} (it is in format_version "
            f"{FORMAT_VERSION}: set that)",
            inside=f"/{section}",
        )
        for section in SECTIONS_NOT_IN_VERSION.get(version, ())
        if section in document
    ]
    for section, fields in NOT_IN_VERSION.get(version, {}).items():
        for index, entry in enumerate(document[section]):
            for name in fields:
                if isinstance(entry, dict) and name in entry:
                    broken.add((section, index))
                    problems.append(
                        Problem(
                            f"unknown key in format_version {version} (it is in format_version "
                            f"{_version_with(section, name)}: set that)",
                            section,
                            index,
                            f"/{name}",
                        )
                    )
    return problems


def _version_with(section: str, name: str) -> int:
    """The first format version whose entries of `section` have the field `name`."""
    return min(
        version
        for version in READABLE_VERSIONS
        if name not in NOT_IN_VERSION.get(version, {}).get(section, ())
    )


def _problem_at_pointer(pointer: str, message: str) -> Problem:
    """A Problem from core.api.json_input, which names places by pointer only (built from the path,
    so an entry's problems start "/section/index")."""
    steps = pointer.split("/")
    if len(steps) >= 3 and steps[1] in SECTIONS and steps[2].isdigit():
        return Problem(message, steps[1], int(steps[2]), "".join(f"/{step}" for step in steps[3:]))
    return Problem(message, inside="" if pointer == "/" else pointer)


def _schema_error_problems(error) -> list[Problem]:
    """One jsonschema error as Problems, pointing at the offending key."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        return [
            _problem_at(path, f"unknown key (allowed: {', '.join(allowed)})", key=key)
            for key in error.instance
            if key not in allowed
        ]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        return [_problem_at(path, "required, but missing", key=key) for key in missing[:1]] or [
            _problem_at(path, error.message)
        ]
    if path == ["format_version"] and error.validator == "enum":
        *earlier, last = [str(version) for version in READABLE_VERSIONS]
        listed = ", ".join(earlier)
        return [
            _problem_at(
                path,
                f"must be {listed} or {last} (this program reads format versions {listed} and "
                f"{last}, and writes {FORMAT_VERSION})",
            )
        ]
    return [_problem_at(path, error.message)]


def parse_last_used(value: str) -> datetime | None:
    """A thread's `last_used`: an ISO 8601 date-time with a time zone, else None."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


# --- writing ------------------------------------------------------------------------------------


def format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def export_config(*, include_threads: bool) -> dict:
    """The whole configuration in the file format, read as one consistent snapshot."""
    with transaction.atomic():
        lock_config_tables(mode="SHARE")
        state = load_state(include_threads=include_threads)
    return serialize_state(state, include_threads=include_threads)


def serialize_state(state: ConfigState, *, include_threads: bool) -> dict:
    """The file format of a state: the state's fields of each entry in their order (references
    by name), rows and link lists sorted by name."""
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

    snippets = [
        {"id": str(pk), **{name: row[name] for name in SNIPPET_FIELDS}}
        for pk, row in sorted(state.snippets.items(), key=lambda item: item[1]["name"])
    ]
    document = {
        "format_version": FORMAT_VERSION,
        "assistants": assistants,
        "tools": tools,
        "snippets": snippets,
    }
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


def write_config_file(path: Path, document: dict) -> None:
    """Write atomically (temporary file, then rename), so a reader never sees half a file.

    What exists and is no regular file (/dev/null, /dev/stdout, a pipe) is written to as it
    is: renaming over it would replace the device itself (as root, /dev/null)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        with path.open("wb") as target:
            target.write(config_to_bytes(document))
        return
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
