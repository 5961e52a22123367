"""The database reads of the event streams (core.events), synchronous: a hub's read (in its
thread), a reconnect's replay (in one of the process's database threads)."""

from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from core import store
from core.events.frames import OPENING, Cursor, Event, frame, reset_frame
from core.models import ConfigRevision, LabelMove, Revision

# Rows one hub read takes of each kind (a burst bigger than this is read in several).
BATCH = 500
# Threads per process for the database questions of opening streams and re-checking keys.
DATABASE_THREADS = 4


# Reading the rows (synchronous: a hub's thread, or a database thread) -----------------------


def revision_events_after(number: int, limit: int) -> list[Event]:
    rows = (
        Revision.objects.filter(number__gt=number)
        .order_by("number")
        .values_list("number", "assistants", "created_at")[:limit]
    )
    return [
        Event("revision", n, json.dumps({"revision": n, "assistants": list(ids)}), at)
        for n, ids, at in rows
    ]


def label_events_after(label_move_id: int, limit: int) -> list[Event]:
    moves = (
        LabelMove.objects.filter(id__gt=label_move_id)
        .order_by("id")
        .only(*LabelMove.EVENT_FIELDS)[:limit]
    )
    return [
        Event("label", move.pk, json.dumps(move.event_data()), move.created_at) for move in moves
    ]


def events_after(cursor: Cursor, limit: int) -> tuple[list[Event], bool]:
    """The events after `cursor` in commit order, up to `limit` of each kind, and whether there
    may be more. When a kind fills its limit, its next rows are unread, and an event of the
    other kind after its last one read might come after them too: the list ends at that last
    one (the rest comes in the next read), so both kinds stay in order across reads."""
    revisions = revision_events_after(cursor.revision, limit)
    moves = label_events_after(cursor.label, limit)
    found = sorted(revisions + moves, key=lambda event: event.order)
    cut_at = [kind[-1].order for kind in (revisions, moves) if len(kind) >= limit]
    if not cut_at:
        return found, False
    last = min(cut_at)
    return [event for event in found if event.order <= last], True


def head() -> Cursor:
    """The position after every committed event."""
    newest = Revision.objects.order_by("-number").values_list("number", flat=True).first()
    newest_move = LabelMove.objects.order_by("-id").values_list("id", flat=True).first()
    return Cursor(newest or 0, newest_move or 0)


def known(cursor: Cursor) -> bool:
    """Whether `cursor` names positions this server has: 0, or an existing row."""
    if cursor.revision and not Revision.objects.filter(number=cursor.revision).exists():
        return False
    return cursor.label == 0 or LabelMove.objects.filter(id=cursor.label).exists()


@dataclass(frozen=True)
class Counters:
    """The config revision (what `hello` and `reset` say) and the restore counter (a restore
    moves it: config_backend.backup)."""

    config_revision: int
    restores: int


def counters() -> Counters:
    rows = dict(
        ConfigRevision.objects.filter(
            name__in=(ConfigRevision.CONFIG, ConfigRevision.RESTORES)
        ).values_list("name", "value")
    )
    return Counters(rows.get(ConfigRevision.CONFIG, 0), rows.get(ConfigRevision.RESTORES, 0))


@dataclass(frozen=True)
class Read:
    """One hub read: the counters, then either the events past the hub's position or, when the
    database was restored meanwhile (or the hub's position is not current), its new head."""

    counters: Counters
    events: tuple[Event, ...] = ()
    more: bool = False
    head: Cursor | None = None  # set: the hub takes this position (restored, or synced)


# How long a hub read waits for a table lock before it gives up (and is retried soon).
READ_LOCK_TIMEOUT = "100ms"


@contextlib.contextmanager
def one_snapshot():
    """Several reads that see the database as of one instant (PostgreSQL: a REPEATABLE READ
    transaction; SQLite's read transaction is one already): a commit between the read of the
    revisions and that of the label moves would otherwise show a move without the revisions
    committed before it. Holding one table's lock while waiting for another's could deadlock
    with a restore dropping them all (or a test's flush), so a lock not granted at once fails
    the read instead (READ_LOCK_TIMEOUT): the restore goes on, the hub reads again soon."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute(f"SET LOCAL lock_timeout = '{READ_LOCK_TIMEOUT}'")
        yield


def hub_read(cursor: Cursor | None, restores: int | None) -> Read:
    """What the hub reads when woken; `cursor` None: its position is not current (it had no
    subscriber), so only the head. Closes this thread's connection: none is held between."""
    try:
        with one_snapshot():
            return _hub_read(cursor, restores)
    finally:
        connection.close()


def _hub_read(cursor: Cursor | None, restores: int | None) -> Read:
    now = counters()
    if cursor is None or now.restores != restores:
        return Read(now, head=head())
    events, more = events_after(cursor, BATCH)
    return Read(now, tuple(events), more)


def hello(position: Cursor, config_revision: int) -> bytes:
    """A fresh stream's opening: no query (the hub's position and revision)."""
    return OPENING + frame("hello", json.dumps({"revision": config_revision}), position)


def resume(last_event_id: str, position: Cursor) -> tuple[Cursor, bytes]:
    """A reconnect's opening and the position after it: what it missed since `last_event_id`,
    oldest first, or one `reset` (core.events docstring). `position` is the hub's, taken after
    registering; the database's head, read now, may be past it. Queries the database (and
    closes this thread's connection)."""
    try:
        with one_snapshot():
            now = position.latest(head())
            after = Cursor.parse(last_event_id)
            limit = settings.SSE_MAX_REPLAY + 1
            missed, more = events_after(after, limit) if after else ([], False)
            if after is None or more or len(missed) >= limit or not known(after):
                return now, OPENING + reset_frame(now, store.committed_counter())
    finally:
        connection.close()
    since, chunks = after, [OPENING]
    for event in missed:
        since = event.advance(since)
        chunks.append(frame(event.kind, event.data, since))
    return since, b"".join(chunks)


_database_threads: ThreadPoolExecutor | None = None
_database_threads_guard = threading.Lock()


def database_threads() -> ThreadPoolExecutor:
    """The process's few threads for the database questions of opening streams (a key not in
    the cache, a replay) and of re-checking keys."""
    global _database_threads
    with _database_threads_guard:
        if _database_threads is None:
            _database_threads = ThreadPoolExecutor(
                DATABASE_THREADS, thread_name_prefix="config-events-db"
            )
        return _database_threads
