"""Server-Sent Events of config changes (SPEC "Runtime delivery", push over HTTP): the stream of
`GET /api/v1/config/events/` (assistants.events_api is its view).

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
  (`data: {"revision": current config revision}`) with the id of that position, so even a
  subscriber that saw nothing else can resume exactly.
- `retry: 1000` first (an EventSource reconnects after a second), and a comment line
  (`: keep-alive`) after settings.SSE_HEARTBEAT_SECONDS without anything written, so proxies keep
  the connection and a dead peer is noticed.

Delivery (why an event arrives within a second of the commit, on every instance):
- The database is the source of truth: an event is a committed row, and positions are row
  numbers. Revision numbers are committed in order (every change set holds the `config`
  revision row's lock from its bump to its commit, core.cache), so "every Revision with
  number > N" is exactly what a subscriber at N has not seen, whenever it is asked.
- One `Hub` per process (a thread, started by the first subscriber, stopped after
  HUB_IDLE_SECONDS without one; it holds no database connection between reads) reads the rows
  past its position and hands them to every subscriber of the process: a subscriber costs no
  query.
  It reads when woken: with Redis, by the message each commit publishes on
  core.cache.CHANGES_CHANNEL (after the commit, so the rows are visible), and every
  SHARED_POLL_SECONDS besides as a safety net (a lost message, Redis down: then every
  LOCAL_POLL_SECONDS); with the local-memory default (no other process to hear from, but
  `import_config` in a second terminal commits to the same database) every LOCAL_POLL_SECONDS.
  A wake-up is a notification, never data, so a missed or duplicated one costs nothing.
- A subscriber registers before it reads what it missed (the replay), so every row is either
  committed before the replay read (and in it) or delivered by the hub after registration;
  rows in both are dropped by the subscriber's own position (`Subscription.since`). The hub
  advances its position and picks the subscribers to deliver to under one lock, so one joining
  meanwhile gets the batch (and drops it if it is already past it) or starts after it.
- Label moves: the same, by LabelMove id, woken by the message config_backend.history.labels
  publishes at each move's commit. One gap: moves of *different* labels are not serialized
  with each other (each holds its own label's lock), and ids are given at insert, so two such
  moves committing within the same instant in the opposite order of their ids could let a hub
  read that saw the higher one skip the lower. Rare (two label moves in the same milliseconds),
  and the client's poll still brings the label's config.
- While a process has no subscribers its hub reads nothing; the next subscriber sets the hub's
  position to the database head first, so it never replays a backlog nobody waits for.

Cost: a subscriber is a small buffer, and on an ASGI server an async iterator waiting in the
event loop (Django streams an async iterator without a thread; its ASGI handler does keep the
request's idle executor thread, blocked, until the stream ends). Under WSGI (runserver: `make
run`) the stream holds its server thread, as any WSGI stream must. No subscriber holds a
database connection: the view closes its own once the stream is set up. A subscriber that
falls MAX_PENDING events behind (a reader that stopped reading) gets a `reset` instead of an
unbounded buffer. A subscription is released when its stream ends (disconnect, server
shutdown, or a write failing on the next heartbeat under WSGI), and the hub holds subscribers
weakly, so one whose response was never streamed is released with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection

from core import cache
from core.models import LabelMove, Revision

logger = logging.getLogger(__name__)

LOCAL_POLL_SECONDS = 0.5
SHARED_POLL_SECONDS = 5.0
REDIS_RETRY_SECONDS = 5.0
# A hub with no subscriber for this long stops (and lets go of its Redis connection).
HUB_IDLE_SECONDS = 60.0
# Rows one hub read takes (a burst bigger than this is read in several).
BATCH = 500
# Events a subscriber may have waiting unread before it gets a `reset` instead.
MAX_PENDING = 1000
RETRY_MILLISECONDS = 1000
KEEP_ALIVE = b": keep-alive\n\n"
_CURSOR = re.compile(r"([0-9]{1,18})\.([0-9]{1,18})")


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
    data: dict
    created_at: object  # orders the two kinds within a batch

    def after(self, cursor: Cursor) -> bool:
        """Whether a subscriber at `cursor` has not seen this event."""
        if self.kind == "revision":
            return self.position > cursor.revision
        return self.position > cursor.label

    def advance(self, cursor: Cursor) -> Cursor:
        if self.kind == "revision":
            return Cursor(max(cursor.revision, self.position), cursor.label)
        return Cursor(cursor.revision, max(cursor.label, self.position))


def frame(kind: str, data: dict, cursor: Cursor) -> bytes:
    return f"id: {cursor}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


# Reading the rows ---------------------------------------------------------------------------


def revision_events_after(number: int, limit: int) -> list[Event]:
    rows = (
        Revision.objects.filter(number__gt=number)
        .order_by("number")
        .values_list("number", "assistants", "created_at")[:limit]
    )
    return [
        Event("revision", n, {"revision": n, "assistants": list(ids)}, at) for n, ids, at in rows
    ]


def label_events_after(label_move_id: int, limit: int) -> list[Event]:
    rows = (
        LabelMove.objects.filter(id__gt=label_move_id)
        .order_by("id")
        .values_list("id", "label", "to_revision", "created_at")[:limit]
    )
    return [
        Event("label", pk, {"label": label, "revision": revision}, at)
        for pk, label, revision, at in rows
    ]


def events_after(cursor: Cursor, limit: int) -> list[Event]:
    """Up to `limit` of each kind after `cursor`, oldest first."""
    found = revision_events_after(cursor.revision, limit)
    found += label_events_after(cursor.label, limit)
    found.sort(key=lambda event: (event.created_at, event.kind == "label", event.position))
    return found


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


# Subscribers -------------------------------------------------------------------------------


class Subscription:
    """One stream's buffer. The hub thread delivers into it; the stream takes from it."""

    def __init__(self, hub: Hub, since: Cursor):
        self.hub = hub
        self.since = since  # read and moved by the stream only
        self._lock = threading.Lock()
        self._pending: deque[Event] = deque()
        self._overflowed = False
        self._notify: Callable[[], None] | None = None
        self._ready = threading.Event()
        self.closed = False

    def deliver(self, events: list[Event]) -> None:
        with self._lock:
            if len(self._pending) + len(events) > MAX_PENDING:
                self._pending.clear()
                self._overflowed = True
            else:
                self._pending.extend(events)
            notify = self._notify
        if notify is None:
            self._ready.set()
        else:
            try:
                notify()
            except RuntimeError:  # its event loop is closed: the stream is gone
                self.close()

    def attach(self, notify: Callable[[], None]) -> None:
        """Wake the stream with `notify` (an event loop's) rather than a threading.Event."""
        with self._lock:
            self._notify = notify

    def take(self) -> bytes:
        """The frames of what arrived since the last take, for this subscriber's position."""
        with self._lock:
            events, self._pending = list(self._pending), deque()
            overflowed, self._overflowed = self._overflowed, False
        if overflowed:  # in the event loop maybe: no query, the hub's newest revision number
            self.since = self.hub.position()
            return reset_frame(self.since, self.since.revision)
        chunks = []
        for event in events:
            if event.after(self.since):
                self.since = event.advance(self.since)
                chunks.append(frame(event.kind, event.data, self.since))
        return b"".join(chunks)

    def wait(self, timeout: float) -> None:
        self._ready.wait(timeout)
        self._ready.clear()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub.unsubscribe(self)


def reset_frame(cursor: Cursor, revision: int) -> bytes:
    return frame("reset", {"revision": revision}, cursor)


def _heartbeat_seconds() -> float:
    return float(settings.SSE_HEARTBEAT_SECONDS)


def sync_stream(subscription: Subscription, opening: bytes) -> Iterator[bytes]:
    """The stream for a WSGI server: waits in its thread."""
    heartbeat = _heartbeat_seconds()
    try:
        yield opening
        written = time.monotonic()
        while True:
            chunk = subscription.take()
            if chunk:
                yield chunk
                written = time.monotonic()
                continue
            silent = time.monotonic() - written
            if silent >= heartbeat:
                yield KEEP_ALIVE
                written = time.monotonic()
            else:
                subscription.wait(heartbeat - silent)
    finally:
        subscription.close()


async def async_stream(subscription: Subscription, opening: bytes) -> AsyncIterator[bytes]:
    """The stream for an ASGI server: waits in the event loop, holding no thread."""
    heartbeat = _heartbeat_seconds()
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    subscription.attach(lambda: loop.call_soon_threadsafe(ready.set))
    try:
        yield opening
        written = time.monotonic()
        while True:
            ready.clear()
            chunk = subscription.take()
            if chunk:
                yield chunk
                written = time.monotonic()
                continue
            silent = time.monotonic() - written
            if silent >= heartbeat:
                yield KEEP_ALIVE
                written = time.monotonic()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), heartbeat - silent)
    finally:
        subscription.close()


# The hub ----------------------------------------------------------------------------------


class _RedisWakeUps:
    """Waits for the next CHANGES_CHANNEL message (or a timeout); reconnects after failures."""

    def __init__(self):
        self.pubsub = None
        self.retry_at = 0.0

    def wait(self) -> None:
        import redis
        from django_redis import get_redis_connection

        if self.pubsub is None and time.monotonic() >= self.retry_at:
            try:
                pubsub = get_redis_connection("default", write=True).pubsub(
                    ignore_subscribe_messages=True
                )
                pubsub.subscribe(cache.CHANGES_CHANNEL)
                self.pubsub = pubsub
            except (redis.RedisError, OSError) as exc:
                self._failed(exc)
        if self.pubsub is None:
            time.sleep(LOCAL_POLL_SECONDS)
            return
        try:
            if self.pubsub.get_message(timeout=SHARED_POLL_SECONDS) is not None:
                while self.pubsub.get_message(timeout=0) is not None:
                    pass  # one read covers every message that arrived meanwhile
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)

    def close(self) -> None:
        if self.pubsub is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self.pubsub.close()
            self.pubsub = None

    def _failed(self, exc: Exception) -> None:
        logger.warning(
            "Config events: Redis pub/sub unavailable (%s: %s); reading the database every "
            "%ss until it is back.",
            type(exc).__name__,
            exc,
            LOCAL_POLL_SECONDS,
        )
        self.close()
        self.retry_at = time.monotonic() + REDIS_RETRY_SECONDS


class Hub:
    """Per process: reads new events once and hands them to every subscriber (module docstring)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._subscribers: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._cursor = Cursor()
        self._generation = 0  # moves when the cursor is set from outside the thread
        self._thread: threading.Thread | None = None

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def position(self) -> Cursor:
        with self._lock:
            return self._cursor

    def subscribe(self, last_event_id: str | None) -> tuple[Subscription, bytes]:
        """Register a subscriber; returns it and the stream's opening bytes (module docstring).
        Queries the database (and leaves this thread's connection open: the caller closes it)."""
        with self._lock:
            idle = not self._subscribers
            if idle:  # the hub's position may be old
                self._cursor = head()
                self._generation += 1
            registered = self._cursor
            subscription = Subscription(self, registered)
            self._subscribers.add(subscription)
            if self._thread is None:  # (it stops only under this lock, with no subscriber)
                self._thread = threading.Thread(
                    target=self._run, name="config-events-hub", daemon=True
                )
                self._thread.start()
        _count_subscribers(self)
        # "Now" is the database's head, read after registering: the hub may not have delivered
        # everything up to it yet, and what it delivers later is dropped as already past.
        now = registered if idle else registered.latest(head())
        subscription.since = now
        opening = f"retry: {RETRY_MILLISECONDS}\n\n".encode()
        if last_event_id is None:
            return subscription, opening + frame(
                "hello", {"revision": cache.current_revision()}, now
            )
        after = Cursor.parse(last_event_id)
        missed = events_after(after, settings.SSE_MAX_REPLAY + 1) if after else []
        if after is None or len(missed) > settings.SSE_MAX_REPLAY or not known(after):
            return subscription, opening + reset_frame(now, cache.current_revision())
        subscription.since = after
        chunks = [opening]
        for event in missed:
            subscription.since = event.advance(subscription.since)
            chunks.append(frame(event.kind, event.data, subscription.since))
        return subscription, b"".join(chunks)

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)
        _count_subscribers(self)

    def _run(self) -> None:
        wake_ups = _RedisWakeUps() if cache.store().shared else None
        more = False
        idle_since = time.monotonic()
        try:
            while True:
                if not more:
                    if wake_ups is None:
                        time.sleep(LOCAL_POLL_SECONDS)
                    else:
                        wake_ups.wait()
                with self._lock:
                    if self._subscribers:
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since > HUB_IDLE_SECONDS:
                        self._thread = None  # the next subscriber starts another
                        return
                try:
                    more = self._catch_up()
                except DatabaseError as exc:
                    logger.warning("Config events: reading new revisions failed (%s)", exc)
                    more = False
                except Exception:  # the hub must outlive any surprise
                    logger.exception("Config events: unexpected error in the hub")
                    more = False
                finally:
                    # Reads are seconds apart: no connection is held between them (nor left
                    # behind by a hub that stops).
                    connection.close()
        finally:
            if wake_ups is not None:
                wake_ups.close()

    def _catch_up(self) -> bool:
        """Deliver the events past the hub's position; True when there may be more."""
        with self._lock:
            if not self._subscribers:
                return False
            cursor, generation = self._cursor, self._generation
        events = events_after(cursor, BATCH)
        if not events:
            return False
        with self._lock:
            if generation != self._generation:
                return True  # reset meanwhile by a new first subscriber: read again
            for event in events:
                cursor = event.advance(cursor)
            self._cursor = cursor
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.deliver(events)
        return len(events) >= BATCH


def _count_subscribers(of: Hub) -> None:
    if settings.METRICS_ENABLED:
        from core.ops.metrics import EVENT_SUBSCRIBERS

        EVENT_SUBSCRIBERS.set(of.subscriber_count)


hub = Hub()


def open_stream(last_event_id: str | None, *, asynchronous: bool):
    """The body of an event stream response: an async iterator for an ASGI server, else a
    sync one. The database connection this thread used is closed: the stream holds none."""
    subscription, opening = hub.subscribe(last_event_id)
    if not connection.in_atomic_block:
        connection.close()
    if asynchronous:
        return async_stream(subscription, opening)
    return sync_stream(subscription, opening)
