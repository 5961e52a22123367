"""One store interface (core.store.base.Store): Redis and the embedded default's local memory
both implement all of it, and the async reads (the ASGI fast path's) answer what the sync
reads answer. Real Redis (the run's), Django's local-memory cache."""

import asyncio

import pytest
from django.core.cache.backends.locmem import LocMemCache

from core import store
from core.store import LocalStore, RedisStore, Store


def local_store() -> LocalStore:
    local = LocalStore()
    local.cache = LocMemCache("store-interface", {})  # the embedded default's (tests use Redis)
    return local


@pytest.fixture(params=["redis", "memory"])
def each_store(request) -> Store:
    return RedisStore() if request.param == "redis" else local_store()


def test_both_stores_implement_the_whole_interface(each_store):
    assert isinstance(each_store, Store)  # instantiated: no abstract method left out


def test_the_process_store_under_redis_settings_is_the_redis_one():
    assert isinstance(store.store(), RedisStore)


def test_an_async_read_answers_what_the_sync_read_answers(each_store):
    entry, mirror, missing = (store.cache_key("test", name) for name in ("entry", "m", "none"))
    each_store.set(entry, b"7\n{}", 60)
    each_store.raise_to(mirror, 7)
    keys = [entry, mirror, missing]

    async def read():
        return await each_store.aget_many(keys), await each_store.aget(entry)

    many, one = asyncio.run(read())

    assert many == each_store.get_many(keys) == [b"7\n{}", b"7", None]
    assert one == each_store.get(entry) == b"7\n{}"
