"""A burst that exhausts this process's connection pool to Redis (redis-py's
MaxConnectionsError) is overload, not an outage: the breaker stays closed, so reads are hits
again as soon as a connection is free; a read meanwhile is answered from the database, a config
write is refused with a 503 and changes nothing, and /readyz does not say the cache is degraded.
"""

import asyncio

import pytest
import redis
import redis.asyncio

from assistants.models import Assistant
from core import store
from core.asgi_app import AsyncConfigFastPath, DjangoASGIHandler
from core.store import RedisStore, breaker
from tests.factories import assistant_payload, key_client


@pytest.fixture
def one_connection_pool(settings):
    """A connection pool to the suite's Redis that holds one connection, which is in use."""
    pool = redis.ConnectionPool.from_url(
        settings.CACHES["default"]["LOCATION"],
        max_connections=1,
        socket_connect_timeout=0.25,
        socket_timeout=0.25,
    )
    held = pool.get_connection()
    yield pool, held
    pool.disconnect()


@pytest.mark.django_db
def test_reads_go_on_from_the_database_and_the_breaker_stays_closed(
    one_connection_pool, monkeypatch, secretary
):
    url = f"/api/v1/assistants/{secretary.id}/config/"
    client = key_client("read")
    assert client.get(url)["X-Config-Cache"] == "miss"  # stores the entry and the key record
    assert client.get(url)["X-Config-Cache"] == "hit"
    pool, held = one_connection_pool
    monkeypatch.setattr(store.base, "_store", RedisStore(client=redis.Redis(connection_pool=pool)))

    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200
        assert response.json()["name"] == "Secretary"
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ok", "database": "ok", "cache": "ok"},
    )
    assert not breaker.is_open()

    pool.release(held)  # the burst is over: the very next read is a hit
    assert client.get(url)["X-Config-Cache"] == "hit"


@pytest.mark.django_db
def test_a_config_write_is_refused_and_changes_nothing(one_connection_pool, monkeypatch):
    client = key_client("write")
    pool, _ = one_connection_pool
    monkeypatch.setattr(store.base, "_store", RedisStore(client=redis.Redis(connection_pool=pool)))

    response = client.post("/api/v1/assistants/", assistant_payload(), format="json")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert not Assistant.objects.exists()
    assert not breaker.is_open()


@pytest.mark.django_db
def test_the_asgi_fast_path_hands_the_read_to_django_and_the_breaker_stays_closed(
    settings, monkeypatch
):
    names = [store.revision_key("config")]
    store.store().set(names[0], b"7")
    app = AsyncConfigFastPath(DjangoASGIHandler())

    async def fetch(max_connections: int, in_use: int):
        """What the fast path's MGET returns, from a pool with `in_use` connections taken."""
        pool = redis.asyncio.ConnectionPool.from_url(
            settings.CACHES["default"]["LOCATION"], max_connections=max_connections
        )
        for _ in range(in_use):
            pool.get_available_connection()
        monkeypatch.setattr(
            "core.store.redis.async_client", lambda: redis.asyncio.Redis(connection_pool=pool)
        )
        try:
            return await app.get_many(names)
        finally:
            await pool.disconnect()

    assert asyncio.run(fetch(max_connections=1, in_use=1)) is None  # Django answers this one
    assert not breaker.is_open()
    assert asyncio.run(fetch(max_connections=1, in_use=0)) == [b"7"]  # the next is fetched
