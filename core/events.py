"""Server-Sent Events of config changes (SPEC "Runtime delivery", push over HTTP): the stream of
`GET /api/v1/config/events/`.

What a subscriber receives, one event per committed change, oldest first:
- `event: revision`, `data: {"revision": N, "assistants": [ids]}`: one per `Revision` row (a
  committed change set; `assistants` are those whose resolved config it changed).
- `event: label`, `data: {"label": name, "revision": N}`: one per `LabelMove` row (N: the
  revision the label now points at).
- `id: <revision number>.<label move id>` on every event: the subscriber's position after it,
  in both sequences. A reconnect sends it back as `Last-Event-ID` (or `?last_event_id=`) and
  gets every event it missed, oldest first; when it missed more than settings.SSE_MAX_REPLAY,
  or the cursor is malformed or names a revision or label move this server does not have (a
  restored database, another deployment), one `event: reset` instead, whose data is the current
  config revision, and whose id is a position from which it misses nothing more.
- A fresh connection (no Last-Event-ID) starts from now: its first event is `event: hello`
  (`data: {"revision": the config revision}`) with the id of that position, so even a
  subscriber that saw nothing else can resume exactly.
- `retry: 1000` first (an EventSource reconnects after a second), and a comment line
  (`: keep-alive`) after settings.SSE_HEARTBEAT_SECONDS without anything written, so proxies keep
  the connection and a dead peer is noticed.
- After the database is restored (config_backend.backup), every open stream gets one `reset`.
- A stream whose API key stops being valid (revoked, deleted, expired, by any path) ends within
  the heartbeat interval: each process re-checks the keys of its streams every half interval.

Delivery (why an event arrives within a second of the commit, on every instance):
- The database is the source of truth: an event is a committed row, and positions are row
  numbers. Revision numbers are committed in order (every change set holds the `config`
  revision row's lock from its bump to its commit, core.cache), so "every Revision with
  number > N" is exactly what a subscriber at N has not seen, whenever it is asked.
- One `Hub` per process, in an event loop (the server worker's own under ASGI; under WSGI, one
  thread running a loop for the whole process), reads the rows past its position and hands
  them to every subscriber of the process: a subscriber costs no query. Its reads run in one
  thread of its own, which holds no database connection between reads.
  It reads when woken: with Redis, by the message each commit publishes on
  core.cache.CHANGES_CHANNEL (after the commit, so the rows are visible; one pub/sub
  connection per process), and every SHARED_POLL_SECONDS besides as a safety net (a lost
  message; Redis down: then every LOCAL_POLL_SECONDS); with the local-memory default (no other
  process to hear from, but `import_config` in a second terminal commits to the same database)
  every LOCAL_POLL_SECONDS. A wake-up is a notification, never data, so a missed or duplicated
  one costs nothing.
- A subscriber registers before its position is taken (the hub's, or for a resume the
  database's head, read after registering along with what it missed), so every row is either
  at or before that position or delivered by the hub after registration; rows in both are
  dropped by the subscriber's own position (`Subscription.since`). The hub advances its
  position before it delivers, and only the hub's loop moves it.
- A burst bigger than one read (BATCH) is read in several, each cut where the kind that filled
  its limit ends (`events_after`), so the two kinds stay in commit order across reads.
- Label moves: the same, by LabelMove id, woken by the message config_backend.history.labels
  publishes at each move's commit. One gap: moves of *different* labels are not serialized
  with each other (each holds its own label's lock), and ids are given at insert, so two such
  moves committing within the same instant in the opposite order of their ids could let a hub
  read that saw the higher one skip the lower. Rare (two label moves in the same milliseconds),
  and the client's poll still brings the label's config.
- While a process has no subscribers its hub reads nothing; the next subscriber sets the hub's
  position to the database head first, so it never replays a backlog nobody waits for.
- A restore (config_backend.backup) moves the `restores` counter past every value it had; the
  hub reads it with every read, and when it moved, takes the new head as its position and
  sends every subscriber a `reset` (the label-move sequence was moved past its old maximum too,
  so no later move gets an id below the hub's position).

Cost: a subscriber is a small object and a coroutine waiting in the event loop: no thread, no
database connection (bench/RESULTS.md "Ten thousand subscribers"). Under ASGI the stream is
served by core.asgi_app before Django (a key whose cached record is current costs no query);
under WSGI (runserver: `make run`) the stream holds its server thread, as any WSGI stream must.
The few database questions a stream asks (a key not in the cache, a replay) run in a small
pool of threads per process (DATABASE_THREADS), never one per stream. A subscriber that falls
MAX_PENDING events behind (a reader that stopped reading) gets a `reset` instead of an
unbounded buffer. A subscription is released when its stream ends (disconnect, key no longer
valid, server shutdown; under WSGI a write failing on the next heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction

from core import cache
from core.api.keys import api_key_for, current_record, key_prefix, scope_allows
from core.models import APIKey, ConfigRevision, LabelMove, Revision

logger = logging.getLogger(__name__)

LOCAL_POLL_SECONDS = 0.5
SHARED_POLL_SECONDS = 5.0
REDIS_RETRY_SECONDS = 5.0
# A hub with no subscriber for this long stops (and lets go of its Redis connection).
HUB_IDLE_SECONDS = 60.0
# Rows one hub read takes of each kind (a burst bigger than this is read in several).
BATCH = 500
# Events a subscriber may have waiting unread before it gets a `reset` instead.
MAX_PENDING = 1000
RETRY_MILLISECONDS = 1000
KEEP_ALIVE = b": keep-alive\n\n"
# Threads per process for the database questions of opening streams and re-checking keys.
DATABASE_THREADS = 4
_CURSOR = re.compile(r"([0-9]{1,18})\.([0-9]{1,18})")


class EventsUnavailable(OperationalError):
    """The hub could not read its position (the database is down): no stream can start (a
    database outage, so a 503 wherever it is raised: core.ops.middleware)."""


@dataclass(frozen=True)
class Cursor:
    """A position in both event sequences: the last revision number and label move id seen."""

    revision: int = 0
    label: int = 0

    def __str__(self) -> str:
        return f"{self.revision}.{self.label}"

    def latest(self, other: Cursor) -> Cursor:
        return Cursor(max(self.revision, other.revision), max(self.label, other.label))

    @classmethod
    def parse(cls, value: str | None) -> Cursor | None:
        """The cursor a Last-Event-ID names; None when it is not one."""
        match = _CURSOR.fullmatch((value or "").strip())
        return cls(int(match[1]), int(match[2])) if match else None


@dataclass(frozen=True)
class Event:
    kind: str  # "revision" | "label"
    position: int  # the revision number, or the label move id
    data: str  # JSON, serialized once for every subscriber
    created_at: object  # orders the two kinds

    @property
    def order(self) -> tuple:
        """Commit order across the two kinds (within a kind, the position's)."""
        return (self.created_at, self.kind == "label", self.position)

    def after(self, cursor: Cursor) -> bool:
        """Whether a subscriber at `cursor` has not seen this event."""
        if self.kind == "revision":
            return self.position > cursor.revision
        return self.position > cursor.label

    def advance(self, cursor: Cursor) -> Cursor:
        if self.kind == "revision":
            return Cursor(max(cursor.revision, self.position), cursor.label)
        return Cursor(cursor.revision, max(cursor.label, self.position))


def frame(kind: str, data: str, cursor: Cursor) -> bytes:
    """One event as written: every event carries the subscriber's position after it."""
    return f"id: {cursor}\nevent: {kind}\ndata: {data}\n\n".encode()


def reset_frame(cursor: Cursor, revision: int) -> bytes:
    return frame("reset", json.dumps({"revision": revision}), cursor)


OPENING = f"retry: {RETRY_MILLISECONDS}\n\n".encode()


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
    rows = (
        LabelMove.objects.filter(id__gt=label_move_id)
        .order_by("id")
        .values_list("id", "label", "to_revision", "created_at")[:limit]
    )
    return [
        Event("label", pk, json.dumps({"label": label, "revision": revision}), at)
        for pk, label, revision, at in rows
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
    oldest first, or one `reset` (module docstring). `position` is the hub's, taken after
    registering; the database's head, read now, may be past it. Queries the database (and
    closes this thread's connection)."""
    try:
        with one_snapshot():
            now = position.latest(head())
            after = Cursor.parse(last_event_id)
            limit = settings.SSE_MAX_REPLAY + 1
            missed, more = events_after(after, limit) if after else ([], False)
            if after is None or more or len(missed) >= limit or not known(after):
                return now, OPENING + reset_frame(now, cache.current_revision())
    finally:
        connection.close()
    since, chunks = after, [OPENING]
    for event in missed:
        since = event.advance(since)
        chunks.append(frame(event.kind, event.data, since))
    return since, b"".join(chunks)


# API keys of open streams ----------------------------------------------------------------------


def holders_from_database(checks: list[tuple[str, tuple]]) -> dict[str, dict | None]:
    """(key, what the cache held for it) → the key's fields when it is valid, else None: the
    database's answer (core.api.keys.api_key_for, which stores a fresh record). Closes this
    thread's connection."""
    try:
        holders = {}
        for key, cached in checks:
            api_key = api_key_for(key, cached=cached)
            holders[key] = (
                None if api_key is None else {"name": api_key.name, "scope": api_key.scope}
            )
        return holders
    finally:
        connection.close()


def may_subscribe(holder: dict | None) -> bool:
    """Whether a key with these fields may read the stream (the scope rule DRF applies)."""
    return holder is not None and scope_allows(
        scope=holder["scope"], method="GET", write_scope=APIKey.Scope.WRITE
    )


# Subscribers -------------------------------------------------------------------------------


class Subscription:
    """One stream's buffer. The hub delivers into it (in its loop); the stream takes from it
    (in the same loop under ASGI; in its server thread under WSGI: hence the lock) and is woken
    by `notify`."""

    __slots__ = ("hub", "key", "since", "written", "closed", "_notify", "_lock", "_pending")

    def __init__(self, hub: Hub, key: str | None, notify: Callable[[], None]):
        self.hub = hub
        self.key = key  # re-checked while the stream is open (None: a staff session)
        self.since = Cursor()  # read and moved by the stream only
        self.written = time.monotonic()  # by the stream only: when it last wrote
        self.closed = False
        self._notify = notify
        self._lock = threading.Lock()
        # Events, or a (cursor, revision) reset that replaces whatever was pending.
        self._pending: list[Event] | tuple[Cursor, int] = []

    def deliver(self, events: Iterable[Event], position: Cursor, revision: int) -> None:
        """Events read by the hub, now at `position`."""
        with self._lock:
            pending = self._pending
            if isinstance(pending, list):
                pending.extend(events)
                if len(pending) > MAX_PENDING:
                    self._pending = (position, revision)
            else:  # a reset not yet written: it resumes after these events instead
                self._pending = (position, revision)
        self._notify()

    def reset(self, position: Cursor, revision: int) -> None:
        """Replace whatever is pending with one `reset` to `position`."""
        with self._lock:
            self._pending = (position, revision)
        self._notify()

    def take(self) -> bytes:
        """The frames of what arrived since the last take, for this subscriber's position."""
        if not self._pending:  # nothing (a reference read needs no lock): most wake-ups
            return b""
        with self._lock:
            pending, self._pending = self._pending, []
        if isinstance(pending, tuple):
            self.since, revision = pending
            return reset_frame(self.since, revision)
        chunks = []
        for event in pending:
            if event.after(self.since):
                self.since = event.advance(self.since)
                chunks.append(frame(event.kind, event.data, self.since))
        return b"".join(chunks)

    def next_write(self, heartbeat: float) -> tuple[bytes | None, float]:
        """What to write now (events, or a keep-alive after `heartbeat` seconds of silence),
        else None and how long to wait for something."""
        chunk = self.take()
        now = time.monotonic()
        if not chunk and now - self.written >= heartbeat:
            chunk = KEEP_ALIVE
        if chunk:
            self.written = now
            return chunk, 0.0
        return None, heartbeat - (now - self.written)

    def wake(self) -> None:
        self._notify()

    def close(self) -> None:
        """End the stream (it stops at its next wake-up) and leave the hub."""
        if not self.closed:
            self.closed = True
            self.hub.unsubscribe(self)
            self._notify()


def heartbeat_seconds() -> float:
    return float(settings.SSE_HEARTBEAT_SECONDS)


def key_check_seconds() -> float:
    """How often the keys of open streams are re-checked: twice per heartbeat interval, so a
    stream ends within the interval of its key's revocation."""
    return heartbeat_seconds() / 2


# The hub ----------------------------------------------------------------------------------

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


class Hub:
    """Per process and event loop: reads new events once and hands them to every subscriber
    (module docstring). Everything but `unsubscribe` runs in its loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._subscribers: set[Subscription] = set()
        self._cursor = Cursor()
        self._config_revision = 0
        self._restores: int | None = None
        # Resolved (True) once the position is current; pending while a first subscriber waits
        # for the head to be read; None: not current (read at the next subscriber).
        self._synced: asyncio.Future | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._reads = ThreadPoolExecutor(1, thread_name_prefix="config-events-hub")
        self._redis = None
        self.redis_listening = False

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def position(self) -> Cursor:
        return self._cursor

    async def subscribe(
        self, last_event_id: str | None, key: str | None, notify: Callable[[], None]
    ) -> tuple[Subscription, bytes]:
        """Register a subscriber; returns it and the stream's opening bytes (module docstring).
        Raises EventsUnavailable when the database cannot say where the stream starts."""
        subscription = Subscription(self, key, notify)
        if self._synced is None or (self._synced.done() and not self._subscribers):
            self._synced = self.loop.create_future()  # the position may be old: read the head
            self._wake.set()
        self._subscribers.add(subscription)
        _count_subscribers(self)
        self._start()
        try:
            if not await asyncio.shield(self._synced):
                raise EventsUnavailable()
            if last_event_id is None:
                since, opening = self._cursor, hello(self._cursor, self._config_revision)
            else:
                since, opening = await self.loop.run_in_executor(
                    database_threads(), resume, last_event_id, self._cursor
                )
        except BaseException:
            subscription.close()
            raise
        subscription.since = since
        return subscription, opening

    def unsubscribe(self, subscription: Subscription) -> None:
        """From any thread (a WSGI stream ends in its own)."""
        if _running_loop() is self.loop:
            self._discard(subscription)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to leave
                self.loop.call_soon_threadsafe(self._discard, subscription)

    def _discard(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
        _count_subscribers(self)

    def _start(self) -> None:
        if not self._tasks:
            self._tasks = [
                self.loop.create_task(self._run()),
                self.loop.create_task(self._beat()),
                self.loop.create_task(self._watch_keys()),
            ]
            if cache.store().shared:
                self._tasks.append(self.loop.create_task(self._listen()))

    def _stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        self._synced = None
        for task in tasks:
            if task is not asyncio.current_task():
                task.cancel()

    async def _run(self) -> None:
        more = failed = False
        idle_since = time.monotonic()
        while True:
            if not more:
                # Redis wakes the hub at each commit; else (or after a failed read) it polls.
                shared = self.redis_listening and not failed
                poll = SHARED_POLL_SECONDS if shared else LOCAL_POLL_SECONDS
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(poll):
                        await self._wake.wait()
            self._wake.clear()
            if not self._subscribers:
                more = False
                if self._synced is not None and self._synced.done():
                    self._synced = None  # reads skipped from now: not current any more
                if time.monotonic() - idle_since > HUB_IDLE_SECONDS:
                    self._stop()  # the next subscriber starts it again
                    return
                continue
            idle_since = time.monotonic()
            try:
                more, failed = await self._catch_up(), False
            except DatabaseError as exc:
                logger.warning("Config events: reading new revisions failed (%s)", exc)
                more, failed = False, True
                self._fail_sync()
            except Exception:  # the hub must outlive any surprise
                logger.exception("Config events: unexpected error in the hub")
                more, failed = False, True
                self._fail_sync()

    def _fail_sync(self) -> None:
        """Subscribers waiting for the head get EventsUnavailable (and may retry)."""
        if self._synced is not None and not self._synced.done():
            self._synced.set_result(False)
            self._synced = None

    async def _catch_up(self) -> bool:
        """Read and deliver what is past the hub's position; True when there may be more."""
        syncing = self._synced is not None and not self._synced.done()
        cursor = None if syncing else self._cursor
        read = await self.loop.run_in_executor(self._reads, hub_read, cursor, self._restores)
        self._config_revision = read.counters.config_revision
        if read.head is not None:
            restored = not syncing and self._restores is not None
            self._cursor, self._restores = read.head, read.counters.restores
            if restored:
                logger.info("Config events: the database was restored; every stream is reset.")
                for subscription in list(self._subscribers):
                    subscription.reset(self._cursor, self._config_revision)
            if syncing:
                self._synced.set_result(True)
            return False
        if not read.events:
            return False
        for event in read.events:
            cursor = event.advance(cursor)
        self._cursor = cursor
        for subscription in list(self._subscribers):
            subscription.deliver(read.events, cursor, self._config_revision)
        return read.more

    async def _beat(self) -> None:
        """Wake the streams silent for a heartbeat interval (each then writes a keep-alive):
        one timer per hub, rather than one per stream re-armed at every wait."""
        heartbeat = heartbeat_seconds()
        while True:
            await asyncio.sleep(min(1.0, heartbeat / 4))
            due = time.monotonic() - heartbeat
            for subscription in list(self._subscribers):
                if subscription.written <= due:
                    subscription.wake()

    # Redis wake-ups: one pub/sub connection per hub.

    def redis(self):
        """This hub's redis.asyncio client (its loop's; the fast path's settings)."""
        if self._redis is None:
            from core.asgi_app import redis_client  # (core.asgi_app imports this module)

            self._redis = redis_client()
        return self._redis

    async def _listen(self) -> None:
        store = cache.store()
        while True:
            pubsub = None
            try:
                pubsub = self.redis().pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(cache.CHANGES_CHANNEL)
                self.redis_listening = True
                self._wake.set()  # anything committed while not listening
                while True:
                    message = await pubsub.get_message(timeout=SHARED_POLL_SECONDS)
                    if message is not None:
                        self._wake.set()
            except (*store.errors, *store.refusals, OSError) as exc:
                logger.warning(
                    "Config events: Redis pub/sub unavailable (%s: %s); reading the database "
                    "every %ss until it is back.",
                    type(exc).__name__,
                    exc,
                    LOCAL_POLL_SECONDS,
                )
            finally:
                self.redis_listening = False
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a broken connection
                        await asyncio.shield(pubsub.aclose())
            await asyncio.sleep(REDIS_RETRY_SECONDS)

    # API keys.

    async def key_holders(self, keys: Iterable[str]) -> dict[str, dict | None]:
        """Each key's fields (name, scope) when it is valid, else None: from its cached record
        when current (one MGET for them all, no SQL: core.api.keys.current_record, as a cache
        hit checks a key), else from the database in a database thread."""
        keys = list(keys)
        values = await self._key_records(keys) if keys else None
        mirror, records = (values[0], values[1:]) if values else (None, [None] * len(keys))
        holders, unsure = {}, []
        for key, record in zip(keys, records, strict=True):
            try:
                holders[key] = current_record(record, key, mirror)
            except (ValueError, KeyError, TypeError):  # a record not of this format
                holders[key] = None
            if holders[key] is None:
                unsure.append((key, (mirror, record)))
        if unsure:
            holders.update(
                await self.loop.run_in_executor(database_threads(), holders_from_database, unsure)
            )
        return holders

    async def _key_records(self, keys: list[str]) -> list | None:
        """[key revision mirror, each key's record], or None (no shared cache, or it failed:
        core.cache.try_cache's handling)."""
        store = cache.store()
        if not store.shared or cache.breaker.is_open():
            return None
        names = [cache.revision_key(ConfigRevision.API_KEYS)]
        names += [cache.api_key_record_key(key_prefix(key)) for key in keys]
        try:
            return await self.redis().mget(names)
        except store.refusals as exc:
            logger.warning("Cache refused a command while checking stream keys (%s)", exc)
        except store.errors as exc:
            cache.breaker.trip(exc, "checking stream keys")
        return None

    async def _watch_keys(self) -> None:
        """End the streams whose key is no longer valid (module docstring)."""
        while True:
            await asyncio.sleep(key_check_seconds())
            keys = {subscription.key for subscription in self._subscribers} - {None}
            if not keys:
                continue
            try:
                holders = await self.key_holders(keys)
            except Exception:  # the database is down: the streams stay open until it answers
                logger.warning("Config events: re-checking stream keys failed", exc_info=True)
                continue
            for subscription in list(self._subscribers):
                if subscription.key in keys and not may_subscribe(holders.get(subscription.key)):
                    subscription.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}
_hubs_guard = threading.Lock()


def hub_for(loop: asyncio.AbstractEventLoop) -> Hub:
    """The hub of `loop` (a server worker has one loop, so one hub)."""
    with _hubs_guard:
        hub = _hubs.get(loop)
        if hub is None:
            hub = _hubs[loop] = Hub(loop)
        return hub


def _count_subscribers(of: Hub) -> None:
    if settings.METRICS_ENABLED:
        from core.ops.metrics import EVENT_SUBSCRIBERS

        EVENT_SUBSCRIBERS.set(sum(hub.subscriber_count for hub in list(_hubs.values())))


# The streams: the async face (ASGI: core.asgi_app, or Django's handler) and the sync one -----


async def subscribe(
    last_event_id: str | None, key: str | None
) -> tuple[Subscription, bytes, asyncio.Event]:
    """Subscribe in the running loop; returns the subscription, the opening bytes and the event
    that wakes its stream (`writes`)."""
    ready = asyncio.Event()
    hub = hub_for(asyncio.get_running_loop())
    subscription, opening = await hub.subscribe(last_event_id, key, ready.set)
    return subscription, opening, ready


async def writes(subscription: Subscription, ready: asyncio.Event) -> AsyncIterator[bytes]:
    """What the stream writes after its opening, waiting in the event loop (woken by the hub:
    events, a heartbeat due, the end), until the subscription closes (disconnect, key no
    longer valid)."""
    heartbeat = heartbeat_seconds()
    while not subscription.closed:
        ready.clear()  # before taking: a delivery after the take wakes the wait
        chunk, _ = subscription.next_write(heartbeat)
        if chunk:
            yield chunk
        else:
            await ready.wait()


_background_loop: asyncio.AbstractEventLoop | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """Under WSGI: one thread running an event loop for the process's hub."""
    global _background_loop
    with _hubs_guard:
        if _background_loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="config-events-loop")
            thread.daemon = True
            thread.start()
            _background_loop = loop
        return _background_loop


class SyncStream:
    """An event stream as a WSGI response body: subscribed when made (through the process's hub
    loop: `background_loop`), waiting in its server thread; `close()` (the server's, at the
    end of the response, iterated or not) releases the subscription."""

    def __init__(self, last_event_id: str | None, key: str | None):
        self._ready = threading.Event()
        loop = background_loop()
        self.subscription, self._opening = asyncio.run_coroutine_threadsafe(
            hub_for(loop).subscribe(last_event_id, key, self._ready.set), loop
        ).result()

    def __iter__(self) -> Iterator[bytes]:
        heartbeat = heartbeat_seconds()
        subscription = self.subscription
        try:
            yield self._opening
            while not subscription.closed:
                self._ready.clear()  # before taking: a delivery after the take wakes the wait
                chunk, wait = subscription.next_write(heartbeat)
                if chunk:
                    yield chunk
                else:
                    self._ready.wait(wait)
        finally:
            subscription.close()

    def close(self) -> None:
        self.subscription.close()


class AsyncStream:
    """An event stream as a response body for Django's ASGI handler (a staff session's: keys'
    streams are served before Django, by core.asgi_app); `close()` releases the subscription."""

    def __init__(self, subscription: Subscription, opening: bytes, ready: asyncio.Event):
        self.subscription, self._opening, self._ready = subscription, opening, ready

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            yield self._opening
            async for chunk in writes(self.subscription, self._ready):
                yield chunk
        finally:
            self.subscription.close()

    def close(self) -> None:
        self.subscription.close()
