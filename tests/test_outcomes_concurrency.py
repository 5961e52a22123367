"""Outcomes under real concurrency: posts from many threads and processes to two live server
processes, all adding to the same buckets, lose nothing; one Idempotency-Key sent to both
servers at once is applied exactly once."""

import json
import subprocess
import sys
import threading
from collections import Counter

import pytest
from django.utils import timezone

from assistants.models import Assistant
from core.models import APIKey
from outcomes.models import OutcomeBucket
from tests.factories import newest_revision
from tests.live import call, live_database_url, server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def two_servers(django_db_setup):
    env = {"DATABASE_URL": live_database_url()}
    with server(env=env, workers=2) as first, server(env=env, workers=2) as second:
        yield first, second


@pytest.fixture
def batch(db):
    """A POST body of two rows in the same two buckets (candidate and base of one hour)."""
    assistant = Assistant.objects.create(name="Secretary", model="m", instructions="Hi.")
    revision = newest_revision()
    hour = timezone.now().isoformat()

    def row(variant, **counts):
        return {
            "assistant": str(assistant.id),
            "revision": revision,
            "label": "production",
            "variant": variant,
            "period_start": hour,
            **counts,
        }

    return {
        "outcomes": [
            row("base", runs=3, errors=1, input_tokens=1000, latency_ms=250),
            row("candidate", runs=2, tool_calls=5, output_tokens=77, latency_ms=90),
        ]
    }


@pytest.fixture
def runtime_key():
    return APIKey.objects.create_key(name="runtime", scope="runtime")[1]


def sums() -> dict:
    return {
        bucket["variant"]: bucket
        for bucket in OutcomeBucket.objects.values(
            "variant", "runs", "errors", "tool_calls", "input_tokens", "output_tokens", "latency_ms"
        )
    }


def post_from_threads(urls, key, body, *, threads: int, posts: int, idempotency=None) -> Counter:
    """`threads` threads per URL released at once, each posting `posts` times; the statuses."""
    statuses: Counter = Counter()
    barrier = threading.Barrier(threads * len(urls))
    lock = threading.Lock()

    def worker(url, index):
        barrier.wait()
        for number in range(posts):
            headers = {"Idempotency-Key": idempotency(index, number)} if idempotency else {}
            status, _, answer = call(
                "POST", f"{url}/api/v1/outcomes/", key=key, body=body, headers=headers
            )
            with lock:
                statuses[status] += 1

    workers = [
        threading.Thread(target=worker, args=(url, index))
        for url in urls
        for index in range(threads)
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=120)
    return statuses


def test_concurrent_posts_to_two_servers_into_the_same_buckets_lose_nothing(
    two_servers, batch, runtime_key
):
    statuses = post_from_threads(two_servers, runtime_key, batch, threads=8, posts=10)
    assert statuses == {201: 160}
    buckets = sums()
    assert OutcomeBucket.objects.count() == 2
    assert (buckets["base"]["runs"], buckets["base"]["errors"]) == (480, 160)
    assert (buckets["base"]["input_tokens"], buckets["base"]["latency_ms"]) == (160_000, 40_000)
    assert (buckets["candidate"]["runs"], buckets["candidate"]["tool_calls"]) == (320, 800)
    assert buckets["candidate"]["output_tokens"] == 160 * 77


def test_one_idempotency_key_sent_to_both_servers_at_once_is_applied_once(
    two_servers, batch, runtime_key
):
    # Every thread of both servers sends the same 10 keys, in the same order, at the same time.
    statuses = post_from_threads(
        two_servers, runtime_key, batch, threads=6, posts=10, idempotency=lambda _, n: f"k{n}"
    )
    assert statuses == {201: 10, 200: 110}
    assert sums()["base"]["runs"] == 30 and sums()["candidate"]["runs"] == 20


POSTER = """
import json, sys, urllib.request, urllib.error
url, key, body, posts = sys.argv[1], sys.argv[2], sys.argv[3].encode(), int(sys.argv[4])
sent = 0
for number in range(posts):
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            sent += answer.status == 201
    except urllib.error.HTTPError as exc:
        pass
print(sent)
"""


def test_a_soak_of_posting_processes_ends_with_exactly_what_they_sent(
    two_servers, batch, runtime_key
):
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                POSTER,
                f"{url}/api/v1/outcomes/",
                runtime_key,
                json.dumps(batch),
                "40",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for url in two_servers
        for _ in range(3)
    ]
    applied = sum(int(process.communicate(timeout=300)[0]) for process in processes)
    assert applied == 6 * 40  # every post answered 201 ...
    buckets = sums()  # ... and every one of them counted
    assert buckets["base"]["runs"] == 3 * applied
    assert buckets["candidate"]["tool_calls"] == 5 * applied
    assert buckets["base"]["latency_ms"] == 250 * applied
