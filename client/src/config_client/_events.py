"""The push listener: a thread on the server's Server-Sent Events stream
(`GET /api/v1/config/events/`) that wakes the poller when the config changes.

Events carry no config: `revision`, `label` and `reset` (and the `hello` that opens a fresh
connection, since a change may have committed between the start's fetch and the subscription)
only call `wake()`, and the poller then fetches with its ETag as usual. So the poll stays the
truth and an event missed, duplicated or misread costs at most one poll interval or one 304.

Reconnects: after the stream ends or fails, it reconnects with the `id` of the last event seen
as Last-Event-ID (the server replays what was missed, or sends `reset`), after a back-off that
doubles from RETRY_MIN_SECONDS to RETRY_MAX_SECONDS with full jitter (a fleet reconnecting after
a server restart spreads out) and restarts once a stream opens. A refusal (401, 403) or an
endpoint that is not there (an older server: 404) waits RETRY_MAX_SECONDS; polling goes on
meanwhile. A stream that says nothing for READ_TIMEOUT_SECONDS (the server writes a keep-alive
comment every 15 s) is taken as dead and reopened. `stop()` shuts the socket down, which ends
a read in progress at once.

What the server sends is bounded: a line longer than MAX_LINE_BYTES ends the stream (it is
reopened as after any failure), and an `id` that could not be sent back as a Last-Event-ID
header (anything but printable ASCII, or longer than MAX_EVENT_ID_CHARS) is dropped: the
previous id stays, so the reconnect replays a little more, which costs at most a 304.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import random
import socket
import threading
import urllib.parse
from collections.abc import Callable

from config_client._http import USER_AGENT

logger = logging.getLogger("config_client")

EVENTS_PATH = "/api/v1/config/events/"
WAKING_EVENTS = frozenset({"hello", "revision", "label", "reset"})
RETRY_MIN_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
READ_TIMEOUT_SECONDS = 45.0
CONNECT_TIMEOUT_SECONDS = 10.0
MAX_LINE_BYTES = 1024 * 1024  # the server's lines are a few dozen bytes
MAX_EVENT_ID_CHARS = 256


class EventListener:
    """Calls `wake()` on each config event of the server's stream, until `stop()`."""

    def __init__(self, base_url: str, api_key: str, wake: Callable[[], None]) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = parts.path.rstrip("/") + EVENTS_PATH
        self._api_key = api_key
        self._wake = wake
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.last_event_id: str | None = None
        self.connected = False  # a stream is open now
        self.connections = 0  # streams opened so far
        self.events = 0  # events received so far (keep-alives not counted)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="config-client-events", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):  # already closed
                    self._sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                opened = self._listen()
            except (OSError, http.client.HTTPException, _BrokenStream) as exc:
                opened = False
                if not self._stop.is_set():
                    logger.info("config event stream interrupted: %s", exc or type(exc).__name__)
            except _Refused as exc:
                logger.warning("config event stream unavailable (polling goes on): %s", exc)
                self._stop.wait(RETRY_MAX_SECONDS * random.uniform(0.5, 1.0))
                continue
            except Exception:  # the listener must outlive any surprise
                logger.exception("unexpected error in the config event listener")
                opened = False
            attempt = 0 if opened else attempt + 1
            ceiling = min(RETRY_MAX_SECONDS, RETRY_MIN_SECONDS * 2**attempt)
            self._stop.wait(random.uniform(RETRY_MIN_SECONDS / 2, ceiling))

    def _connection(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=CONNECT_TIMEOUT_SECONDS)

    def _listen(self) -> bool:
        """Read one stream until it ends; True if it opened (a 200 event stream)."""
        connection = self._connection()
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
            "User-Agent": USER_AGENT,
        }
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        response = None
        try:
            connection.request("GET", self._path, headers=headers)
            sock = connection.sock
            with self._lock:
                if self._stop.is_set():
                    return False
                self._sock = sock
            response = connection.getresponse()
            content_type = response.headers.get("Content-Type", "")
            if response.status != 200 or not content_type.startswith("text/event-stream"):
                raise _Refused(f"{self._path} answered {response.status} ({content_type})")
            self.connections += 1
            self.connected = True
            if sock is not None:
                sock.settimeout(READ_TIMEOUT_SECONDS)
            self._read(response)
            return True
        finally:
            self.connected = False
            with self._lock:
                self._sock = None
            if response is not None:
                response.close()  # an HTTP/1.0 answer's socket is the response's, not the
            connection.close()  # connection's

    def _read(self, response: http.client.HTTPResponse) -> None:
        kind, event_id, has_data = "message", None, False
        while not self._stop.is_set():
            raw = response.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return  # the server ended the stream
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise _BrokenStream(f"a line longer than {MAX_LINE_BYTES} bytes")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line == "":
                if has_data:
                    if event_id is not None:
                        self.last_event_id = event_id
                    self.events += 1
                    if kind in WAKING_EVENTS:
                        self._wake()
                kind, event_id, has_data = "message", None, False
                continue
            if line.startswith(":"):
                continue  # a comment: the keep-alive
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                kind = value
            elif name == "data":
                has_data = True
            elif name == "id":
                if _sendable_id(value):
                    event_id = value
                else:
                    logger.info("ignoring an event id that cannot be sent back as a header")


def _sendable_id(value: str) -> bool:
    """Whether `value` can go back as a Last-Event-ID header as it is."""
    return len(value) <= MAX_EVENT_ID_CHARS and all(" " <= c <= "~" for c in value)


class _BrokenStream(Exception):
    """The stream broke a bound (a line too long); it is reopened like a dropped one."""


class _Refused(Exception):
    """The server answered, but not with an event stream (refused key, no such endpoint)."""
