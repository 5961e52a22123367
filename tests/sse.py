"""A Server-Sent Events reader for tests: opens `GET /api/v1/config/events/` and parses events."""

import http.client
import json
import time
import urllib.parse
from dataclasses import dataclass

EVENTS_PATH = "/api/v1/config/events/"


@dataclass
class SseEvent:
    event: str  # "message" when unnamed; "comment" for a comment line (a keep-alive)
    data: str = ""
    id: str | None = None
    arrived: float = 0.0  # time.monotonic()

    @property
    def json(self):
        return json.loads(self.data)


class EventStream:
    """One subscription; `status`, `headers` and `body` (when the answer is not a stream)."""

    def __init__(self, base_url, key=None, *, last_event_id=None, query="", timeout=10):
        parts = urllib.parse.urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        headers = {"Accept": "text/event-stream"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.connection.request("GET", EVENTS_PATH + query, headers=headers)
        # Kept: for an HTTP/1.0 answer (runserver) the connection hands its socket to the
        # response and forgets it.
        self.sock = self.connection.sock
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.headers = self.response.headers
        self.body = b""
        if not self.headers.get("Content-Type", "").startswith("text/event-stream"):
            self.body = self.response.read()

    def next(self, timeout: float = 5.0, *, comments: bool = False) -> SseEvent:
        """The next event (keep-alive comments skipped unless `comments`); fails after
        `timeout`."""
        deadline = time.monotonic() + timeout
        fields: dict = {}
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no event within {timeout}s")
            self.sock.settimeout(remaining)
            try:
                line = self.response.readline()
            except TimeoutError:
                raise AssertionError(f"no event within {timeout}s") from None
            if not line:
                raise AssertionError("the stream ended")
            line = line.decode().rstrip("\n")
            if line == "":
                if fields.get("comment") is not None and "event" not in fields:
                    if comments:
                        return SseEvent("comment", fields["comment"], arrived=time.monotonic())
                    fields = {}
                    continue
                if "data" in fields or "event" in fields:
                    return SseEvent(
                        fields.get("event", "message"),
                        fields.get("data", ""),
                        fields.get("id"),
                        time.monotonic(),
                    )
                fields = {}  # a block with only `retry:`
                continue
            if line.startswith(":"):
                fields["comment"] = line[1:].strip()
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data" and "data" in fields:
                fields["data"] += "\n" + value
            else:
                fields[name] = value

    def next_named(self, kind: str, timeout: float = 5.0) -> SseEvent:
        """The next event of this kind, skipping any other."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.01, deadline - time.monotonic()))
            if event.event == kind:
                return event

    def ended(self, timeout: float = 10.0) -> bool:
        """Read (and drop) whatever comes until the server ends the stream; fails when it is
        still open after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the stream is still open after {timeout}s")
            self.sock.settimeout(remaining)
            try:
                line = self.response.readline()
            except TimeoutError:
                continue
            if not line:
                return True

    def close(self) -> None:
        self.response.close()
        self.connection.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
