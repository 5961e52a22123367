"""Start the app as a real server process (the production server, or runserver) for tests
across processes; and, for a test that stops, restarts or tunes them, a PostgreSQL and a Redis
of its own (`own_services_for`)."""

import contextlib
import http.cookiejar
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psycopg
from django.db import connection

from tests import throwaway_servers
from tests.throwaway_servers import free_port, spawn_redis, start_postgres

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


# Migrates an own_services_for() database and makes what its tests use; prints it as JSON.
_SETUP = """
import json
import django
django.setup()
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from assistants.models import Assistant
from core.models import APIKey
from tests.load import seed_rows
call_command("migrate", verbosity=0)
User.objects.create_superuser("admin", "admin@example.com", "pw")
with transaction.atomic():
    assistant = Assistant.objects.create(name="Secretary", model="gpt-4o-mini", is_secretary=True)
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
print(json.dumps({"assistant_id": str(assistant.id), "key": key, "load_rows": seed_rows(3, 2)}))
"""


class Postgres:
    """A throw-away PostgreSQL of a test's own (started by tests.throwaway_servers, with
    `settings` on top of its defaults), to stop and start again on the same data directory and
    port."""

    def __init__(self, settings: dict[str, str] | None = None):
        self.workdir = Path(tempfile.mkdtemp(prefix="config-backend-own-db-"))
        self.url = start_postgres(self.workdir, settings)
        kind, self.proc = throwaway_servers._started.pop()  # ours to stop, restart and clean up
        assert kind == "postgres"

    def stop(self, mode: str = "immediate"):
        """As `pg_ctl stop -m immediate` (every backend killed, clients cut off mid-connection,
        crash recovery at the next start) or `-m fast` (transactions rolled back, a clean
        shutdown)."""
        self.proc.send_signal({"immediate": signal.SIGQUIT, "fast": signal.SIGINT}[mode])
        self.proc.wait(timeout=10)

    def start(self):
        as_user = {}
        if os.geteuid() == 0:  # as tests.throwaway_servers: PostgreSQL refuses to run as root
            as_user = {"user": "postgres", "group": "postgres", "extra_groups": []}
        self.proc = subprocess.Popen(
            self.proc.args,
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "pg.log", "ab"),  # noqa: SIM115 (kept open for the server)
            **as_user,
        )

    def wait_until_accepting(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def sql(self, query: str):
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(query)
            return cursor.fetchall() if cursor.description else None

    def client_connections(self) -> int:
        """Connections to the app's database other than this one (each worker holds one)."""
        return self.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )[0][0]

    def connections_accepted(self) -> int:
        """Connections it has accepted since it started first (started with
        `log_connections=on`: its log has a line for each)."""
        return (self.workdir / "pg.log").read_text(errors="replace").count("connection authorized")


@dataclass
class OwnServices:
    postgres: Postgres
    env: dict  # DATABASE_URL and REDIS_URL
    assistant_id: str  # the Secretary's
    key: str  # a read key
    load_rows: list  # tests.load.seed_rows(): assistant ids, tool ids, read key, write key


@contextlib.contextmanager
def own_services_for(postgres_settings: dict[str, str] | None = None):
    """A PostgreSQL (with `postgres_settings`) and a Redis of the caller's own, its database
    migrated, holding a superuser (admin / pw), the Secretary, a read key and
    tests.load.seed_rows(3, 2); yields OwnServices, stops both at the end."""
    postgres = Postgres(postgres_settings)
    redis_port = free_port()
    redis_proc = spawn_redis(postgres.workdir, redis_port)
    env = {"DATABASE_URL": postgres.url, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    try:
        setup = subprocess.run(
            [sys.executable, "-c", _SETUP],
            cwd=ROOT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "config_backend.settings", **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert setup.returncode == 0, setup.stderr
        made = json.loads(setup.stdout.splitlines()[-1])
        yield OwnServices(postgres, env, **made)
    finally:
        for proc, stop_signal in [(postgres.proc, signal.SIGQUIT), (redis_proc, signal.SIGKILL)]:
            if proc.poll() is None:
                proc.send_signal(stop_signal)
            proc.wait(timeout=10)
        shutil.rmtree(postgres.workdir, ignore_errors=True)
