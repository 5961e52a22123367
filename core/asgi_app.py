"""The ASGI fast path: `AsyncConfigFastPath`, ConfigFastPath's async twin (config_backend.asgi).

A GET of a config endpoint that the WSGI path would decide (core.reads.fast_path.FastPath
.target) with a Bearer key is decided in the event loop (core.reads.asgi), with one async MGET
of the store's (`get_many`), exactly as on the WSGI path (core.reads owns which keys are read,
for which query, and what is current; nothing here names a cache key). `FastPath` adds what
both wrappers share: the host and SSL-redirect checks Django's middleware would make, the
security headers, the request id, the log line and the metrics. A hit is answered there: no
thread, no middleware, no DRF.

The event stream (`GET /api/v1/config/events/`, core.events) with an API key is served here
too, in the event loop, for as long as it is open: no thread per stream (Django's handler would
keep one blocked per open stream). Its key is checked as a hit checks one (the cached record,
one MGET, no SQL; else the database, in one of core.events' few threads), then the process's
hub streams to it; the stream ends when the client goes (`http.disconnect`) or the key stops
being valid. A refused key, a session, or a host Django would refuse go to Django, which
answers (the 401/403 JSON) as before.

Everything else goes to Django's ASGI handler untouched: the admin, the API, static files,
/metrics, and any other scope type (the servers are started without the lifespan protocol,
which Django's handler refuses). So does a miss, carrying what was fetched: Django builds
`request.META` from the scope, not from anything this wrapper holds, so the read and the
request's start travel in the scope (`CARRIED`) and `DjangoASGIHandler` copies them into META,
where the WSGI path leaves them. The key check and `get_or_build` then use that read instead of
asking Redis again (a miss costs one MGET, as under WSGI), and the request keeps its id.

The read is the store's async read (core.store: `aget_many`; RedisStore's per process and
event loop client, its connection limit and its error handling, as try_cache's): when Redis
fails, is refused or is busy, it returns None and the request goes on to Django, which answers
from the database. The embedded default (LocalStore, no Redis) is never read here:
core.reads.fetch.plan says no, Django decides.

Bursts (DjangoASGIHandler). Django runs each request in a thread of its own and, with
PostgreSQL, on a connection of the worker's pool; a burst of requests that all need Django
(made-up API keys, a stampede of misses) would start a thread each, starve the event loop of the
hits beside them and wait on the pool. So Django works on at most
settings.MAX_DJANGO_REQUESTS_PER_WORKER requests at once; the others wait for an admission in
the event loop, holding nothing, and are answered 503 (Retry-After) after DJANGO_QUEUE_WAIT_MS.
Health probes never wait, and a request lets its admission and its database connection go once
its response is ready, before it is sent (a stream, a slow reader hold neither).
"""

import asyncio
import functools
import io
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.db import close_old_connections
from django.urls import reverse

from core import events, store
from core.api.keys import MalformedAuthorization, bearer_key
from core.ops import request_log
from core.ops.middleware import SERVER_BUSY, unavailable_response
from core.reads.asgi import answer_hit, request_meta
from core.reads.fast_path import FastPath

# The scope key a request handed on to Django carries the fast path's META entries in.
CARRIED = "core.carried_meta"
# The scope key of a request admitted to Django before its body was read (DjangoASGIHandler).
ADMITTED = "core.admitted"
EVENTS_PATH = "/api/v1/config/events/"
# The URL name of the event stream (config_backend/urls.py): the `endpoint` of its log line.
EVENTS_ENDPOINT = "config-events"
EVENTS_HEADERS = [
    ("Content-Type", "text/event-stream"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),  # nginx: pass each event on at once
]


class AsyncConfigFastPath:
    """ASGI wrapper: answer config GETs from the cache, hand everything else to Django."""

    def __init__(self, application):
        self.application = application
        self.fast_path = FastPath()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope["path"]
            if path == EVENTS_PATH and scope["method"] == "GET":
                meta = request_meta(scope["headers"])
                if await self.stream_events(meta, scope, receive, send):
                    return
                carried = {name: value for name, value in meta.items() if name[:5] != "HTTP_"}
                scope = {**scope, CARRIED: carried}
            target = FastPath.target(scope["method"], scope["query_string"], path)
            if target:
                carried = await answer_hit(self.fast_path, target, scope, send, self.get_many)
                if carried is None:
                    return
                scope = {**scope, CARRIED: carried}
        await self.application(scope, receive, send)

    async def stream_events(self, meta: dict, scope, receive, send) -> bool:
        """Serve the event stream of a valid key until it ends; False (nothing sent): Django
        answers instead (a refusal, a session, a host it refuses, the database down)."""
        secure = self.fast_path.secure_if_servable(meta, scope.get("scheme"))
        try:
            key = bearer_key(meta.get("HTTP_AUTHORIZATION"))
        except MalformedAuthorization:
            key = None
        if secure is None or key is None:
            return False
        start = request_log.begin(meta)
        hub = events.hub_for(asyncio.get_running_loop())
        holder = (await hub.key_holders([key]))[key]
        if not events.may_subscribe(holder):
            return False
        query = parse_qs(scope["query_string"].decode("latin1"))
        last_event_id = meta.get("HTTP_LAST_EVENT_ID") or query.get("last_event_id", [None])[0]
        try:
            subscription, opening, ready = await events.subscribe(last_event_id or None, key)
        except events.EventsUnavailable:
            return False
        gone = asyncio.ensure_future(_disconnect(receive))
        gone.add_done_callback(lambda _: subscription.close())
        try:
            headers = [
                *EVENTS_HEADERS,
                *self.fast_path.headers[secure],
                (request_log.REQUEST_ID_HEADER, start.request_id),
            ]
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(name.encode(), value.encode()) for name, value in headers],
                }
            )
            request_log.finish(
                start,
                endpoint=EVENTS_ENDPOINT,
                method="GET",
                path=scope["path"],
                status=200,
                api_key_name=holder.get("name"),
            )
            await send({"type": "http.response.body", "body": opening, "more_body": True})
            async for chunk in events.writes(subscription, ready):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not gone.done():  # ended here (the key is no longer valid): end the response
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the connection broke (servers that say so on a write)
            pass
        finally:
            subscription.close()
            gone.cancel()
        return True

    async def get_many(self, names: list[str]) -> list[bytes | None] | None:
        """The cache's values, or None when it failed (core.store.redis: the async reads)."""
        return await store.store().aget_many(names)


async def _disconnect(receive) -> None:
    """Returns when the client has gone (after the request's body, if any)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class _CarryingRequest(ASGIRequest):
    def __init__(self, scope, body_file):
        super().__init__(scope, body_file)
        self.META.update(scope.get(CARRIED, ()))


class DjangoASGIHandler(ASGIHandler):
    """Django's ASGI handler (what get_asgi_application() returns), whose requests' META
    also holds what the fast path carried in the scope, and which works on at most
    settings.MAX_DJANGO_REQUESTS_PER_WORKER requests at once (`admit`)."""

    request_class = _CarryingRequest

    def __init__(self):
        super().__init__()
        self._loop = None
        self._admissions = None

    async def __call__(self, scope, receive, send):
        """A request without a body waits for its admission here, before Django starts a
        thread for it; one with a body, once the body is read (`run_get_response`): a slow
        upload holds none. Health probes never wait: a burst must not fail them."""
        if scope["type"] != "http" or _has_body(scope) or scope["path"] in _probe_paths():
            return await super().__call__(scope, receive, send)
        release = await self.admit()
        if release is None:
            return await self.send_response(_busy(self.request_class(scope, io.BytesIO())), send)
        try:
            await super().__call__({**scope, ADMITTED: release}, receive, send)
        finally:
            release()

    async def run_get_response(self, request):
        """Django's middleware and view, admitted (see __call__). The request's database
        connection goes back to the pool before the response is sent, so a slow reader holds
        none (Django lets it go only after the send)."""
        release = request.scope.get(ADMITTED)
        if release is None and request.path not in _probe_paths():
            release = await self.admit()
            if release is None:
                return _busy(request)
        try:
            response = await super().run_get_response(request)
            await sync_to_async(close_old_connections)()  # in the request's own thread
            return response
        finally:
            if release is not None:
                release()  # a stream goes on being sent, admitted no longer

    async def admit(self):
        """Wait (in the event loop, holding nothing) for one of this worker's admissions, up
        to DJANGO_QUEUE_WAIT_MS; returns what gives it back (once), or None if none came."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a semaphore belongs to one loop
            limit = settings.MAX_DJANGO_REQUESTS_PER_WORKER
            self._loop, self._admissions = loop, asyncio.Semaphore(limit)
        admissions = self._admissions
        try:
            async with asyncio.timeout(settings.DJANGO_QUEUE_WAIT_MS / 1000):
                await admissions.acquire()
        except TimeoutError:
            return None
        released = False

        def release():
            nonlocal released
            if not released:
                released = True
                admissions.release()

        return release


def _has_body(scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


@functools.cache
def _probe_paths() -> frozenset[str]:
    return frozenset((reverse("healthz"), reverse("readyz")))


def _busy(request):
    """The 503 of a request that waited too long for an admission, with its log line."""
    start = request_log.begin(request.META)
    response = unavailable_response(request, SERVER_BUSY)
    response[request_log.REQUEST_ID_HEADER] = start.request_id
    request_log.finish(start, endpoint="busy", method=request.method, path=request.path, status=503)
    return response
