"""Real webhook receivers: HTTP servers on loopback that keep every request they get and
answer as a test scripts (a status, a redirect, a long body, or no answer at all)."""

import contextlib
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks.webhooks import Webhook as Verifier

from tests.live import ROOT, live_database_url, server_logs_dir

# An answer that never comes: the receiver holds the connection until the client gives up.
HANG = "hang"


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict = field(default_factory=dict)
    body: bytes = b"ok"


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float = field(default_factory=time.time)  # when it arrived (for the benchmark)

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str) -> dict:
        """The body, after the standardwebhooks library checked its signature (or raised)."""
        return Verifier(secret).verify(self.body, self.headers)

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """`answer(n)` says how to answer the n-th request (0-based): an Answer, or HANG."""

    def __init__(
        self,
        answer: Callable[[int], Answer | str] = lambda n: Answer(),
        *,
        tls: tuple[Path, Path] | None = None,
    ):
        """`tls`: (certificate, key) files: HTTPS at https://localhost:PORT/hook."""
        self.answer = answer
        self.received: list[Received] = []
        self.closed_hangs = 0  # hanging requests whose client gave up
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with receiver._changed:
                    index = len(receiver.received)
                    receiver.received.append(
                        Received({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    receiver._changed.notify_all()
                answer = receiver.answer(index)
                if answer == HANG:
                    receiver._hold(self.connection)
                    return
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://localhost:{port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _hold(self, sock) -> None:
        sock.settimeout(0.05)
        while not self._stopping.is_set():
            try:
                if not sock.recv(1024):
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        with self._changed:
            self.closed_hangs += 1
            self._changed.notify_all()

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, condition: Callable[["Receiver"], bool], timeout: float = 60) -> None:
        """Wait until `condition(self)` holds; fail saying what arrived if it doesn't."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(self.received)} requests received: "
                        f"{[r.body[:80] for r in self.received[-5:]]}"
                    )
                self._changed.wait(min(left, 0.5))

    def wait_for_count(self, count: int, timeout: float = 60) -> None:
        self.wait_for(lambda receiver: len(receiver.received) >= count, timeout)

    def message_ids(self) -> list[str]:
        with self._changed:
            return [request.message_id for request in self.received]


def self_signed_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """A certificate for `host` (its own authority) and its key, made by openssl."""
    cert, key = directory / f"{host}.pem", directory / f"{host}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}"),
            *("-addext", f"subjectAltName=DNS:{host}"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextlib.contextmanager
def webhook_worker(*args: str, env: dict | None = None):
    """`manage.py run_webhooks ARGS` in its own process, on this run's test database (tests
    using it are `django_db(transaction=True)`), allowed to send to 127.0.0.1; yields the
    process. Its output goes to a file with the servers' logs."""
    full_env = {
        **os.environ,
        "DATABASE_URL": live_database_url(),
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        **(env or {}),
    }
    output = server_logs_dir() / f"webhook-worker-{uuid.uuid4().hex[:8]}.log"
    with output.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_webhooks", *args],
            cwd=ROOT,
            env=full_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
