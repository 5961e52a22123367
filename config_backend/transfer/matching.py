"""Entries of the file matched to rows: each entry's primary key (its `id`, else the row its
natural key names) and the problems of entries that cannot have one (duplicate ids, keys or
names). Functions of the file's entries, for plan.Planner; each returns its problems."""

import uuid
from dataclasses import dataclass

from config_backend.transfer.file_format import Problem


@dataclass
class FileRow:
    """An entry of the file that names a row: its place in the file, its key, its values."""

    section: str
    index: int
    pk: object
    values: dict

    @property
    def pointer(self) -> str:
        return f"/{self.section}/{self.index}"

    def problem(self, inside: str, message: str) -> Problem:
        """A problem at `inside` (a JSON pointer) within this entry."""
        return Problem(message, self.section, self.index, inside)


def matched_rows(
    section: str, entries: list, key_of, current_by_key: dict, broken: set
) -> tuple[list[FileRow], list[Problem]]:
    """Give each well-formed entry its primary key: its id, else the row its key names; and
    the problems of the entries that get none. `broken`: the (section, index) of the entries
    the format check refused (already reported).

    key_of(index, entry) is the natural key (name; for threads user and assistant).
    """
    problems: list[Problem] = []
    rows: list[FileRow | None] = [None] * len(entries)
    claimed: dict = {}  # pk -> pointer of the entry that has it
    by_id: set = set()
    for index, entry in enumerate(entries):
        if (section, index) in broken or "id" not in entry:
            continue
        row = FileRow(section, index, uuid.UUID(entry["id"]), {})
        if row.pk in claimed:
            problems.append(
                row.problem("/id", f"duplicate id {row.pk} (also at {claimed[row.pk]})")
            )
            continue
        claimed[row.pk] = row.pointer
        by_id.add(row.pk)
        rows[index] = row
    for index, entry in enumerate(entries):
        if (section, index) in broken or "id" in entry:
            continue
        key = key_of(index, entry)
        row = FileRow(section, index, current_by_key.get(key), {})
        if row.pk is None:
            row.pk = uuid.uuid4()
        elif row.pk in by_id:
            problems.append(
                row.problem(
                    "",
                    f"names the same {section[:-1]} ({row.pk}) that {claimed[row.pk]} names by "
                    "id; give this entry its own id or drop one of them",
                )
            )
            continue
        elif row.pk in claimed:
            if section == "threads":
                message = f"duplicate of {claimed[row.pk]} (same user and assistant)"
                problems.append(row.problem("", message))
            else:
                message = f'duplicate name "{key}" (also at {claimed[row.pk]})'
                problems.append(row.problem("/name", message))
            continue
        claimed[row.pk] = row.pointer
        rows[index] = row
    return [row for row in rows if row is not None], problems


def unique_name_problems(
    section: str, file_rows: list, kept: dict, entries: list, broken: set
) -> list[Problem]:
    """Names are unique among the file's rows and the rows it keeps (`kept`: those it does
    not mention and that stay)."""
    problems: list[Problem] = []
    kept_names = {row["name"]: pk for pk, row in kept.items()}
    seen: dict = {}
    for row in file_rows:
        name = row.values["name"]
        if name in seen:
            problems.append(row.problem("/name", f'duplicate name "{name}" (also at {seen[name]})'))
        elif name in kept_names:
            problems.append(
                row.problem(
                    "/name",
                    f'"{name}" is already the name of {section[:-1]} {kept_names[name]}, which '
                    "this file does not mention (give this entry that id to update it)",
                )
            )
        seen.setdefault(name, row.pointer)
    # Broken entries still reserve their names, so a typo elsewhere isn't blamed on them.
    for index, entry in enumerate(entries):
        if (section, index) in broken and isinstance(entry, dict):
            name = entry.get("name")
            if isinstance(name, str) and name in seen:
                problems.append(
                    Problem(
                        f'duplicate name "{name}" (also at {seen[name]})', section, index, "/name"
                    )
                )
    return problems
