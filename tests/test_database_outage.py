"""PostgreSQL down: cached config reads still answer 200; everything that needs the database
answers 503 with Retry-After at once (at most DATABASE_POOL_TIMEOUT_MS, half a second, waiting
for a pooled connection; JSON under /api/, plain text elsewhere), whether the error is raised in
a view or outside one; /readyz says the database is down; and once PostgreSQL is
back, every worker recovers without a restart. Restarted under readers and writers, no request
hangs or fails other than with a 503, and every write acknowledged with a 200 is kept."""

import json
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError, connection
from django.test import Client

from tests.live import AdminBrowser, Postgres, call, own_services_for, server, server_output
from tests.load import MixedLoad


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


@pytest.fixture
def own_services():
    # The suite's servers skip waiting for the WAL at commit (fast, and nothing outlives the
    # run); an immediate stop would then lose commits a client was told about. Not here.
    with own_services_for({"synchronous_commit": "on"}) as services:
        yield services


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
        # Concurrent requests, spread over both workers: each needs a connection of its
        # worker's pool (which lost all of them), so every one of them must answer.
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
    with server(env=own_services.env, workers=2) as base_url:
        load = MixedLoad.over(
            [base_url],
            own_services.load_rows,
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
