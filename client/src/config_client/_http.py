"""One conditional GET of the config bundle, with the standard library only.

Every outcome the poller has to tell apart comes back as a `Fetched` (200 or 304) or a
`FetchFailed` whose message says what to do about it; nothing here touches client state.

What a server (or anything in front of it) can do to the client is bounded here: the whole
exchange has a deadline (`timeout`), the body is read in chunks and refused as soon as it passes
`max_body_bytes`, before and after gzip decompression (a Content-Length over the bound is
refused unread), and every way the answer can be broken (a bad status line, a truncated body or
gzip stream, undecodable or too deeply nested JSON) is a FetchFailed. Answer bodies are never
quoted in a message: a proxy's 401 page may echo the Authorization header, that is, the key.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from config_client._bundle import BundleError, check_bundle

BUNDLE_PATH = "/api/v1/config/"
LABELS_PATH = "/api/v1/labels/"
USER_AGENT = "assistant-config-client/0.1"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024  # a real bundle is a few hundred KiB at most
READ_CHUNK_BYTES = 64 * 1024
GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around a deflate stream

# Every way reading an answer can fail; what a fetch raises instead is FetchFailed.
_BROKEN = (OSError, http.client.HTTPException, ValueError, EOFError, zlib.error, RecursionError)


class FetchFailed(Exception):
    """The server did not give a usable bundle; the message says why (never the API key)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Fetched:
    status: int  # 200: `bundle` is new; 304: the bundle held (If-None-Match) is current
    etag: str | None
    bundle: dict[str, Any] | None


class _TooLarge(ValueError):
    """The body passed max_body_bytes."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # Following a redirect would resend the Bearer key to wherever it points; a moved
    # server is a configuration error to report, not to paper over.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Deadline:
    """Ends the exchange at `seconds`, whatever it is doing: a socket timeout only bounds each
    read, so a body trickled a byte at a time would never trip it. At the deadline a timer
    shuts the connection's socket down, which ends a read in progress at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedConnection(http.client.HTTPConnection):
    """A connection whose socket the deadline watches from the moment it connects."""

    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        super().connect()
        self._deadline.watch(self.sock)


class _WatchedTLSConnection(_WatchedConnection, http.client.HTTPSConnection):
    """The same over TLS: HTTPSConnection.connect runs first, so the socket watched is the
    wrapped one."""


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_WatchedConnection, req, deadline=self._deadline)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            _WatchedTLSConnection, req, context=self._context, deadline=self._deadline
        )


def bundle_url(base_url: str, label: str | None) -> str:
    url = base_url.rstrip("/") + BUNDLE_PATH
    return url + "?" + urllib.parse.urlencode({"label": label}) if label else url


def revision_url(base_url: str, revision: int) -> str:
    """The bundle at a revision: a rollout's candidate (what a per-user read of it serves)."""
    return base_url.rstrip("/") + BUNDLE_PATH + "?" + urllib.parse.urlencode({"revision": revision})


def label_url(base_url: str, label: str) -> str:
    return base_url.rstrip("/") + LABELS_PATH + urllib.parse.quote(label, safe="") + "/"


def check_label(data: Any) -> dict[str, Any]:
    """A label's JSON, as far as the client reads it: its `rollout` (null, or an object with
    `id`, `revision`, `percent` and `users`, as config_client.rollout.variant reads it)."""
    if not isinstance(data, dict):
        raise BundleError(f"expected a JSON object, got {type(data).__name__}")
    rollout = data.get("rollout")
    if rollout is None:
        return data
    if not (
        isinstance(rollout, dict)
        and isinstance(rollout.get("id"), str)
        and isinstance(rollout.get("revision"), int)
        and isinstance(rollout.get("percent"), (int, float))
        and isinstance(rollout.get("users"), list)
        and all(isinstance(user, str) for user in rollout["users"])
    ):
        raise BundleError("/rollout is not a rollout (id, revision, percent, users)")
    return data


def fetch_bundle(
    url: str,
    api_key: str,
    *,
    etag: str | None,
    timeout: float,
    label: str | None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    check: Callable[[Any], dict[str, Any]] = check_bundle,
) -> Fetched:
    """GET the bundle within `timeout` seconds in all (connect, answer and body). `check`
    refuses (BundleError) a JSON answer that is not what was asked for: by default a bundle;
    config_client._client reads a label's JSON with it too."""
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json",
        "Accept-Encoding": "gzip",
        "User-Agent": USER_AGENT,
    }
    if etag:
        headers["If-None-Match"] = etag
    # ConfigClient only accepts http:// and https:// base URLs.
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    with _Deadline(timeout) as deadline:
        opener = urllib.request.build_opener(
            _NoRedirects, _HTTPHandler(deadline), _HTTPSHandler(deadline)
        )
        try:
            response = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            with exc:  # its body is never read: see the module docstring
                return _not_ok(exc, url, etag=etag, label=label, api_key=api_key)
        except _BROKEN as exc:
            raise FetchFailed(_explain(deadline, url, _unanswered(url, exc))) from None
        with response:
            status, answer_headers = response.status, response.headers
            if status != 200:
                raise FetchFailed(f"{url} answered {status}, expected 200 or 304", status=status)
            try:
                body = _read_body(response, max_body_bytes)
            except _TooLarge as exc:
                raise FetchFailed(f"{url} answered with {exc} (max_body_bytes)") from None
            except _BROKEN as exc:
                problem = f"reading {url} failed: {_describe(exc)}"
                raise FetchFailed(_explain(deadline, url, problem)) from None
            if deadline.expired:  # a body without a length just stops at the shutdown
                raise FetchFailed(_explain(deadline, url, "the deadline passed"))
    try:
        bundle = check(json.loads(body))
    except RecursionError:
        problem = "JSON nested too deeply"
        raise FetchFailed(f"{url} answered 200 with an unusable answer: {problem}") from None
    except (ValueError, BundleError) as exc:
        raise FetchFailed(f"{url} answered 200 with an unusable answer: {exc}") from None
    return Fetched(200, answer_headers.get("ETag"), bundle)


def _read_body(response: http.client.HTTPResponse, limit: int) -> bytearray:
    """The body, decompressed; _TooLarge as soon as it passes `limit` bytes either way."""
    declared = _content_length(response.headers.get("Content-Length"))
    if declared is not None and declared > limit:
        raise _TooLarge(f"a body of {declared} bytes, more than {limit} bytes")
    gzipped = response.headers.get("Content-Encoding", "").strip().lower() == "gzip"
    inflater = _GzipInflater(limit) if gzipped else None
    body = bytearray()
    received = 0
    while chunk := response.read(READ_CHUNK_BYTES):
        received += len(chunk)
        if received > limit:
            raise _TooLarge(f"a body of more than {limit} bytes")
        if inflater is not None:
            inflater.feed(chunk)
        else:
            body += chunk
    if declared is not None and received < declared:
        # http.client's read(amt) returns b"" at a premature end rather than IncompleteRead.
        raise EOFError(f"the body ended after {received} of {declared} bytes")
    return inflater.finish() if inflater is not None else body  # json.loads takes a bytearray


class _GzipInflater:
    """Decompresses gzip as it arrives, never producing more than `limit` + 1 bytes."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._inflate = zlib.decompressobj(GZIP_WBITS)
        self._out = bytearray()

    def feed(self, data: bytes) -> None:
        while data:
            if self._inflate.eof:  # a gzip file may hold several members, one after another
                self._inflate = zlib.decompressobj(GZIP_WBITS)
            # One byte over proves the bound passed; small steps keep the copies small.
            room = min(self._limit - len(self._out) + 1, READ_CHUNK_BYTES * 16)
            self._out += self._inflate.decompress(data, room)
            if len(self._out) > self._limit:
                raise _TooLarge(f"more than {self._limit} bytes after gzip decompression")
            data = self._inflate.unused_data if self._inflate.eof else self._inflate.unconsumed_tail

    def finish(self) -> bytearray:
        if not self._inflate.eof:
            raise EOFError("the gzip stream ended early")
        return self._out


def _content_length(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def _unanswered(url: str, exc: BaseException) -> str:
    """Why opening the exchange (connect, request, status line and headers) failed."""
    if isinstance(exc, http.client.RemoteDisconnected):
        return f"{url} closed the connection without answering"
    if isinstance(exc, http.client.HTTPException):
        return f"{url} sent a malformed HTTP answer ({type(exc).__name__})"
    reason = getattr(exc, "reason", exc)
    return f"cannot reach {url}: {reason or type(exc).__name__}"


def _explain(deadline: _Deadline, url: str, problem: str) -> str:
    if deadline.expired:
        return f"{url} gave no complete answer within {deadline.seconds:g} s"
    return problem


def _describe(exc: BaseException) -> str:
    if isinstance(exc, http.client.HTTPException) and not isinstance(exc, OSError):
        return type(exc).__name__  # their text may quote what the server sent
    return str(exc) or type(exc).__name__


def _not_ok(
    exc: urllib.error.HTTPError, url: str, *, etag: str | None, label: str | None, api_key: str
) -> Fetched:
    if exc.code == 304:
        if etag is None:  # the client asked for a bundle; "not modified" confirms nothing
            raise FetchFailed(
                f"{url} answered 304 Not Modified to a request without If-None-Match: "
                "no bundle to confirm",
                status=304,
            )
        return Fetched(304, exc.headers.get("ETag") or etag, None)
    raise FetchFailed(_refusal(exc, url, label, api_key), status=exc.code)


def _refusal(exc: urllib.error.HTTPError, url: str, label: str | None, api_key: str) -> str:
    if exc.code in (301, 302, 303, 307, 308):
        location = _printable(exc.headers.get("Location") or "", api_key, 300)
        return f"{url} redirected to {location}: use that as the base URL"
    # The status code only: the reason phrase and the body are the server's (or a proxy's)
    # words, and may repeat the request's Authorization header.
    if exc.code == 401:
        return f"{url} refused the API key (401)"
    if exc.code == 403:
        return f"{url} refused the API key's scope (403; config reads need `read`)"
    if label and exc.code in (400, 404):
        return (
            f"{url} answered {exc.code} for label {label!r}: the label does not exist, or this "
            f"server does not serve labels"
        )
    return f"{url} answered {exc.code}"


def _printable(text: str, api_key: str, limit: int) -> str:
    """Server-sent text fit for a log line: printable ASCII, short, never the key."""
    text = "".join(c if " " <= c <= "~" else "?" for c in text[: limit + len(api_key)])
    return text.replace(api_key, "[the API key]")[:limit] if api_key else text[:limit]
