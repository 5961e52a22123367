"""Change sets: each committed change of the configuration is one revision
(docs/contract.md, "Revisions").

The first row change in a transaction opens its change set: the Revision row, with who made the
change, from where and why (the change context below). Each row change is recorded with the
old and new value of every field it changed, and moves the config revision (which takes the
revision row's lock until the commit, so change sets are serialized); the Revision row takes
the new number. The assistants whose resolved config it changes get that number as their own
config revision, in the database and in the cache's mirrors, before the commit: core.store's
consistency argument, applied per assistant (docs/contract.md "Fine-grained freshness").

Django has no pre-commit hook, so everything is written as it happens. The open change set is
the transaction's on-commit callback, registered once: at the commit it announces the change set
once (one wake-up of every events hub however many rows it changed). Each database connection
keeps a weak reference to its open change set (`_open_change_sets`), so the next change finds
it. Django has no rollback hook either, but it drops the callback when the transaction, or the
savepoint the change set was opened in, rolls back (together with the Revision row and
everything else written there), and the weak reference dies with it; should anything else keep
the change set alive, the next change finds its row gone (`ChangeSet.extend`) all the same.
Either way that change opens a new change set. A savepoint rolled back inside a change set takes
back its own changes, counter bumps and the row's number with them, and leaves the change set
open, as it does any other write.

Callers say what changed; they know their models. The apps' receivers record single saves and
deletes, and bulk paths (import, rollback) record many rows at once. `tools.selectors`
decides which assistants a change touches.
"""

import getpass
import json
import uuid
import weakref
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.dispatch import Signal

from core import store
from core.models import ConfigRevision, Revision, RevisionChange

# Sent in the transaction, when a change set opens its Revision row (`revision=`): for what
# must commit or roll back with the change, such as the webhooks' outbox (an app: core can't
# call it).
change_set_opened = Signal()

# How long a change note may be (admin field, X-Change-Note, --message).
MESSAGE_MAX_LENGTH = 1000


@dataclass(frozen=True)
class ChangeContext:
    """Who makes the changes of this request or command, from where, and why."""

    source: str
    author: str
    message: str = ""


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "unknown"


# A ChangeContext, or a callable that makes one when the first change is recorded: a request
# knows its user or key only once DRF has authenticated it.
_context: ContextVar[ChangeContext | Callable[[], ChangeContext] | None] = ContextVar(
    "change_context", default=None
)


@contextmanager
def change_context(context: ChangeContext | Callable[[], ChangeContext]):
    """Changes recorded inside are attributed to `context`."""
    token = _context.set(context)
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> ChangeContext:
    context = _context.get()
    if callable(context):
        context = context()
    # A shell, a script, a migration: whoever runs it.
    return context or ChangeContext(source=Revision.Source.COMMAND, author=os_user())


def json_value(value):
    """A field value as stored in a change: ids as strings, everything else as it is."""
    return str(value) if isinstance(value, uuid.UUID) else value


def field_changes(old: dict | None, new: dict | None) -> dict:
    """{field: {"old", "new"}} for the fields that differ (all of them when a side is None)."""
    names = (old or new or {}).keys()
    changes = {}
    for name in names:
        before = None if old is None else json_value(old[name])
        after = None if new is None else json_value(new[name])
        # As JSON: 1, 1.0 and true differ; key order does not.
        if old is None or new is None or _as_json(before) != _as_json(after):
            changes[name] = {"old": before, "new": after}
    return changes


def _as_json(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def lock_change_sets() -> None:
    """Wait for the change sets in progress to commit, and keep others out until this
    transaction ends: the config revision row's lock, which each change set holds from its
    first row change to its commit.

    The lock order every writer follows: this row first, then tables (import, rollback) or rows
    (the admin's actions); so no two of them wait for each other.
    """
    if connection.in_atomic_block:
        rows = ConfigRevision.objects.select_for_update().filter(name=ConfigRevision.CONFIG)
        list(rows.values_list("name", flat=True))


@dataclass(frozen=True)
class Change:
    """One row's change, as recorded."""

    entity: str
    object_id: str
    name: str
    action: str
    fields: dict

    @classmethod
    def between(cls, *, entity: str, object_id, name: str, old, new) -> "Change | None":
        """The change from `old` to `new` (dicts of fields; None: the row did not exist, or
        no longer does), or None when nothing differs."""
        fields = field_changes(old, new)
        if not fields:
            return None
        if old is None:
            action = RevisionChange.Action.CREATED
        elif new is None:
            action = RevisionChange.Action.DELETED
        else:
            action = RevisionChange.Action.UPDATED
        return cls(entity, str(object_id), name, action, fields)


def row_values(instance, fields: Iterable[str]) -> dict:
    """The instance's values of `fields` (a relation by its id)."""
    meta = instance._meta
    return {name: json_value(getattr(instance, meta.get_field(name).attname)) for name in fields}


def stored_values(instance, fields: Iterable[str]) -> dict | None:
    """The values of `fields` the database holds for this instance's row, or None (no row):
    read before a save, to record what it changes."""
    if instance.pk is None:
        return None
    meta = instance._meta
    attnames = {meta.get_field(name).attname: name for name in fields}
    # A change set in progress elsewhere may be changing this row: its values are the old ones
    # only once it has committed.
    lock_change_sets()
    row = type(instance)._base_manager.filter(pk=instance.pk).values(*attnames).first()
    if row is None:
        return None
    return {name: json_value(row[attname]) for attname, name in attnames.items()}


class ChangeSet:
    """The open change set of a transaction: its Revision row, and the assistants it touched."""

    def __init__(self, revision: Revision, assistants: set[str]):
        self.revision = revision
        self.assistants = assistants

    @classmethod
    def open(cls, revision: int, assistants: set[str]) -> "ChangeSet":
        """Write the Revision row of a new change set, and announce it at the commit."""
        context = current_context()
        change_set = cls(
            Revision.objects.create(
                number=revision,
                author=context.author[:255],
                source=context.source,
                message=context.message[:MESSAGE_MAX_LENGTH],
                assistants=sorted(assistants),
            ),
            assistants,
        )
        _open_change_sets[connections[DEFAULT_DB_ALIAS]] = weakref.ref(change_set)
        change_set_opened.send(sender=Revision, revision=change_set.revision)
        # Last: outside a transaction Django calls it at once. Only Django holds it from here on.
        transaction.on_commit(change_set)
        return change_set

    def extend(self, revision: int, assistants: set[str]) -> bool:
        """Give the row the new revision and the assistants touched so far; False when the row
        is gone: its transaction or savepoint rolled back, so the change set with it.

        Found by its id and creation time, so that a row given the same id by another
        transaction (after a restore has reset the sequence, config_backend.backup) is never
        taken for it."""
        touched = self.assistants | assistants
        updated = Revision.objects.filter(
            pk=self.revision.pk, created_at=self.revision.created_at
        ).update(number=revision, assistants=sorted(touched))
        if not updated:
            return False
        self.assistants = touched
        self.revision.number = revision
        self.revision.assistants = sorted(touched)
        return True

    def __call__(self) -> None:
        """At the commit: one announce for the whole change set, with the number its row was
        last given. (If the last changes rolled back in a savepoint, that number is past the
        committed one; the mirror was raised to it before the commit all the same, and the
        announce is a wake-up, never data.)"""
        # Forgotten now, not when Django lets go of it: a change made by a later on-commit
        # callback is a transaction of its own.
        if _open_change_set() is self:
            del _open_change_sets[connections[DEFAULT_DB_ALIAS]]
        store.announce_revision(ConfigRevision.CONFIG, self.revision.number)


# Each database connection's open change set (each thread has its own connection), weakly: Django
# holds it (an on-commit callback) until the commit, or drops it at a rollback (module docstring).
_open_change_sets: "weakref.WeakKeyDictionary[object, weakref.ref[ChangeSet]]" = (
    weakref.WeakKeyDictionary()
)


def _open_change_set() -> ChangeSet | None:
    held = _open_change_sets.get(connections[DEFAULT_DB_ALIAS])
    return None if held is None else held()


def record_changes(changes: list[Change], *, assistants: Iterable[str]) -> int | None:
    """Record row changes in the current transaction's revision, and the assistants whose
    config they change; returns the revision (None when `changes` is empty: nothing changed).

    Each call moves the config revision, and the touched assistants' with it, even within one
    change set: a config read in the same transaction between two changes (a test's, say)
    must not tag its entry with a revision the second change keeps.
    """
    if not changes:
        return None
    touched = {str(assistant_id) for assistant_id in assistants}
    revision = store.bump_revision(
        ConfigRevision.CONFIG,
        also=[ConfigRevision.for_assistant(pk) for pk in sorted(touched)],
        announce=False,  # the change set announces itself, once
    )
    change_set = _open_change_set()
    if change_set is None or not change_set.extend(revision, touched):
        change_set = ChangeSet.open(revision, touched)
    RevisionChange.objects.bulk_create(
        [
            RevisionChange(
                revision=change_set.revision,
                entity=change.entity,
                object_id=change.object_id,
                name=change.name[:600],
                action=change.action,
                fields=change.fields,
            )
            for change in changes
        ],
        batch_size=1000,
    )
    return revision


def assistant_revisions(assistant_ids: Iterable) -> dict[str, int]:
    """Each assistant's config revision (0 for one no change has touched since history began)."""
    names = [ConfigRevision.for_assistant(assistant_id) for assistant_id in assistant_ids]
    rows = dict(ConfigRevision.objects.filter(name__in=names).values_list("name", "value"))
    prefix = len(ConfigRevision.ASSISTANT_PREFIX)
    return {name[prefix:]: rows.get(name, 0) for name in names}
