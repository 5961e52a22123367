"""Start the app as a real server process (the production server, or runserver) for tests
across processes."""

import contextlib
import http.cookiejar
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from django.db import connection

from tests.throwaway_servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_until_serving(
    url: str, proc: subprocess.Popen, timeout: float = 30, output: Path | None = None
) -> None:
    """Wait for `url` to answer; `output` is the file the server writes to (else its stderr
    pipe), shown if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = output.read_text(errors="replace") if output else proc.stderr.read()
            raise RuntimeError(f"server exited with {proc.returncode}: {said}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


_static_root: Path | None = None
# What each server started by server() wrote (stdout and stderr: its logs), by base URL.
_outputs: dict[str, Path] = {}
# Each running server's process, by base URL.
_processes: dict[str, subprocess.Popen] = {}


def server_logs_dir() -> Path:
    """Where servers' output goes: a file per server, kept for the whole run, so a test can
    read what a server logged and the run's secret-leak check (tests/secret_leaks.py) can
    search all of it. A file, not a pipe: a pipe nobody reads fills and stalls the server."""
    directory = Path(os.environ["TEST_SERVICES_DIR"]) / "server-logs"
    directory.mkdir(exist_ok=True)
    return directory


def server_output(base_url: str) -> str:
    """Everything the server at `base_url` has written so far."""
    return _outputs[base_url].read_text(errors="replace")


def server_pids(base_url: str) -> list[int]:
    """The process of the server at `base_url` and its children (the workers), from /proc."""
    return descendants(_processes[base_url].pid)


def descendants(pid: int) -> list[int]:
    """`pid`, its children, theirs, … (from /proc)."""
    pids = [pid]
    for one in pids:  # grows as children are found
        for task in Path(f"/proc/{one}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
                pids += [int(child) for child in (task / "children").read_text().split()]
    return pids


def thread_count(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def collected_static() -> Path:
    """Static files collected once per test run, as a deployment does before serving."""
    global _static_root
    if _static_root is None:
        root = Path(os.environ["TEST_SERVICES_DIR"]) / "static"
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput"],
            cwd=ROOT,
            env={**os.environ, "STATIC_ROOT": str(root)},
            check=True,
            capture_output=True,
        )
        _static_root = root
    return _static_root


@contextlib.contextmanager
def server(*, env: dict | None = None, workers: int = 2, cwd: Path = ROOT, argv=None, port=None):
    """Serve the project on a free port as `make serve` does (config_backend.serve: Granian,
    ASGI; or `argv`); yields the base URL. `port`: a given one (a restart at the same URL)."""
    port = port or free_port()
    full_env = {
        **os.environ,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "STATIC_ROOT": str(collected_static()),
        **(env or {}),
    }
    command = argv or [
        sys.executable,
        "-m",
        "config_backend.serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    command = [part.replace("{port}", str(port)) for part in command]
    base_url = f"http://127.0.0.1:{port}"
    output = server_logs_dir() / f"{len(_outputs):04d}-{port}.log"
    _outputs[base_url] = output
    with output.open("ab") as sink:
        proc = subprocess.Popen(
            command, cwd=cwd, env=full_env, stdout=sink, stderr=subprocess.STDOUT
        )
    _processes[base_url] = proc
    try:
        wait_until_serving(base_url + "/healthz", proc, output=output)
        yield base_url
    finally:
        del _processes[base_url]
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def live_database_url() -> str:
    """DATABASE_URL pointing at the database pytest-django created for this run.

    Servers started by a test read and write it, so such tests use
    `django_db(transaction=True)`: their rows must be committed to be seen.
    """
    url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    return urllib.parse.urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"]))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is an answer to look at, not to follow


_opener = urllib.request.build_opener(_NoRedirects)


def call(method: str, url: str, *, key: str | None = None, body=None, headers=None, timeout=10):
    """One HTTP request; returns (status, headers, body bytes), errors and redirects included."""
    all_headers = dict(headers or {})
    if key:
        all_headers["Authorization"] = f"Bearer {key}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


class AdminBrowser:
    """A cookie-keeping HTTP client that logs in to the admin and posts its forms (with CSRF)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> str:
        return self.opener.open(self.base_url + path).read().decode()

    def post_form(self, path: str, form: dict) -> str:
        """GET the page for its CSRF token, then POST the form to it; returns the answer page."""
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', self.get(path)).group(1)
        data = urllib.parse.urlencode({**form, "csrfmiddlewaretoken": token}, doseq=True)
        request = urllib.request.Request(
            self.base_url + path, data=data.encode(), headers={"Referer": self.base_url + path}
        )
        return self.opener.open(request).read().decode()

    def log_in(self, username: str, password: str, next_path: str = "/admin/") -> str:
        return self.post_form(
            f"/admin/login/?next={next_path}",
            {"username": username, "password": password, "next": next_path},
        )
