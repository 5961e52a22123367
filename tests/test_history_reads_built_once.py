"""`?revision=N` and `?label=NAME` reads have the live read's guarantees (issue 20): concurrent
cold misses build once, the entry is stored in every content coding, and a 404 (the assistant
was not active there) is kept too. Real Redis, real threads, real database."""

import gzip
import time

import pytest
import zstandard

from config_backend.history import selectors
from config_backend.history.labels import label_move
from core.store import committed_counter
from tests.factories import concurrently, key_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def states_read(monkeypatch):
    """The revisions whose state was read from the history; each read takes 0.3 s, so that
    concurrent requests overlap it."""
    reads = []
    original = selectors.state_at

    def slow_state_at(revision):
        reads.append(revision)
        time.sleep(0.3)
        return original(revision)

    monkeypatch.setattr(selectors, "state_at", slow_state_at)
    return reads


def edited_after(assistant) -> int:
    """The revision before an edit of `assistant` (so the live config differs from it)."""
    at = committed_counter()
    assistant.instructions = "Changed since."
    assistant.save()
    return at


@pytest.mark.parametrize("query", ["revision", "label"])
def test_concurrent_cold_reads_at_a_point_in_the_history_build_it_once(
    secretary, states_read, query
):
    """Eight readers: a label read's waiter holds the database connection it read the label's
    move counter on, and the pool has ten."""
    at = edited_after(secretary)
    label_move(name="staging", revision=at, author="test")
    reader = key_client("read")
    url = (
        f"/api/v1/assistants/{secretary.id}/config/?{query}={'staging' if query == 'label' else at}"
    )

    assert reader.get(f"/api/v1/assistants/{secretary.id}/config/").status_code == 200  # key
    answers = concurrently(8, lambda: reader.get(url))

    assert all(answer.status_code == 200 for answer in answers), answers
    assert {answer.json()["instructions"] for answer in answers} == {"Help the user."}
    assert states_read == [at]  # one build; the other seven waited for it


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
@pytest.mark.parametrize("query", ["revision", "label"])
def test_a_read_at_a_point_in_the_history_is_a_hit_in_every_coding(secretary, coding, query):
    at = edited_after(secretary)
    label_move(name="staging", revision=at, author="test")
    reader = key_client("read")
    url = (
        f"/api/v1/assistants/{secretary.id}/config/?{query}={'staging' if query == 'label' else at}"
    )
    plain = reader.get(url)

    first = reader.get(url, HTTP_ACCEPT_ENCODING=coding)
    again = reader.get(url, HTTP_ACCEPT_ENCODING=coding)

    decode = gzip.decompress if coding == "gzip" else zstandard.ZstdDecompressor().decompress
    for response in (first, again):
        assert response["Content-Encoding"] == coding
        assert decode(response.content) == plain.content
        assert response["ETag"] == plain["ETag"][:-1] + f'-{coding}"'
        assert "Accept-Encoding" in response["Vary"]
    assert again["X-Config-Cache"] == "hit"


def test_a_read_at_a_revision_where_the_assistant_was_inactive_is_a_404_kept_for_good(
    secretary, django_assert_num_queries, redis_commands
):
    secretary.is_active = False
    secretary.save()
    at = committed_counter()
    secretary.is_active = True
    secretary.save()
    reader = key_client("read")
    url = f"/api/v1/assistants/{secretary.id}/config/?revision={at}"
    assert reader.get(url).status_code == 404  # built: the assistant was not active at `at`
    redis_commands.clear()

    with django_assert_num_queries(0):
        again = reader.get(url)

    assert again.status_code == 404
    assert again.json() == {"detail": f"No active assistant with this id at revision {at}."}
    assert redis_commands == ["MGET"]


def test_a_label_read_where_the_assistant_was_inactive_is_a_404_kept_until_the_label_moves(
    secretary, django_assert_num_queries, states_read
):
    secretary.is_active = False
    secretary.save()
    label_move(name="staging", revision=committed_counter(), author="test")
    secretary.is_active = True
    secretary.save()
    reader = key_client("read")
    url = f"/api/v1/assistants/{secretary.id}/config/?label=staging"
    assert reader.get(url).status_code == 404
    built = list(states_read)

    with django_assert_num_queries(1):  # the label's move counter, read first
        assert reader.get(url).status_code == 404
    assert states_read == built

    label_move(name="staging", revision="live", author="test")
    assert reader.get(url).status_code == 200
