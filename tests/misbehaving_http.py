"""A real HTTP server on loopback that answers with whatever bytes a test scripts: broken status
lines, truncated or endless bodies, gzip bombs, event streams that never end a line. For testing
what a client does when the server (or a proxy in front of it) misbehaves."""

import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased; values as sent (Latin-1 decoded)


@dataclass
class Exchange:
    """One connection: the request read, and ways to answer it."""

    request: Request
    sock: socket.socket
    stopping: threading.Event
    sent: int = 0  # body and header bytes the kernel accepted
    client_closed: bool = False

    def send(self, data: bytes) -> bool:
        """Send `data`; False once the client has gone."""
        try:
            self.sock.sendall(data)
        except OSError:
            self.client_closed = True
            return False
        self.sent += len(data)
        return True

    def answer(self, status: str, headers: dict[str, str], body: bytes = b"") -> bool:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return self.send(f"HTTP/1.1 {status}\r\n{head}\r\n".encode("latin-1") + body)

    def hold(self) -> None:
        """Keep the connection open, sending nothing, until the client closes it or the server
        stops."""
        self.sock.settimeout(0.05)
        while not self.stopping.is_set():
            try:
                if not self.sock.recv(4096):
                    self.client_closed = True
                    return
            except TimeoutError:
                continue
            except OSError:
                self.client_closed = True
                return


Script = Callable[[Exchange], None]


@dataclass
class MisbehavingServer:
    """`with MisbehavingServer(script) as server:` serves at `server.url`; `script(exchange)`
    answers each request (on its own thread); `exchanges` lists them in arrival order."""

    script: Script
    exchanges: list[Exchange] = field(default_factory=list)

    def __post_init__(self):
        self._stopping = threading.Event()
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                request = _read_request(self.rfile)
                if request is None:
                    return
                exchange = Exchange(request, self.connection, owner._stopping)
                owner.exchanges.append(exchange)
                owner.script(exchange)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def to(self, path: str) -> list[Exchange]:
        """The exchanges for one path, in arrival order."""
        return [e for e in list(self.exchanges) if e.request.path.split("?")[0] == path]

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()


def _read_request(rfile) -> Request | None:
    line = rfile.readline(65537).decode("latin-1").strip()
    if not line:
        return None
    method, path, _ = (line.split(" ") + ["", ""])[:3]
    headers = {}
    while (header := rfile.readline(65537).decode("latin-1").strip()) != "":
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Request(method, path, headers)
