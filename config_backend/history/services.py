"""Rollback: make the live configuration equal to the state at a point in the history, as one
new revision (source `rollback`), through the import's validated atomic path.
"""

from dataclasses import dataclass, field

from django.db import transaction

from config_backend.history.selectors import state_of
from config_backend.transfer import ConfigValidationError, import_config
from config_backend.transfer.file_format import serialize_state
from config_backend.transfer.state import ConfigState, load_state, lock_config_tables
from core.api.permissions import CONFIG_WRITE_PERMISSIONS
from core.changes import ChangeContext, change_context, current_context, lock_change_sets
from core.models import Revision

# What a staff user needs to roll back: every permission an import uses (every config write).
ROLLBACK_PERMISSIONS = CONFIG_WRITE_PERMISSIONS


def missing_rollback_permissions(user) -> list[str]:
    """The permissions a staff user lacks to roll back (none: they may). The API and the
    admin's pages ask this one rule."""
    return [name for name in ROLLBACK_PERMISSIONS if not user.has_perm(name)]


class RollbackRefused(Exception):
    """The target state breaks a rule against today's data; nothing was changed."""

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass
class RollbackResult:
    """The revision the rollback made (None: the live config already was the target), and
    the rows created after the target that it kept (no prune) or deleted (prune): each
    {"entity", "id", "name"}, by entity and name."""

    revision: int | None
    kept: list[dict] = field(default_factory=list)
    deleted: list[dict] = field(default_factory=list)


def rollback(*, to: int | None, prune: bool = False, message: str = "") -> RollbackResult:
    """Make the live configuration equal to the state at revision `to` (None: the live state,
    which changes nothing), as one revision with source `rollback`, the caller's author, and
    `message` (or the caller's note, e.g. X-Change-Note). Rows created after `to` are deleted
    (with their links and threads) only with `prune`, else kept.

    The tables are locked before the target state is read (core.changes' revisions and the
    import serialize with every other change), so a concurrent edit either committed before
    (and is undone or kept like any other) or waits and applies on top. Raises RollbackRefused
    with the import's reasons, nothing changed; UnknownRevision for an unknown `to`.
    """
    caller = current_context()
    context = ChangeContext(
        source=Revision.Source.ROLLBACK,
        author=caller.author,
        message=message.strip() or caller.message,
    )
    with change_context(context), transaction.atomic():
        lock_change_sets()  # before the tables (core.changes: the lock order)
        lock_config_tables(mode="SHARE ROW EXCLUSIVE")
        target = state_of(to)
        later = rows_not_in(load_state(include_threads=False), target)
        document = serialize_state(target, include_threads=False)
        try:
            result = import_config(document=document, prune=prune)
        except ConfigValidationError as exc:
            # Each names its place in the target's file (`export_config --at`).
            raise RollbackRefused(exc.errors) from None
    if prune:
        return RollbackResult(revision=result.revision, deleted=later)
    return RollbackResult(revision=result.revision, kept=later)


def rows_not_in(live: ConfigState, target: ConfigState) -> list[dict]:
    """The assistants, tools and snippets of `live` that `target` does not have."""
    rows = []
    for entity, section in (
        ("assistant", "assistants"),
        ("tool", "tools"),
        ("snippet", "snippets"),
    ):
        theirs = getattr(target, section)
        rows.extend(
            {"entity": entity, "id": str(pk), "name": row["name"]}
            for pk, row in sorted(getattr(live, section).items(), key=lambda item: item[1]["name"])
            if pk not in theirs
        )
    return rows
