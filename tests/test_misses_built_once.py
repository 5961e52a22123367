"""Concurrent misses of one config entry build it once; waiters never get older bytes
(docs/contract.md, "Cache semantics": misses are built once). Real Redis, real threads, real
database."""

import threading
import time

import pytest
import redis
from django.core.cache.backends.locmem import LocMemCache
from django.test import Client

from assistants import config_api
from assistants.models import Assistant
from assistants.services import assistant_update
from core import store
from core.models import APIKey
from core.reads.entries import counter_name, live_entry_key
from core.store import LocalStore
from tests.factories import concurrently, live_get_or_build

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def counted_builds(monkeypatch):
    """The revisions the assistant configs were built for; each build takes 0.3 s, so that
    concurrent requests overlap it."""
    builds = []
    original = config_api.assistant_config_build

    def slow_build(**kwargs):
        builds.append(kwargs["revision"])
        time.sleep(0.3)
        return original(**kwargs)

    monkeypatch.setattr(config_api, "assistant_config_build", slow_build)
    return builds


def timed_get(url: str, key: str):
    started = time.monotonic()
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").get(url)
    return response, time.monotonic() - started


def take_lock(current, lock: str, token: str, milliseconds: int) -> bool:
    """Take a build lock as get_or_build does (`lock_and_get`, the entry read beside it)."""
    return current.lock_and_get(lock, token, milliseconds, then_get=lock)[0]


def hold_lock(assistant_id: str, revision: int, milliseconds: int = 60_000) -> None:
    """Take the entry's build lock as a builder would that then died (never releasing it)."""
    lock = store.build_lock_key(live_entry_key(assistant_id), revision)
    assert take_lock(store.store(), lock, "a-dead-builder", milliseconds)


def test_twenty_concurrent_misses_after_an_edit_build_the_entry_once(secretary, counted_builds):
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
    url = f"/api/v1/assistants/{secretary.id}/config/"
    assert timed_get(url, key)[0].status_code == 200  # cached
    assistant_update(assistant=Assistant.objects.get(pk=secretary.pk), name="Renamed")
    revision = store.committed_counter(counter_name(str(secretary.id)))
    counted_builds.clear()

    answers = concurrently(20, lambda: timed_get(url, key)[0])

    assert all(answer.status_code == 200 for answer in answers), answers
    assert counted_builds == [revision]
    assert [answer["X-Config-Cache"] for answer in answers].count("miss") == 1
    assert {answer.content for answer in answers} == {answers[0].content}
    assert answers[0].json()["name"] == "Renamed" and answers[0].json()["revision"] == revision
    assert {answer["ETag"] for answer in answers} == {f'"{revision}-{secretary.id}"'}


def test_without_the_lock_the_same_misses_each_build(secretary, counted_builds, settings):
    """The control for the test above: what the lock prevents (CONFIG_BUILD_WAIT_MS=0)."""
    settings.CONFIG_BUILD_WAIT_MS = 0
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
    url = f"/api/v1/assistants/{secretary.id}/config/"

    answers = concurrently(5, lambda: timed_get(url, key)[0])

    assert all(answer.status_code == 200 for answer in answers), answers
    assert len(counted_builds) == 5


def test_a_builder_that_died_holding_the_lock_delays_the_others_by_the_bound_only(
    secretary, counted_builds, settings
):
    settings.CONFIG_BUILD_WAIT_MS = 400
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
    url = f"/api/v1/assistants/{secretary.id}/config/"
    revision = store.committed_counter(counter_name(str(secretary.id)))
    hold_lock(str(secretary.id), revision)

    answers = concurrently(4, lambda: timed_get(url, key))

    assert all(response.status_code == 200 for response, _ in answers), answers
    assert all(response.json()["name"] == "Secretary" for response, _ in answers)
    assert all(seconds >= 0.4 for _, seconds in answers)  # each waited the bound out
    assert counted_builds == [revision] * 4  # each built itself once the bound had passed


def stored(assistant_id: str, revision: int, body: bytes) -> None:
    store.store().set(live_entry_key(assistant_id), b"%d\n%s" % (revision, body))


def test_a_waiter_never_serves_an_entry_older_than_its_database_revision(secretary, settings):
    settings.CONFIG_BUILD_WAIT_MS = 300
    assistant_id = str(secretary.id)
    revision = store.committed_counter(counter_name(assistant_id))
    stored(assistant_id, revision - 1, b"stale")  # what the last edit left behind
    hold_lock(assistant_id, revision)
    builds = []

    def build():
        builds.append(revision)
        return b"fresh"

    body, from_cache = live_get_or_build(assistant_id=assistant_id, revision=revision, build=build)

    assert (body, from_cache) == (b"fresh", False)
    assert builds == [revision]


# A bound and a lock far longer than the holder's 0.2 s: a waiter that answers before the bound
# was woken by the holder, it did not wait it out.
LONG_WAIT_MS = 30_000


def test_a_waiter_is_served_the_bytes_the_lock_holder_stores(secretary, settings):
    settings.CONFIG_BUILD_WAIT_MS = LONG_WAIT_MS
    assistant_id = str(secretary.id)
    revision = store.committed_counter(counter_name(assistant_id))
    stored(assistant_id, revision - 1, b"stale")
    lock = store.build_lock_key(live_entry_key(assistant_id), revision)
    assert take_lock(store.store(), lock, "the-builder", LONG_WAIT_MS)

    def builder_finishes():
        time.sleep(0.2)
        entries = {live_entry_key(assistant_id): b"%d\nfresh" % revision}
        store.store().set_many(entries, 60, release=(lock, "the-builder"))

    thread = threading.Thread(target=builder_finishes)
    thread.start()
    started = time.monotonic()
    body, from_cache = live_get_or_build(assistant_id=assistant_id, revision=revision, build=None)
    thread.join()

    assert (body, from_cache) == (b"fresh", True)
    assert time.monotonic() - started < LONG_WAIT_MS / 1000
    assert store.store().get_many([lock]) == [None]  # released by its holder


def test_a_waiter_stops_waiting_when_the_holder_lets_go_without_storing(secretary, settings):
    """An inactive assistant's build stores nothing: its waiters answer (404) at once."""
    settings.CONFIG_BUILD_WAIT_MS = LONG_WAIT_MS
    assistant_id = str(secretary.id)
    revision = store.committed_counter(counter_name(assistant_id))
    lock = store.build_lock_key(live_entry_key(assistant_id), revision)
    assert take_lock(store.store(), lock, "the-builder", LONG_WAIT_MS)
    threading.Timer(0.2, lambda: store.store().unlock(lock, "the-builder")).start()

    started = time.monotonic()
    body, from_cache = live_get_or_build(
        assistant_id=assistant_id, revision=revision, build=lambda: None
    )

    assert (body, from_cache) == (None, False)
    assert time.monotonic() - started < LONG_WAIT_MS / 1000


def test_a_miss_whose_entry_was_built_after_its_first_read_does_not_build_again(secretary):
    """Its MGET saw the old entry; another request then built, stored and let go of the lock
    before this one asked for it: the lock comes with a fresh read of the entry."""
    assistant_id = str(secretary.id)
    revision = store.committed_counter(counter_name(assistant_id))
    first_read = (b"%d\nstale" % (revision - 1), str(revision).encode())
    stored(assistant_id, revision, b"built meanwhile")
    lock = store.build_lock_key(live_entry_key(assistant_id), revision)

    body, from_cache = live_get_or_build(
        assistant_id=assistant_id, revision=revision, build=None, cached=first_read
    )

    assert (body, from_cache) == (b"built meanwhile", True)
    assert store.store().get_many([lock]) == [None]  # taken, and let go


def test_the_builder_releases_its_lock_also_when_the_build_fails(secretary):
    assistant_id = str(secretary.id)
    revision = store.committed_counter(counter_name(assistant_id))
    lock = store.build_lock_key(live_entry_key(assistant_id), revision)

    def failing_build():
        assert store.store().get_many([lock]) != [None]  # held while building
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        live_get_or_build(assistant_id=assistant_id, revision=revision, build=failing_build)

    assert store.store().get_many([lock]) == [None]


def test_a_refused_lock_command_falls_back_to_building(secretary, monkeypatch, caplog):
    assistant_id = str(secretary.id)
    revision = store.committed_counter(counter_name(assistant_id))

    def refuse(*args, **kwargs):
        raise redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'")

    monkeypatch.setattr(store.store(), "lock_and_get", refuse)

    body, from_cache = live_get_or_build(
        assistant_id=assistant_id, revision=revision, build=lambda: b"x"
    )

    assert (body, from_cache) == (b"x", False)
    assert "Cache refused a command while locking a config build" in caplog.text
    assert not store.breaker.is_open()


def test_a_lock_is_released_only_by_its_holder():
    lock = store.build_lock_key(store.bundle_key(), 7)
    current = store.store()
    assert take_lock(current, lock, "first", 5000)
    assert not take_lock(current, lock, "second", 5000)
    current.unlock(lock, "second")  # a builder whose lock had expired and was taken again
    assert current.get_many([lock]) == [b"first"]
    current.unlock(lock, "first")
    assert take_lock(current, lock, "second", 5000)


def test_the_embedded_defaults_lock_is_held_by_one_thread_at_a_time():
    local = LocalStore()
    local.cache = LocMemCache("built-once", {})  # the embedded default's cache (tests use Redis)
    lock = store.build_lock_key(store.bundle_key(), 7)
    taken = concurrently(10, lambda: take_lock(local, lock, threading.current_thread().name, 5000))
    assert taken.count(True) == 1
    holder = local.get_many([lock])[0]
    local.unlock(lock, "somebody else")
    assert local.get_many([lock]) == [holder]
    local.unlock(lock, holder)
    assert local.get_many([lock]) == [None]
