"""PostgreSQL down: cached config reads still answer 200; everything that needs the database
answers 503 with Retry-After at once (JSON under /api/, plain text elsewhere), whether the error
is raised in a view or outside one; /readyz says the database is down; and once PostgreSQL is
back, every worker recovers without a restart. Restarted under readers and writers, no request
hangs or fails other than with a 503, and every write acknowledged with a 200 is kept."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError, connection
from django.test import Client

from tests import throwaway_servers
from tests.live import ROOT, AdminBrowser, call, server, server_output
from tests.load import MixedLoad
from tests.throwaway_servers import free_port, spawn_redis, start_postgres


@pytest.fixture
def database_down(monkeypatch):
    def refuse():
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "ensure_connection", refuse)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/admin/", "text/plain"), ("/api/v1/assistants/", "application/json")],
)
def test_a_database_error_in_a_view_is_a_503(admin_client, request, path, content_type):
    request.getfixturevalue("database_down")
    response = admin_client.get(path)  # the session, hence the user, comes from the database
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"].startswith(content_type)
    assert "database is unavailable" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/admin/", "text/plain"), ("/api/v1/assistants/", "application/json")],
)
def test_a_database_error_outside_a_view_is_a_503_too(
    admin_user, settings, monkeypatch, path, content_type
):
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    settings.SESSION_SAVE_EVERY_REQUEST = True  # saved by the session middleware, after the view

    def refuse(self, must_create=False):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(SessionStore, "save", refuse)
    response = client.get(path)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"].startswith(content_type)
    assert "database is unavailable" in response.content.decode()


SETUP = """
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
    """A throw-away PostgreSQL of this test's own (started by tests.throwaway_servers), to stop and
    start again on the same data directory and port."""

    def __init__(self):
        self.workdir = Path(tempfile.mkdtemp(prefix="config-backend-db-outage-"))
        self.url = start_postgres(self.workdir)
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


@dataclass
class OwnServices:
    postgres: Postgres
    env: dict
    assistant_id: str  # the Secretary's
    key: str  # a read key
    load_rows: list  # tests.load.seed_rows(): assistant ids, tool ids, read key, write key


@pytest.fixture
def own_services():
    postgres = Postgres()
    # The suite's servers skip waiting for the WAL at commit (fast, and nothing outlives the
    # run); an immediate stop would then lose commits a client was told about. Not here.
    postgres.sql("ALTER DATABASE config_backend SET synchronous_commit = on")
    redis_port = free_port()
    redis_proc = spawn_redis(postgres.workdir, redis_port)
    env = {"DATABASE_URL": postgres.url, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    try:
        setup = subprocess.run(
            [sys.executable, "-c", SETUP],
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


def timed(method, url, **kwargs):
    started = time.monotonic()
    status, headers, body = call(method, url, **kwargs)
    return status, headers, body, time.monotonic() - started


def admin_page(browser: AdminBrowser, path: str = "/admin/"):
    try:
        with browser.opener.open(browser.base_url + path, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


@pytest.mark.slow
def test_with_postgresql_down_cached_reads_answer_the_rest_is_503_and_workers_recover(
    own_services, capsys
):
    postgres, assistant_id, key = own_services.postgres, own_services.assistant_id, own_services.key
    with server(env=own_services.env, workers=2) as base_url:
        config = f"{base_url}/api/v1/assistants/{assistant_id}/config/"
        assistants = f"{base_url}/api/v1/assistants/"
        for _ in range(4):  # the first builds the entry and the key record, the rest are hits
            status, _, cached, _ = timed("GET", config, key=key)
            assert status == 200
            assert call("GET", assistants, key=key)[0] == 200
        admin = AdminBrowser(base_url)
        admin.log_in("admin", "pw")
        postgres.sql("CHECKPOINT")  # the session row survives the immediate stop

        postgres.stop()

        for _ in range(4):  # both workers
            status, _, body, elapsed = timed("GET", config, key=key)
            assert (status, body) == (200, cached) and elapsed < 2.0
            status, headers, body, elapsed = timed("GET", assistants, key=key)
            assert status == 503 and elapsed < 2.0, (status, elapsed)
            assert headers["Retry-After"] == "5"
            assert "database is unavailable" in json.loads(body)["detail"]
        status, headers, body = admin_page(admin)
        assert status == 503 and headers["Content-Type"].startswith("text/plain")
        assert "database is unavailable" in body.decode()
        status, _, body, elapsed = timed("GET", f"{base_url}/readyz")
        assert status == 503 and elapsed < 2.0
        assert json.loads(body)["database"] == "down"

        postgres.start()
        postgres.wait_until_accepting()
        back_at = time.monotonic()
        while call("GET", assistants, key=key)[0] != 200:
            assert time.monotonic() - back_at < 10, "no worker recovered within 10 s"
            time.sleep(0.05)
        first_answer = time.monotonic() - back_at
        # Concurrent requests, spread over both workers: each opens its own connection (no
        # persistent ones under ASGI: config_backend.asgi), so every one of them must answer.
        with ThreadPoolExecutor(4) as pool:
            for _ in range(5):
                assert time.monotonic() - back_at < 10, "a worker did not recover within 10 s"
                statuses = list(pool.map(lambda _: call("GET", assistants, key=key)[0], range(8)))
                assert statuses == [200] * 8
        every_worker = time.monotonic() - back_at
        assert admin_page(admin)[0] == 200
        assert call("GET", f"{base_url}/readyz")[0] == 200

    with capsys.disabled():
        print(
            f"\n[database outage] PostgreSQL accepting again -> first 200: {first_answer:.2f} s;"
            f" both workers answering: {every_worker:.2f} s (no server restart)"
        )


def wait_for(predicate, what: str, timeout: float = 10, since: float | None = None) -> float:
    """Poll until predicate() is true; returns the seconds since `since` (default: now)."""
    since = time.monotonic() if since is None else since
    while not predicate():
        assert time.monotonic() - since < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - since


def readiness(base_url: str) -> tuple[int, str]:
    status, _, body = call("GET", f"{base_url}/readyz", timeout=5)
    return status, json.loads(body)["database"]


def stored_numbers(postgres: Postgres) -> dict[str, int]:
    """The number each load object holds in the database (its instructions or description)."""
    rows = postgres.sql(
        "SELECT id::text, instructions FROM assistants_assistant WHERE name LIKE 'load-%' "
        "UNION ALL SELECT id::text, description FROM tools_tool WHERE name LIKE 'load_tool_%'"
    )
    return {object_id: int(number) for object_id, number in rows}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_restart_under_load_answers_503_quickly_recovers_and_loses_no_acknowledged_write(
    own_services, mode, capsys
):
    postgres = own_services.postgres
    assistant_ids, tool_ids, read_key, write_key = own_services.load_rows
    with server(env=own_services.env, workers=2) as base_url:
        load = MixedLoad(
            [base_url],
            assistant_ids=assistant_ids,
            tool_ids=tool_ids,
            read_key=read_key,
            write_key=write_key,
            writers=2,
            readers=3,
            list_reads=True,  # GET /api/v1/assistants/ needs the database on every request
            allowed=(200, 503),
            timeout=5,
        )
        with load:
            wait_for(lambda: load.count("PATCH", 200) >= 5, "writes before the restart")
            stopped_at = time.monotonic()
            postgres.stop(mode)
            wait_for(lambda: readiness(base_url) == (503, "down"), "/readyz reporting it down")
            wait_for(lambda: load.count("PATCH", 503) and load.count("GET", 503), "503s")
            time.sleep(1.0)  # down, under load

            postgres.start()
            postgres.wait_until_accepting()
            back_at = time.monotonic()

            def answered_since_back(method):
                return any(
                    at > back_at and m == method and status == 200
                    for at, m, status, _ in list(load.answers)
                )

            first_write = wait_for(lambda: answered_since_back("PATCH"), "a write", since=back_at)
            ready = wait_for(lambda: readiness(base_url) == (200, "ok"), "/readyz", since=back_at)
            every_worker = wait_for(
                lambda: postgres.client_connections() >= 2, "both workers", since=back_at
            )
            recovered_at = time.monotonic()
            time.sleep(1.0)  # up again, under load

        late = [(m, status) for at, m, status, _ in load.answers if at > recovered_at + 0.2]
        assert late and all(status == 200 for _, status in late), load.problems
        served_log = server_output(base_url)

    assert load.unexpected() == {}, (load.problems, served_log[-3000:])
    # From the stop on (the first requests to a fresh server are slower on a busy machine).
    slowest = max(taken for at, _, _, taken in load.answers if at > stopped_at)
    assert slowest < 2.0, f"a request took {slowest:.2f} s"
    assert load.stale == 0, load.problems
    stored = stored_numbers(postgres)
    for object_id, acknowledged in load.committed.items():
        # The last number acknowledged is kept; a later write that failed may have committed
        # anyway (its connection lost during COMMIT), never an unknown number.
        assert stored[object_id] >= acknowledged, (object_id, stored[object_id], acknowledged)
        assert stored[object_id] in load.attempted[object_id]
    saved_unacknowledged = sum(stored[o] > n for o, n in load.committed.items())

    failed = load.count("PATCH", 503) + load.count("GET", 503)
    with capsys.disabled():
        print(
            f"\n[database restart, -m {mode}] {load.count('PATCH')} writes, {load.count('GET')} "
            f"reads: {failed} answered 503 (writes {load.count('PATCH', 503)}, reads "
            f"{load.count('GET', 503)}), 0 other failures, slowest answer "
            f"{slowest:.2f} s; down {back_at - stopped_at:.1f} s; PostgreSQL accepting"
            f" -> first acknowledged write {first_write:.2f} s, /readyz ok {ready:.2f} s, both "
            f"workers connected {every_worker:.2f} s (no restart); {len(load.committed)} objects"
            f" hold their last acknowledged write ({saved_unacknowledged} a later one answered 503"
            f" but committed); {load.stale} stale reads"
        )
