"""The streams (core.events): the async face (ASGI: core.asgi_app, or Django's handler) and
the sync one (WSGI)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

from core.events.hub import _hubs_guard, hub_for
from core.events.subscription import Subscription, heartbeat_seconds


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
