"""What a cache hit no longer redoes on every request (bench/RESULTS.md "Servers: a logged hit"):
each speed-up is shown by the fast path serving the hit while the work it saves is counted.
The rules stay exact: a key change, a wrong secret, another host are decided as before."""

import asyncio

import pytest
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from core.asgi_app import AsyncConfigFastPath, DjangoASGIHandler
from core.models import APIKey
from core.reads import fast_path
from core.reads.points import PLAIN
from tests.factories import asgi_gets, assistant_with_tools, key_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def hashes(monkeypatch):
    """The keys the API-key hash was computed for, in order (the library's verifier, counted)."""
    generator = APIKey.objects.key_generator
    verify = generator.verify
    computed = []

    def counting_verify(key, hashed_key):
        computed.append(key)
        return verify(key, hashed_key)

    monkeypatch.setattr(generator, "verify", counting_verify)
    return computed


def config_url(assistant) -> str:
    return f"/api/v1/assistants/{assistant.id}/config/"


def test_a_key_is_hashed_once_and_later_hits_with_it_compute_no_hash(secretary, hashes):
    client = key_client("read")
    assert client.get(config_url(secretary))["X-Config-Cache"] == "miss"
    assert client.get(config_url(secretary))["X-Config-Cache"] == "hit"
    hashes.clear()

    for _ in range(3):
        response = client.get(config_url(secretary))
        assert response.status_code == 200 and response["X-Config-Cache"] == "hit"
    assert len(hashes) == 0

    # A wrong secret for the same prefix is hashed, and refused, every time.
    wrong = client.raw_key[:-1] + ("x" if client.raw_key[-1] != "x" else "y")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {wrong}")
    for _ in range(2):
        assert client.get(config_url(secretary)).status_code == 401
    assert hashes.count(wrong) >= 2


def test_a_key_revoked_after_hits_that_computed_no_hash_is_refused_at_once(secretary, hashes):
    client = key_client("read")
    for _ in range(3):
        client.get(config_url(secretary))
    hashes.clear()
    assert client.get(config_url(secretary))["X-Config-Cache"] == "hit" and len(hashes) == 0

    with transaction.atomic():
        key = APIKey.objects.get()
        key.revoked = True
        key.save()

    assert client.get(config_url(secretary)).status_code == 401


def test_a_second_hit_of_the_same_read_makes_no_new_plan(secretary, monkeypatch):
    from core.reads import fetch

    made = []
    read_for = fetch.read_for
    monkeypatch.setattr(fetch, "read_for", lambda *args: made.append(args) or read_for(*args))
    client = key_client("read")
    client.get(config_url(secretary))  # the miss (the plan and the key's record are made)
    assert client.get(config_url(secretary))["X-Config-Cache"] == "hit"
    made.clear()

    for _ in range(3):
        assert client.get(config_url(secretary))["X-Config-Cache"] == "hit"
        gzipped = client.get(config_url(secretary), HTTP_ACCEPT_ENCODING="gzip")
        assert gzipped["X-Config-Cache"] == "hit" and gzipped["Content-Encoding"] == "gzip"
    assert made == [(str(secretary.id), PLAIN)]  # once more: the gzip read's plan


@pytest.fixture
def asgi_app(monkeypatch):
    """What `make serve` serves, driven in process (tests/factories.py asgi_gets)."""
    monkeypatch.setitem(connections.settings[DEFAULT_DB_ALIAS], "CONN_MAX_AGE", 0)
    return AsyncConfigFastPath(DjangoASGIHandler())


async def raw_response_start(app, path: str, key: str, host: bytes = b"localhost") -> dict:
    """The `http.response.start` message of a GET of `path`, as the server gets it."""
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "query_string": b"",
        "headers": [(b"host", host), (b"authorization", f"Bearer {key}".encode())],
    }
    body_sent = asyncio.Event()
    starts = []

    async def receive():
        if not body_sent.is_set():
            body_sent.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        if message["type"] == "http.response.start":
            starts.append(message)

    await app(scope, receive, send)
    (start,) = starts
    return start


def raw_response_starts(
    app, path: str, key: str, times: int, host: bytes = b"localhost"
) -> list[dict]:
    """The `http.response.start` messages of `times` GETs of `path`, in one event loop."""

    async def all_of_them():
        return [await raw_response_start(app, path, key, host) for _ in range(times)]

    return asyncio.run(all_of_them())


@pytest.mark.django_db(transaction=True)
def test_hits_validate_their_host_once_and_another_host_is_still_refused(asgi_app, monkeypatch):
    validated = []
    validate_host = fast_path.validate_host
    monkeypatch.setattr(
        fast_path, "validate_host", lambda *args: validated.append(args[0]) or validate_host(*args)
    )
    url = f"/api/v1/assistants/{assistant_with_tools(2).id}/config/"
    key = APIKey.objects.create_key(name="runtime", scope="read")[1]
    auth = {"Authorization": f"Bearer {key}"}
    answers = asgi_gets(asgi_app, *[(url, auth)] * 4)

    assert [headers["x-config-cache"] for _, headers, _ in answers] == ["miss", *["hit"] * 3]
    assert validated == ["localhost"]
    (refused,) = raw_response_starts(asgi_app, url, key, 1, host=b"evil.example")
    assert refused["status"] == 400  # Django's answer to a host it refuses, as before
    assert validated == ["localhost", "evil.example"]


@pytest.mark.django_db(transaction=True)
def test_hits_of_one_entry_send_the_same_encoded_header_block(asgi_app):
    url = f"/api/v1/assistants/{assistant_with_tools(2).id}/config/"
    key = APIKey.objects.create_key(name="runtime", scope="read")[1]
    miss, *hits = raw_response_starts(asgi_app, url, key, 4)

    assert (b"x-config-cache", b"hit") in [(n.lower(), v) for n, v in hits[0]["headers"]]
    first, *others = [start["headers"] for start in hits]
    for headers in others:
        # The entry's and the security headers: the very bytes of the first hit, not encoded
        # again; its length and request id: its own.
        assert all(mine is theirs for mine, theirs in zip(headers[:-2], first[:-2], strict=True))
        assert headers[-1][0].lower() == b"x-request-id" and headers[-1] != first[-1]
    assert len({id(value) for _, value in first[:-2]}) == len(first) - 2


@pytest.fixture
def metric_writes(settings, monkeypatch):
    """The amounts written to the metrics' stored values, in order (each write counted)."""
    from core.ops import metrics

    settings.METRICS_ENABLED, settings.METRICS_TOKEN = True, ""
    metrics.flush()
    value_class = type(metrics.CACHE_HITS._value)
    inc = value_class.inc
    writes = []
    monkeypatch.setattr(
        value_class, "inc", lambda value, amount: writes.append(amount) or inc(value, amount)
    )
    return writes


def requests_counted(name: str, **labels) -> float:
    from django.test import Client

    from tests.test_metrics import samples, value

    return value(samples(Client().get("/metrics").content.decode()), name, **labels)


def test_hits_write_their_counts_once_per_batch_and_a_scrape_shows_every_one(
    secretary, metric_writes, monkeypatch
):
    from core.ops import metrics

    monkeypatch.setattr(metrics, "BATCH_REQUESTS", 4)
    monkeypatch.setattr(metrics, "_start_flusher", lambda: None)  # batches by count alone here
    client = key_client("read")
    client.get(config_url(secretary))  # the miss
    before = requests_counted("config_cache_hits_total")
    metrics.flush()  # the scrape's own count
    metric_writes.clear()

    for _ in range(8):
        assert client.get(config_url(secretary))["X-Config-Cache"] == "hit"
    # Two batches of 4 hits: each writes the request count, the durations' sum, the count of
    # each bucket they fell in and the hit count once; a write per update per hit would be 32.
    assert 0 < len(metric_writes) <= 2 * 7 and metric_writes.count(4) >= 4
    written = len(metric_writes)
    for _ in range(3):
        assert client.get(config_url(secretary))["X-Config-Cache"] == "hit"
    assert len(metric_writes) == written  # held in the batch...

    assert requests_counted("config_cache_hits_total") == before + 11  # ...until a scrape
    assert requests_counted(
        "config_request_duration_seconds_count", endpoint="assistant-config"
    ) == requests_counted("config_requests_total", endpoint="assistant-config", status="200")


def test_a_process_that_stops_answering_still_writes_its_last_batch(
    secretary, metric_writes, monkeypatch
):
    import time

    from core.ops import metrics

    monkeypatch.setattr(metrics, "BATCH_SECONDS", 0.01)
    client = key_client("read")
    client.get(config_url(secretary))
    metric_writes.clear()
    assert client.get(config_url(secretary))["X-Config-Cache"] == "hit"

    for _ in range(200):  # the process's flushing thread writes it, with no request nor scrape
        if metric_writes:
            break
        time.sleep(0.01)
    assert 1 in metric_writes


def test_hits_of_one_entry_build_its_header_list_once(secretary, monkeypatch):
    from core.reads.reads import Read

    built = []
    headers = Read.headers
    monkeypatch.setattr(
        Read, "headers", lambda read, *args: built.append(args) or headers(read, *args)
    )
    client = key_client("read")
    client.get(config_url(secretary))  # the miss
    assert client.get(config_url(secretary))["X-Config-Cache"] == "hit"
    built.clear()

    answers = [client.get(config_url(secretary)) for _ in range(3)]
    assert {(a.status_code, a["X-Config-Cache"], a["ETag"]) for a in answers} == {
        (200, "hit", f'"{answers[0]["X-Config-Revision"]}-{secretary.id}"')
    }
    assert built == []
    # Another answer of the entry (a 304) is built, once.
    etag = answers[0]["ETag"]
    for _ in range(3):
        not_modified = client.get(config_url(secretary), HTTP_IF_NONE_MATCH=etag)
        assert not_modified.status_code == 304 and not_modified["ETag"] == etag
    assert len(built) == 1


def test_later_hits_with_a_key_parse_no_authorization_header_and_settings_still_apply(
    secretary, monkeypatch, settings
):
    from core.reads import fetch

    parsed = []
    bearer_key = fetch.bearer_key
    monkeypatch.setattr(fetch, "bearer_key", lambda header: parsed.append(1) or bearer_key(header))
    client = key_client("read")
    client.get(config_url(secretary))  # the miss
    assert client.get(config_url(secretary))["X-Config-Cache"] == "hit"
    parsed.clear()

    for _ in range(3):
        assert client.get(config_url(secretary))["X-Config-Cache"] == "hit"
    assert parsed == []
    # A malformed header is still refused, every time.
    client.credentials(HTTP_AUTHORIZATION="Bearer not a key")
    assert [client.get(config_url(secretary)).status_code for _ in range(2)] == [401, 401]
    # The setting, read once, is read again when it changes: the cache is no longer asked.
    settings.CONFIG_CACHE_ENTRIES = False
    client = key_client("read")
    assert client.get(config_url(secretary))["X-Config-Cache"] == "miss"
    assert client.get(config_url(secretary))["X-Config-Cache"] == "miss"


@pytest.mark.django_db(transaction=True)
def test_a_hits_mget_waits_for_redis_without_a_task_of_its_own(asgi_app):
    url = f"/api/v1/assistants/{assistant_with_tools(2).id}/config/"
    key = APIKey.objects.create_key(name="runtime", scope="read")[1]
    tasks = []

    async def miss_then_hits():
        await raw_response_start(asgi_app, url, key)  # the miss
        # The loop's Redis connections are opened in the background at its first read.
        tasks_now = asyncio.all_tasks()
        await asyncio.gather(
            *[task for task in tasks_now if task.get_coro().__name__ == "_open_connections"]
        )
        loop = asyncio.get_running_loop()
        loop.set_task_factory(
            lambda loop, coro, **kwargs: (
                tasks.append(coro) or asyncio.Task(coro, loop=loop, **kwargs)
            )
        )
        hits = [await raw_response_start(asgi_app, url, key) for _ in range(3)]
        loop.set_task_factory(None)
        return hits

    hits = asyncio.run(miss_then_hits())

    assert [(start["status"], dict(start["headers"])[b"X-Config-Cache"]) for start in hits] == [
        (200, b"hit")
    ] * 3
    # redis-py writes a command under asyncio.wait_for, which made a Task for each hit.
    assert [coro.__qualname__ for coro in tasks] == []
    # (A Redis that hangs still costs a hit its deadline only: tests/test_asgi_fast_path.py.)


@pytest.mark.django_db(transaction=True)
def test_later_hits_of_a_read_send_its_mget_packed_once(asgi_app, monkeypatch):
    import redis.asyncio.connection

    packed = []
    connection_class = redis.asyncio.connection.AbstractConnection
    pack_command = connection_class.pack_command
    monkeypatch.setattr(
        connection_class,
        "pack_command",
        lambda connection, *args: packed.append(args) or pack_command(connection, *args),
    )
    first, second = assistant_with_tools(2), assistant_with_tools(1, name="Other")
    key = APIKey.objects.create_key(name="runtime", scope="read")[1]
    reads = [f"/api/v1/assistants/{each.id}/config/" for each in (first, second, first, second)]

    async def misses_then_hits():
        return [await raw_response_start(asgi_app, url, key) for url in reads * 2]

    starts = asyncio.run(misses_then_hits())

    caches = [dict(start["headers"])[b"X-Config-Cache"] for start in starts]
    assert caches == [b"miss", b"miss", *[b"hit"] * 6]
    mgets = [args for args in packed if args[0] == "MGET"]
    # Each read's MGET packed once (at its miss), whatever it answered; two reads, two MGETs.
    assert len(mgets) == 2 and str(first.id) in str(mgets[0]) and str(second.id) in str(mgets[1])
