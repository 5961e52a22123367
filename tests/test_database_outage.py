"""PostgreSQL down: cached config reads still answer 200; everything that needs the database
answers 503 with Retry-After at once (JSON under /api/, plain text elsewhere), whether the error
is raised in a view or outside one; /readyz says the database is down; and once PostgreSQL is
back, every worker recovers without a restart."""

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
from pathlib import Path

import psycopg
import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError, connection
from django.test import Client

from tests import throwaway_servers
from tests.live import ROOT, AdminBrowser, call, server
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
import django
django.setup()
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from assistants.models import Assistant
from core.models import APIKey
call_command("migrate", verbosity=0)
User.objects.create_superuser("admin", "admin@example.com", "pw")
with transaction.atomic():
    assistant = Assistant.objects.create(name="Secretary", model="gpt-4o-mini", is_secretary=True)
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
print(assistant.id, key)
"""


class Postgres:
    """A throw-away PostgreSQL of this test's own (started by tests.throwaway_servers), to stop and
    start again on the same data directory and port."""

    def __init__(self):
        self.workdir = Path(tempfile.mkdtemp(prefix="config-backend-db-outage-"))
        self.url = start_postgres(self.workdir)
        kind, self.proc = throwaway_servers._started.pop()  # ours to stop, restart and clean up
        assert kind == "postgres"

    def stop(self):
        """As `pg_ctl stop -m immediate`: every backend killed, clients cut off mid-connection."""
        self.proc.send_signal(signal.SIGQUIT)
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


@pytest.fixture
def own_services():
    postgres = Postgres()
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
        assistant_id, key = setup.stdout.split()[-2:]
        yield postgres, env, assistant_id, key
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
    postgres, env, assistant_id, key = own_services
    with server(env=env, workers=2) as base_url:
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
        # Concurrent requests until both workers hold a new connection: each one has answered.
        workers_connected = 0
        with ThreadPoolExecutor(4) as pool:
            while workers_connected < 2:
                assert time.monotonic() - back_at < 10, "a worker did not recover within 10 s"
                statuses = list(pool.map(lambda _: call("GET", assistants, key=key)[0], range(8)))
                assert statuses == [200] * 8
                (workers_connected,) = postgres.sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                )[0]
        every_worker = time.monotonic() - back_at
        assert admin_page(admin)[0] == 200
        assert call("GET", f"{base_url}/readyz")[0] == 200

    with capsys.disabled():
        print(
            f"\n[database outage] PostgreSQL accepting again -> first 200: {first_answer:.2f} s;"
            f" both workers answering: {every_worker:.2f} s (no server restart)"
        )
