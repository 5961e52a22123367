"""Applying an import: the difference between the current and the planned state, written with
bulk operations (a fixed number of queries per entity type), then verified.

Inside one transaction: lock and read the current config, plan and validate, write the backup,
write the changes, record them as one revision (config_backend.history), re-read the database
and check it equals the plan. Anything wrong rolls everything back.
"""

from dataclasses import dataclass, field
from pathlib import Path

from django.db import connection, transaction
from django.utils import timezone

from assistants.models import Assistant
from config_backend.transfer.changes import record_state_changes
from config_backend.transfer.file_format import (
    ConfigValidationError,
    serialize_state,
    write_backup,
)
from config_backend.transfer.plan import Planner, Progress
from config_backend.transfer.state import (
    ASSISTANT_FIELDS,
    ENTITIES,
    SNIPPET_FIELDS,
    THREAD_FIELDS,
    TOOL_FIELDS,
    ConfigState,
    canonical,
    links_out_of_sync,
    load_state,
    lock_config_tables,
)
from core.changes import lock_change_sets
from core.reads.entries import forget_live_entries_at_commit
from snippets.models import Snippet
from threads.models import UserAssistantThread
from tools.models import AssistantToolLink, Tool


class ConfigVerificationError(Exception):
    """After the writes the database did not match the file; the transaction was rolled back."""

    def __init__(self, mismatches: list[str]):
        super().__init__(f"{len(mismatches)} mismatch(es)")
        self.mismatches = mismatches


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


def diff(current: dict, final: dict, mentioned: set) -> EntityChanges:
    changes = EntityChanges()
    for key, row in final.items():
        if key not in current:
            changes.created.append(key)
        elif canonical(row) != canonical(current[key]):
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
    revision: int | None = None  # the revision it made (None: nothing in the config changed)

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
    renamed_snippets = [
        Snippet(id=pk, name=f"tmp-{pk.hex}")
        for pk in changes["snippets"].updated
        if current.snippets[pk]["name"] != final.snippets[pk]["name"]
    ]
    if renamed_snippets:
        _bulk_update(Snippet, renamed_snippets, ["name"])
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


def apply_changes(current: ConfigState, final: ConfigState, changes: dict) -> None:
    """Write the difference: deletes first (freeing names), then creates and updates."""
    now = timezone.now()
    if changes["links"].deleted:
        ids = [current.link_ids[key] for key in changes["links"].deleted]
        _raw_delete(AssistantToolLink.objects.filter(pk__in=ids))
    if changes["threads"].deleted:
        _raw_delete(UserAssistantThread.objects.filter(pk__in=changes["threads"].deleted))
    if changes["tools"].deleted:
        _raw_delete(Tool.objects.filter(pk__in=changes["tools"].deleted))
    if changes["snippets"].deleted:
        _raw_delete(Snippet.objects.filter(pk__in=changes["snippets"].deleted))
    if changes["assistants"].deleted:
        _raw_delete(Assistant.objects.filter(pk__in=changes["assistants"].deleted))
        forget_live_entries_at_commit(changes["assistants"].deleted)

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

    def _snippet(pk):
        return Snippet(id=pk, **final.snippets[pk], created_at=now, updated_at=now)

    def _thread(pk):
        row = {**final.threads[pk], "assistant_id": final.threads[pk]["assistant"]}
        del row["assistant"]
        return UserAssistantThread(id=pk, **row, created_at=now, updated_at=now)

    plan = (
        (Assistant, "assistants", _assistant, [*ASSISTANT_FIELDS, "updated_at"]),
        (Tool, "tools", _tool, [*TOOL_FIELDS, "updated_at"]),
        (AssistantToolLink, "links", _link, ["is_active", "sub_assistant", "updated_at"]),
        (Snippet, "snippets", _snippet, [*SNIPPET_FIELDS, "updated_at"]),
        (UserAssistantThread, "threads", _thread, [*THREAD_FIELDS, "updated_at"]),
    )
    for model, entity, build, fields in plan:
        entity_changes = changes[entity]
        if entity_changes.created:
            model.objects.bulk_create([build(key) for key in entity_changes.created])
        if entity_changes.updated:
            _bulk_update(model, [build(key) for key in entity_changes.updated], fields)


def verify(final: ConfigState) -> dict:
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
            elif canonical(row) != canonical(actual_rows[key]):
                mismatches.append(f"{entity}: {key} differs from the file")
        for key in actual_rows.keys() - expected_rows.keys():
            mismatches.append(f"{entity}: {key} should not exist")
    for assistant_pk, tool_pk in links_out_of_sync(actual):
        mismatches.append(f"links: ({assistant_pk}, {tool_pk}) sub_assistant out of sync")
    if mismatches:
        raise ConfigVerificationError(mismatches)
    return actual.counts()


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
    the backup, write the changes, record them as one revision, verify. With dry_run the
    writes and the verification run and are then rolled back.
    """
    say = progress or (lambda message: None)
    with transaction.atomic():
        lock_change_sets()  # before the tables (core.changes: the lock order)
        lock_config_tables(mode="SHARE ROW EXCLUSIVE")
        current = load_state()
        say("Read the current configuration: " + _count_text(current.counts()) + ".")
        planner = Planner(document, current, prune=prune, trust_unchanged=True, progress=progress)
        planner.plan()
        if planner.errors:
            raise ConfigValidationError([str(problem) for problem in planner.errors])
        final = planner.final
        say("Validated the file: " + _count_text(final.counts()) + " after the import.")
        changes = {
            entity: diff(
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
            "snippets": sorted(current.snippets[pk]["name"] for pk in changes["snippets"].deleted),
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
        apply_changes(current, final, changes)
        if not dry_run:
            result.revision = record_state_changes(
                current,
                final,
                only={
                    entity: [*c.created, *c.updated, *c.deleted] for entity, c in changes.items()
                },
            )
        result.verified = verify(final)
        say("Verified the database against the file.")
        if dry_run:
            transaction.set_rollback(True)
    return result


def _count_text(counts: dict) -> str:
    return ", ".join(f"{count} {entity}" for entity, count in counts.items())
