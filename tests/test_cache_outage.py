"""Redis hung (SIGSTOP), or killed and restarted empty: reads keep coming from PostgreSQL
within 2 s, writes are refused with 503 and change nothing, and nothing stale is served after."""

import json
import signal
import time

import pytest

from assistants.models import Assistant
from core.models import APIKey
from core.store import BREAKER_SECONDS, breaker
from tests.factories import assistant_payload, key_client
from tests.live import call, live_database_url, server
from tests.throwaway_servers import free_port, spawn_redis

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of this test's own, which it may stop, kill and restart."""
    port = free_port()
    state = {"proc": spawn_redis(tmp_path, port), "port": port, "dir": tmp_path}
    yield state
    proc = state["proc"]
    proc.send_signal(signal.SIGCONT)
    proc.kill()
    proc.wait()


@pytest.fixture
def app(own_redis):
    env = {
        "DATABASE_URL": live_database_url(),
        "REDIS_URL": f"redis://127.0.0.1:{own_redis['port']}/0",
    }
    with server(env=env, workers=2) as base_url:
        yield base_url


@pytest.fixture
def setup():
    secretary = Assistant.objects.create(
        name="Secretary", model="gpt-4o-mini", is_secretary=True, instructions="before"
    )
    _, read = APIKey.objects.create_key(name="runtime", scope="read")
    _, write = APIKey.objects.create_key(name="automation", scope="write")
    return secretary, read, write


def timed(method, url, **kwargs):
    started = time.monotonic()
    status, headers, body = call(method, url, **kwargs)
    return status, body, time.monotonic() - started


def edit_instructions(app, write, secretary, text: str) -> tuple[int, bytes, float]:
    """PATCH the secretary's instructions: (status, body, seconds it took)."""
    return timed(
        "PATCH", f"{app}/api/v1/assistants/{secretary.id}/", key=write, body={"instructions": text}
    )


def instructions(app, read, secretary) -> str:
    status, body, elapsed = timed(
        "GET", f"{app}/api/v1/assistants/{secretary.id}/config/", key=read
    )
    assert status == 200 and elapsed < 2.0, (status, elapsed)
    return json.loads(body)["instructions"]


def wait_for_breaker():
    time.sleep(BREAKER_SECONDS + 0.5)


def test_a_hung_redis_costs_reads_no_errors_and_refuses_writes(app, own_redis, setup):
    secretary, read, write = setup
    for _ in range(4):  # cached in both workers' reach
        assert instructions(app, read, secretary) == "before"

    own_redis["proc"].send_signal(signal.SIGSTOP)
    for _ in range(6):  # both workers hit the timeout once, then skip Redis
        assert instructions(app, read, secretary) == "before"
    status, body, _ = timed("GET", f"{app}/readyz")
    assert status == 200 and json.loads(body)["cache"] == "degraded"

    status, body, elapsed = edit_instructions(app, write, secretary, "during the outage")
    assert status == 503 and elapsed < 2.0
    assert "nothing was changed" in json.loads(body)["detail"]
    secretary.refresh_from_db()
    assert secretary.instructions == "before"

    own_redis["proc"].send_signal(signal.SIGCONT)  # back, with its old contents
    wait_for_breaker()
    for _ in range(4):
        assert instructions(app, read, secretary) == "before"

    status, _, _ = edit_instructions(app, write, secretary, "after")
    assert status == 200
    for _ in range(4):
        assert instructions(app, read, secretary) == "after"


def test_a_redis_restarted_empty_serves_nothing_stale(app, own_redis, setup):
    secretary, read, write = setup
    for _ in range(4):
        assert instructions(app, read, secretary) == "before"

    own_redis["proc"].kill()
    own_redis["proc"].wait()
    for _ in range(4):
        assert instructions(app, read, secretary) == "before"
    status, _, elapsed = edit_instructions(app, write, secretary, "while dead")
    assert status == 503 and elapsed < 2.0

    own_redis["proc"] = spawn_redis(own_redis["dir"], own_redis["port"])
    wait_for_breaker()
    status, _, _ = edit_instructions(app, write, secretary, "after restart")
    assert status == 200
    for _ in range(4):
        assert instructions(app, read, secretary) == "after restart"


def test_a_write_once_redis_answers_again_succeeds_though_the_read_breaker_is_open():
    client = key_client("write")
    breaker.trip(ConnectionError("Redis was unreachable"), "a test")  # Redis is back now
    response = client.post("/api/v1/assistants/", assistant_payload(), format="json")
    assert response.status_code == 201
    assert not breaker.is_open()  # the write's probe closed it for the reads too
