"""A full Redis (maxmemory, `volatile-lru`) evicts configs read at old revisions, never a live
entry or a mirror: reading the whole history cannot turn live reads into misses. And a deleted
assistant's live entries, which never expire, go with it.

Transactional: each edit commits its own revision, as in production.
"""

import time

import pytest
from django.db import transaction

from assistants.models import Assistant
from core.reads.codings import CODINGS, IDENTITY
from core.reads.entries import live_entry_key, revision_entry_key
from core.store import committed_counter, revision_key
from tests.factories import key_client

pytestmark = pytest.mark.django_db(transaction=True)

REVISIONS = 30
# Each revision's instructions differ: 40 KB each, so each config at a revision is about 40 KB.
TEXT_BYTES = 40_000


def edit(assistant: Assistant, **fields) -> None:
    for name, value in fields.items():
        setattr(assistant, name, value)
    with transaction.atomic():
        assistant.save()


def live_keys(assistant_id) -> list[str]:
    return [live_entry_key(str(assistant_id), coding) for coding in (IDENTITY, *CODINGS)]


def test_cold_revision_entries_are_evicted_and_never_the_live_entry(own_redis_cache, secretary):
    redis = own_redis_cache
    first = committed_counter()
    for number in range(REVISIONS):
        edit(secretary, instructions=f"{number:03d} " * (TEXT_BYTES // 4))
    numbers = range(first, committed_counter() + 1)
    client = key_client("read")
    url = f"/api/v1/assistants/{secretary.id}/config/"
    assert client.get(url)["X-Config-Cache"] == "miss"
    live = client.get(url)
    assert live["X-Config-Cache"] == "hit"
    # Room for a few old configs, not for all: reading them all must evict.
    redis.config_set("maxmemory-policy", "volatile-lru")
    redis.config_set("maxmemory", redis.info("memory")["used_memory"] + 300_000)
    # Make the live entries the least recently used keys (Redis's LRU clock counts seconds),
    # so an eviction by recency alone would take them first.
    time.sleep(2)

    for number in numbers:
        response = client.get(f"{url}?revision={number}")
        assert response.status_code == 200 and response.json()["revision"] == number

    assert redis.info("stats")["evicted_keys"] > 0
    at_revision = [revision_entry_key(number, str(secretary.id)) for number in numbers]
    assert redis.exists(*at_revision) < len(at_revision)  # old configs were evicted
    assert redis.exists(*live_keys(secretary.id)) == 3  # every coding of the live entry stayed
    assert redis.exists(revision_key(f"assistant:{secretary.id}"), revision_key("config")) == 2
    again = client.get(url)
    assert again["X-Config-Cache"] == "hit"
    assert again.content == live.content


def test_a_deleted_assistants_live_entries_go_with_it(own_redis_cache, secretary):
    client = key_client("write")
    url = f"/api/v1/assistants/{secretary.id}/config/"
    client.get(url, HTTP_ACCEPT_ENCODING="gzip")
    assert own_redis_cache.exists(*live_keys(secretary.id)) == 3

    assert client.delete(f"/api/v1/assistants/{secretary.id}/").status_code == 204

    assert own_redis_cache.exists(*live_keys(secretary.id)) == 0
