"""Concurrent registrations of the same pair, against a live gunicorn with several worker
processes, end in exactly one row and exactly one 201.

The contenders are threads that each open their connection first, then wait at a
`threading.Barrier`: all are released at once, so the requests really arrive together.
"""

import http.client
import json
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest

from assistants.models import Assistant
from core.models import APIKey
from tests.live import live_database_url, server
from threads.models import UserAssistantThread

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PAIRS = 5
CLIENTS = 8


def register_concurrently(url: str, key: str, bodies: list[dict]) -> list[tuple[int, dict]]:
    """POST each body from its own thread, all released together; (status, body) per request."""
    target = urllib.parse.urlsplit(url)
    start = threading.Barrier(len(bodies))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def contend(body: dict) -> tuple[int, dict]:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=20)
        try:
            connection.connect()  # connected before the barrier: only the request is left
            start.wait(timeout=30)
            connection.request("POST", target.path, body=json.dumps(body), headers=headers)
            response = connection.getresponse()
            raw = response.read()
            is_json = response.getheader("Content-Type", "").startswith("application/json")
            return response.status, json.loads(raw) if is_json else raw.decode()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(contend, bodies))


def test_concurrent_registrations_of_a_pair_make_one_row_and_one_201():
    assistant = Assistant.objects.create(name="Secretary", model="m", is_secretary=True)
    _, key = APIKey.objects.create_key(name="runtime", scope="runtime")

    with server(env={"DATABASE_URL": live_database_url()}, workers=4) as base_url:
        for pair in range(PAIRS):
            bodies = [
                {
                    "user_id": f"user{pair}",
                    "assistant": str(assistant.id),
                    "thread_id": f"thread_{pair}_{client}",
                }
                for client in range(CLIENTS)
            ]
            results = register_concurrently(base_url + "/api/v1/threads/", key, bodies)

            statuses = sorted(status for status, _ in results)
            assert statuses == [200] * (CLIENTS - 1) + [201], results
            winner = next(body for status, body in results if status == 201)
            assert {body["id"] for _, body in results} == {winner["id"]}
            assert {body["thread_id"] for _, body in results} == {winner["thread_id"]}
            rows = UserAssistantThread.objects.filter(user_id=f"user{pair}")
            assert [row.thread_id for row in rows] == [winner["thread_id"]]

    assert UserAssistantThread.objects.count() == PAIRS
