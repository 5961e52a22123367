"""One HTTP attempt of a delivery: signed (Standard Webhooks), sent to the checked address, 5 s
at most in all, no redirect followed, the answer's status and the first KB of its body kept.

Signatures come from the `standardwebhooks` library (the scheme's reference implementation):
`webhook-id` (the delivery's message id, the same on every attempt), `webhook-timestamp` (this
attempt's, in seconds) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 of
`id.timestamp.body` under the secret). A receiver verifies with the same library.

http.client, not a client library: it never follows a redirect, and connecting to the address
webhooks.destinations checked (not to the name again) takes a three-line `connect`.
"""

import contextlib
import datetime
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from standardwebhooks.webhooks import Webhook as Signer

from webhooks.destinations import Destination, RefusedDestination, resolve
from webhooks.models import RESPONSE_BODY_KEPT

TIMEOUT_SECONDS = 5.0
USER_AGENT = "config-backend-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    """What an attempt got: an answer's status and body start, or an error (no answer)."""

    status_code: int | None
    duration_ms: int
    response_body: str = ""
    error: str = ""

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """410 Gone: the receiver says this endpoint will never take deliveries again."""
        return self.status_code == 410


def signed_headers(*, secret: str, message_id: str, body: bytes) -> dict[str, str]:
    timestamp = datetime.datetime.now(tz=datetime.UTC)
    signature = Signer(secret).sign(message_id, timestamp, body.decode())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a checked address; `host` stays the URL's (the Host header)."""

    def __init__(self, destination: Destination, timeout: float):
        super().__init__(destination.host, destination.port, timeout=timeout)
        self.address = destination.address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The same over TLS, the certificate checked against the URL's host name."""

    def __init__(self, destination: Destination, timeout: float):
        super().__init__(
            destination.host,
            destination.port,
            timeout=timeout,
            context=ssl.create_default_context(),
        )
        self.address = destination.address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def send(
    *, url: str, secret: str, message_id: str, body: bytes, timeout: float = TIMEOUT_SECONDS
) -> Outcome:
    """POST `body` to `url`, signed; never raises for what the network or receiver does."""
    started = time.monotonic()

    def took() -> int:
        return round((time.monotonic() - started) * 1000)

    try:
        destination = resolve(url)  # again: DNS may have changed since the webhook was saved
    except RefusedDestination as exc:
        return Outcome(None, took(), error=f"Refused: {exc}"[:300])
    kind = _PinnedHTTPSConnection if destination.scheme == "https" else _PinnedHTTPConnection
    connection = kind(destination, timeout)
    # The socket timeout bounds each wait; this bounds the whole exchange (a receiver that
    # answers a byte every few seconds), by shutting the socket at the deadline.
    expired = threading.Event()

    def expire():
        expired.set()
        if connection.sock is not None:
            with contextlib.suppress(OSError):  # already closed
                connection.sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(0.0, timeout - (time.monotonic() - started)), expire)
    timer.daemon = True
    timer.start()
    try:
        headers = signed_headers(secret=secret, message_id=message_id, body=body)
        connection.request("POST", destination.target, body=body, headers=headers)
        response = connection.getresponse()
        kept = response.read(RESPONSE_BODY_KEPT)
        text = kept.decode("utf-8", errors="replace").replace("\x00", "\ufffd")  # storable
        return Outcome(response.status, took(), text)
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        if expired.is_set() or isinstance(exc, TimeoutError):
            return Outcome(None, took(), error=f"No answer within {timeout:g} s.")
        return Outcome(None, took(), error=f"{type(exc).__name__}: {exc}"[:300])
    finally:
        timer.cancel()
        connection.close()
