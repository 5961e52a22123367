"""The hub (core.events): one per process and event loop, it reads new events once and hands
them to every subscriber of the process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import DatabaseError

from core import store
from core.events.frames import Cursor, EventsUnavailable
from core.events.keys import KeyChecks
from core.events.replay import database_threads, hello, hub_read, resume
from core.events.subscription import Subscription, heartbeat_seconds

logger = logging.getLogger("core.events")  # one logger for the package, as before the split

LOCAL_POLL_SECONDS = 0.5
SHARED_POLL_SECONDS = 5.0
REDIS_RETRY_SECONDS = 5.0
# A hub with no subscriber for this long stops (and lets go of its Redis connection).
HUB_IDLE_SECONDS = 60.0


class Hub(KeyChecks):
    """Per process and event loop: reads new events once and hands them to every subscriber
    (core.events docstring). Everything but `unsubscribe` runs in its loop."""

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
        """Register a subscriber; returns it and the stream's opening bytes (core.events docstring).
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
            if store.store().shared:
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
        """This hub's redis.asyncio client: the store's, of this loop (core.store.redis)."""
        if self._redis is None:
            self._redis = store.store().async_client()
        return self._redis

    async def _listen(self) -> None:
        current = store.store()
        while True:
            pubsub = None
            try:
                pubsub = self.redis().pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(store.CHANGES_CHANNEL)
                self.redis_listening = True
                self._wake.set()  # anything committed while not listening
                while True:
                    message = await pubsub.get_message(timeout=SHARED_POLL_SECONDS)
                    if message is not None:
                        self._wake.set()
            except (*current.errors, *current.refusals, OSError) as exc:
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
