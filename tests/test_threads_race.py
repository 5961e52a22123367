"""Concurrent registrations of the same pair, from several processes against a live gunicorn
with several workers, end in exactly one row and exactly one 201."""

import json
import subprocess
import sys
import time

import pytest

from assistants.models import Assistant
from core.models import APIKey
from tests.live import live_database_url, server
from threads.models import UserAssistantThread

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PAIRS = 5
CLIENTS = 8

# One client process: wait for the common start time, POST once, print status and body.
CLIENT = """
import json, sys, time, urllib.error, urllib.request
url, key, body, start_at = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
    "Authorization": "Bearer " + key, "Content-Type": "application/json"})
time.sleep(max(0.0, start_at - time.time()))
try:
    with urllib.request.urlopen(request, timeout=20) as response:
        print(json.dumps([response.status, json.loads(response.read())]))
except urllib.error.HTTPError as exc:
    print(json.dumps([exc.code, exc.read().decode()]))
"""


def register_concurrently(url: str, key: str, bodies: list[dict]) -> list[tuple[int, dict]]:
    start_at = time.time() + 1.0  # every process is started and waiting by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, url, key, json.dumps(body), str(start_at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for body in bodies
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        results.append(tuple(json.loads(out)))
    return results


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
