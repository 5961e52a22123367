"""The revision design: no stale entry after commit, races included; writes need the cache."""

import threading

import pytest
from django.db import connection, transaction

from assistants.models import Assistant
from assistants.services import assistant_create, assistant_update
from core import store
from core.store import CacheUnavailable, revision_key
from tests.factories import live_get_or_build

pytestmark = pytest.mark.django_db(transaction=True)


def read(build=None):
    """A reader as the config views are: the revision first, then the data."""
    revision = store.committed_counter()
    build = build or build_names
    body, _ = live_get_or_build(assistant_id=None, revision=revision, build=lambda: build(revision))
    return body


def mirrored_revision() -> int:
    return int(store.store().get_many([revision_key("config")])[0])


def build_names(revision) -> bytes:
    names = ",".join(Assistant.objects.order_by("name").values_list("name", flat=True))
    return f"{revision}:{names}".encode()


def test_a_committed_change_raises_the_mirrored_revision():
    before = store.committed_counter()
    assistant_create(name="Planner", model="m")
    assert store.committed_counter() == before + 1
    assert mirrored_revision() == before + 1


def test_a_rolled_back_change_does_not_move_the_database_revision():
    before = store.committed_counter()
    with pytest.raises(RuntimeError), transaction.atomic():
        assistant_create(name="Planner", model="m")
        raise RuntimeError("rolled back")
    assert store.committed_counter() == before
    assert not Assistant.objects.exists()


def test_a_second_read_is_served_from_the_cache(django_assert_num_queries):
    assistant_create(name="Planner", model="m")
    first = read()
    revision = store.committed_counter()
    with django_assert_num_queries(0):
        assert live_get_or_build(assistant_id=None, revision=revision, build=None) == (first, True)


def test_a_commit_makes_the_next_read_fresh():
    planner = assistant_create(name="Planner", model="m")
    read()
    assistant_update(assistant=planner, name="Planner 2")
    body = read()
    assert body.endswith(b":Planner 2")


def test_the_read_invalidate_store_race_leaves_no_stale_entry():
    """Reader loads old rows; writer commits and invalidates; reader then stores old bytes."""
    planner = assistant_create(name="Planner", model="m")

    def writer():
        assistant_update(assistant=Assistant.objects.get(pk=planner.pk), name="Renamed")
        connection.close()

    def slow_reader_build(revision):
        old = build_names(revision)  # the old rows are loaded...
        thread = threading.Thread(target=writer)  # ...then a writer commits in between
        thread.start()
        thread.join()
        return old  # ...and the reader stores what it loaded

    served_to_slow_reader = read(build=slow_reader_build)
    assert served_to_slow_reader.endswith(b":Planner")  # it began before the commit

    next_read = read()
    assert next_read.endswith(b":Renamed")
    and_after = read()
    assert and_after == next_read


def test_a_mirror_lost_during_a_slow_read_is_not_seeded_from_that_read():
    """Reader reads revision R; a writer commits R+1; the mirror is lost (restart, eviction);
    the reader then stores its old entry. The mirror it seeds must be R+1, not R."""
    planner = assistant_create(name="Planner", model="m")
    read()  # the mirror exists

    def writer_then_mirror_lost():
        assistant_update(assistant=Assistant.objects.get(pk=planner.pk), name="Renamed")
        connection.close()
        store.store().delete(revision_key("config"))

    def slow_reader_build(revision):
        old = build_names(revision)
        thread = threading.Thread(target=writer_then_mirror_lost)
        thread.start()
        thread.join()
        return old

    store.store().delete(store.bundle_key())
    read(build=slow_reader_build)

    assert store.store().get_many([revision_key("config")]) == [None]  # not seeded with R
    assert read().endswith(b":Renamed")
    assert mirrored_revision() == store.committed_counter()  # seeded from the database


def test_an_emptied_cache_serves_fresh_data():
    planner = assistant_create(name="Planner", model="m")
    read()
    store.cache_clear()  # as after Redis restarted empty
    assistant_update(assistant=planner, name="After restart")
    body = read()
    assert body.endswith(b":After restart")


def test_a_change_is_refused_and_rolled_back_while_the_cache_is_unreachable(unreachable_redis):
    before = store.committed_counter()
    with pytest.raises(CacheUnavailable, match="nothing was changed"):
        assistant_create(name="Planner", model="m")
    assert not Assistant.objects.exists()
    assert store.committed_counter() == before


def test_reads_fall_back_to_the_database_while_the_cache_is_unreachable(unreachable_redis, caplog):
    with transaction.atomic():
        Assistant.objects.bulk_create([Assistant(name="Planner", model="m")])
    body = read()
    assert body.endswith(b":Planner")
    assert "Cache unreachable" in caplog.text
    assert store.breaker.is_open()
