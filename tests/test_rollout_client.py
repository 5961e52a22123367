"""Rollouts end to end against a live server (docs/contract.md "Reads per user"): the runtime
client holds both variants of its label and picks each user's locally, with no request per
user, from memory and from its last-known-good file; a rollout change reaches it by push; and
a per-user hit is answered by the ASGI fast path, in the event loop, never reaching Django."""

import asyncio
import json
import time

import pytest
from agents import RunContextWrapper
from config_client import ConfigClient
from config_client.agents import build_agents
from config_client.rollout import BASE, CANDIDATE, variant
from django.db import DEFAULT_DB_ALIAS, connections

from assistants.models import Assistant
from core.asgi_app import AsyncConfigFastPath
from core.models import APIKey
from tests.factories import asgi_gets
from tests.live import call, live_database_url, server, server_output
from tests.test_asgi_fast_path import CountingDjango
from tests.throwaway_servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LONG_POLL = 600  # only a push can bring a change within a test


@pytest.fixture(scope="module")
def live(django_db_setup):
    with server(env={"DATABASE_URL": live_database_url()}, workers=1) as base_url:
        yield base_url


@pytest.fixture
def keys():
    _, read = APIKey.objects.create_key(name="runtime", scope="read")
    _, write = APIKey.objects.create_key(name="release", scope="write")
    return read, write


@pytest.fixture
def started():
    clients = []

    def start(*args, **kwargs) -> ConfigClient:
        client = ConfigClient(*args, **kwargs)
        clients.append(client)
        return client.start()

    yield start
    for client in clients:
        client.stop()


def revision_of(base_url, key) -> int:
    status, headers, body = call("GET", f"{base_url}/api/v1/config/", key=key)
    assert status == 200, body
    return int(headers["X-Config-Revision"])


def set_instructions(base_url, key, assistant, instructions) -> int:
    url = f"{base_url}/api/v1/assistants/{assistant.id}/"
    status, _, body = call("PATCH", url, key=key, body={"instructions": instructions})
    assert status == 200, body
    return revision_of(base_url, key)


def label_call(base_url, key, name, method="PUT", path="", body=None) -> dict:
    status, _, answer = call(method, f"{base_url}/api/v1/labels/{name}/{path}", key=key, body=body)
    assert status in (200, 201), answer
    return json.loads(answer)


@pytest.fixture
def canary(live, keys):
    """The label `canary` at a base revision (instructions "base"), and the Secretary's next
    revision (instructions "candidate") to roll out; returns (base, candidate)."""
    read, write = keys
    secretary = Assistant.objects.create(
        name="Secretary", model="gpt-4o-mini", is_secretary=True, instructions="base"
    )
    base = revision_of(live, read)
    label_call(live, write, "canary", body={"revision": base})
    candidate = set_instructions(live, write, secretary, "candidate")
    return base, candidate


def wait_for(condition, timeout: float = 5.0) -> None:
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout, "condition not met in time"
        time.sleep(0.01)


def test_the_client_picks_each_users_variant_locally_with_no_request_per_user(
    live, keys, canary, started, tmp_path
):
    read, write = keys
    base, candidate = canary
    label = label_call(
        live,
        write,
        "canary",
        body={
            "revision": base,
            "rollout": {"revision": candidate, "percent": 30, "users": ["vip"]},
        },
    )
    client = started(live, read, label="canary", cache_path=tmp_path / "c.json", poll_interval=60)
    requests_before = server_output(live).count("path=/api/v1/")

    users = [f"user-{n}" for n in range(1000)] + ["vip"]
    for user in users:
        expected = variant("canary", label["rollout"], user)
        assert client.variant(user) == expected
        instructions = client.assistant("Secretary", user_id=user)["instructions"]
        assert instructions == ("candidate" if expected == CANDIDATE else "base")
    assert server_output(live).count("path=/api/v1/") == requests_before
    on_candidate = sum(client.variant(user) == CANDIDATE for user in users)
    assert 200 < on_candidate < 400  # about 30 %

    assert system_prompt(build_agents(client.bundle_for("vip"))["Secretary"]) == "candidate"
    assert system_prompt(build_agents(client.bundle_for(None))["Secretary"]) == "base"
    # What the server serves the same users agrees.
    for user in ["vip", "user-1", "user-2", "user-3"]:
        url = f"{live}/api/v1/config/?label=canary&user_id={user}"
        _, headers, _ = call("GET", url, key=read)
        assert headers["X-Config-Variant"] == client.variant(user)


def test_a_rollout_change_reaches_the_client_by_push_then_promote_and_abort_do(
    live, keys, canary, started
):
    read, write = keys
    base, candidate = canary
    client = started(live, read, label="canary", poll_interval=LONG_POLL)
    wait_for(lambda: client.listening)
    seen = []
    client.on_change(seen.append)
    assert client.variant("vip") == BASE and client.rollout is None

    rollout = {"revision": candidate, "percent": 0, "users": ["vip"]}
    label_call(live, write, "canary", body={"rollout": rollout})
    wait_for(lambda: client.variant("vip") == CANDIDATE)
    assert client.assistant("Secretary", user_id="vip")["instructions"] == "candidate"
    assert client.assistant("Secretary", user_id="other")["instructions"] == "base"

    label_call(live, write, "canary", "POST", "promote/", {"message": "all in"})
    wait_for(lambda: client.revision == candidate and client.rollout is None)
    assert client.assistant("Secretary", user_id="other")["instructions"] == "candidate"

    label_call(live, write, "canary", body={"revision": base, "rollout": rollout})
    wait_for(lambda: client.variant("vip") == CANDIDATE and client.revision == base)
    label_call(live, write, "canary", "POST", "abort/", {})
    wait_for(lambda: client.rollout is None)
    assert client.variant("vip") == BASE and client.revision == base
    assert len(seen) >= 4  # each change was a change of what is served
    assert client.errors == 0


def test_a_restart_from_the_file_with_the_server_down_serves_each_user_their_variant(
    live, keys, canary, started, tmp_path
):
    read, write = keys
    base, candidate = canary
    rollout = {"revision": candidate, "percent": 0, "users": ["vip"]}
    label_call(live, write, "canary", body={"revision": base, "rollout": rollout})
    cache = tmp_path / "config.json"
    first = started(live, read, label="canary", cache_path=cache, poll_interval=LONG_POLL)
    first.stop()
    saved = json.loads(cache.read_text())
    assert saved["rollout"]["users"] == ["vip"] and saved["candidate"]["revision"] == candidate

    down = f"http://127.0.0.1:{free_port()}"
    again = started(down, read, label="canary", cache_path=cache, listen=False, start_timeout=1)
    assert again.assistant("Secretary", user_id="vip")["instructions"] == "candidate"
    assert again.assistant("Secretary", user_id="other")["instructions"] == "base"
    assert again.errors == 1


def test_an_edited_rollout_in_the_file_is_not_served(live, keys, canary, started, tmp_path):
    read, write = keys
    base, candidate = canary
    rollout = {"revision": candidate, "percent": 0, "users": ["vip"]}
    label_call(live, write, "canary", body={"revision": base, "rollout": rollout})
    cache = tmp_path / "config.json"
    started(live, read, label="canary", cache_path=cache, poll_interval=LONG_POLL).stop()
    saved = json.loads(cache.read_text())
    saved["rollout"]["users"] = ["vip", "intruder"]
    cache.write_text(json.dumps(saved))

    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Exception, match="integrity check failed"):
        started(down, read, label="canary", cache_path=cache, listen=False, start_timeout=1)


def test_a_per_user_hit_through_the_live_server_never_reaches_django(live, keys, canary):
    read, write = keys
    base, candidate = canary
    rollout = {"revision": candidate, "percent": 0, "users": ["vip"]}
    label_call(live, write, "canary", body={"revision": base, "rollout": rollout})
    for user, expected in (("vip", CANDIDATE), ("other", BASE)):
        url = f"{live}/api/v1/config/?label=canary&user_id={user}"
        _, miss, _ = call("GET", url, key=read)
        _, hit, body = call("GET", url, key=read)
        assert miss["X-Config-Cache"] == "miss" and hit["X-Config-Cache"] == "hit"
        assert hit["X-Config-Variant"] == expected
        # DRF adds Allow: a hit answered in the event loop never reached DRF, nor Django.
        assert "Allow" in miss and "Allow" not in hit


def test_a_per_user_hit_through_the_asgi_fast_path_is_one_mget(live, keys, canary, monkeypatch):
    read, write = keys
    base, candidate = canary
    rollout = {"revision": candidate, "percent": 0, "users": ["vip"]}
    label_call(live, write, "canary", body={"revision": base, "rollout": rollout})
    # In process, as test_asgi_fast_path drives it: Django's part runs in its threads.
    monkeypatch.setitem(connections.settings[DEFAULT_DB_ALIAS], "CONN_MAX_AGE", 0)
    CountingDjango.handed = 0
    app = AsyncConfigFastPath(CountingDjango())
    fetched, get_many = [], app.get_many

    async def counting_get_many(names):
        fetched.append(names)
        return await get_many(names)

    app.get_many = counting_get_many
    auth = {"Authorization": f"Bearer {read}"}
    urls = [f"/api/v1/config/?label=canary&user_id={user}" for user in ("vip", "other")]
    answers = asgi_gets(app, *[(url, auth) for url in urls + urls])

    assert [headers["x-config-variant"] for _, headers, _ in answers] == [CANDIDATE, BASE] * 2
    assert [headers["x-config-cache"] for _, headers, _ in answers[2:]] == ["hit", "hit"]
    assert CountingDjango.handed == 2  # the two misses only
    assert len(fetched) == 4  # one MGET per request


def system_prompt(agent) -> str:
    """The instructions the agent sends the model (rendered from the run's variables: none)."""
    return asyncio.run(agent.get_system_prompt(RunContextWrapper(context={})))
