"""Each worker of the production server works on a bounded number of requests in Django at once
(settings.MAX_DJANGO_REQUESTS_PER_WORKER, core.asgi_app.DjangoASGIHandler): the others wait in
the event loop and, after DJANGO_QUEUE_WAIT_MS, are answered 503 with Retry-After; health
probes never wait. Driven in process, as an ASGI server drives it."""

import asyncio
import json

import pytest
from django.db import connection

from core.asgi_app import DjangoASGIHandler
from core.models import APIKey
from tests.factories import asgi_get

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_request_that_waits_too_long_for_django_is_a_503_and_probes_never_wait(settings):
    settings.MAX_DJANGO_REQUESTS_PER_WORKER = 1
    settings.DJANGO_QUEUE_WAIT_MS = 50
    app = DjangoASGIHandler()

    async def scenario():
        release = await app.admit()  # a request in Django holds the one admission
        busy = await asgi_get(app, "/api/v1/assistants/")
        probe = await asgi_get(app, "/healthz")
        release()
        admitted = await asgi_get(app, "/api/v1/assistants/")
        return busy, probe, admitted

    (status, headers, body), probe, admitted = asyncio.run(scenario())

    assert status == 503 and headers["retry-after"] == "5"
    assert json.loads(body) == {"detail": "The server is busy. Retry in a few seconds."}
    assert headers["x-request-id"]
    assert probe[0] == 200
    assert admitted[0] == 401  # DRF's answer: no credentials


def test_a_response_is_sent_after_its_database_connection_went_back_to_the_pool():
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
    pool = connection.pool  # the process's pool, which the request's thread borrows from

    def in_use() -> int:
        stats = pool.get_stats()
        return stats["pool_size"] - stats["pool_available"]

    before = in_use()
    while_sending = []

    def on_send(message):
        if message["type"] == "http.response.start":
            while_sending.append(in_use())

    authorization = {"Authorization": f"Bearer {key}"}
    status, _, _ = asyncio.run(
        asgi_get(DjangoASGIHandler(), "/api/v1/assistants/", authorization, on_send)
    )

    assert status == 200
    # The key check and the list read the database; a slow reader would hold nothing.
    assert while_sending == [before]
