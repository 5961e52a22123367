"""One stream's buffer (core.events): the hub delivers into it, the stream takes from it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from django.conf import settings

from core.events.frames import KEEP_ALIVE, Cursor, Event, frame, reset_frame

# Events a subscriber may have waiting unread before it gets a `reset` instead.
MAX_PENDING = 1000


class Owner(Protocol):
    """What a subscription needs of its hub (core.events.hub.Hub): to leave it."""

    def unsubscribe(self, subscription: Subscription) -> None: ...


class Subscription:
    """One stream's buffer. The hub delivers into it (in its loop); the stream takes from it
    (in the same loop under ASGI; in its server thread under WSGI: hence the lock) and is woken
    by `notify`."""

    __slots__ = ("hub", "key", "since", "written", "closed", "_notify", "_lock", "_pending")

    def __init__(self, hub: Owner, key: str | None, notify: Callable[[], None]):
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
