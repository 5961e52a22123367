"""The ASGI fast path (core.asgi_app, what `make serve` serves): a hit is answered in the event
loop with one MGET and never reaches Django; a miss reaches Django carrying that MGET's values
(not fetched again); Redis refusing or hanging costs no error: Django answers from the database
within 2 s. Driven in process, as an ASGI server drives it (Django's part runs in its threads,
hence committed rows: transaction=True)."""

import json
import socket
import time

import pytest
import redis.asyncio
from django.db import DEFAULT_DB_ALIAS, connections

from core.asgi_app import AsyncConfigFastPath, DjangoASGIHandler
from core.models import APIKey
from core.store import breaker
from tests.factories import asgi_gets, assistant_with_tools
from tests.throwaway_servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)


class CountingDjango(DjangoASGIHandler):
    """Django's handler, counting the requests it is handed."""

    handed = 0

    async def __call__(self, scope, receive, send):
        type(self).handed += 1
        await super().__call__(scope, receive, send)


@pytest.fixture
def app(monkeypatch):
    # As config_backend.asgi: a request's thread closes its database connection when it ends.
    monkeypatch.setitem(connections.settings[DEFAULT_DB_ALIAS], "CONN_MAX_AGE", 0)
    CountingDjango.handed = 0
    application = AsyncConfigFastPath(CountingDjango())
    fetched = []
    get_many = application.get_many

    async def counting_get_many(names):
        fetched.append(names)
        return await get_many(names)

    application.get_many = counting_get_many
    application.fetched = fetched
    return application


@pytest.fixture
def read_key():
    return APIKey.objects.create_key(name="runtime", scope="read")[1]


def test_a_hit_is_answered_without_reaching_django(app, read_key):
    url = f"/api/v1/assistants/{assistant_with_tools(3).id}/config/"
    auth = {"Authorization": f"Bearer {read_key}"}
    (miss_status, miss, miss_body), (status, hit, body) = asgi_gets(app, (url, auth), (url, auth))

    assert miss_status == status == 200 and body == miss_body
    assert miss["x-config-cache"] == "miss" and hit["x-config-cache"] == "hit"
    # DRF adds Allow: the hit never reached DRF, nor Django (the miss did, once).
    assert "allow" in miss and "allow" not in hit
    assert CountingDjango.handed == 1
    assert len(app.fetched) == 2  # one MGET per request
    for name in ["content-type", "etag", "x-config-revision", "x-frame-options"]:
        assert hit[name] == miss[name], name
    assert hit["content-length"] == str(len(body))
    assert hit["x-request-id"]


def test_a_miss_reaches_django_with_what_was_fetched(app, read_key, monkeypatch):
    url = "/api/v1/config/"
    assistant_with_tools(2)
    sync_commands = []
    from core import store

    client = store.store().client
    original = client.execute_command

    def counting(*args, **options):
        sync_commands.append(args[0])
        return original(*args, **options)

    monkeypatch.setattr(client, "execute_command", counting)
    auth = {"Authorization": f"Bearer {read_key}", "X-Request-ID": "lb-1"}
    [(status, headers, body)] = asgi_gets(app, (url, auth))

    assert status == 200 and headers["x-config-cache"] == "miss"
    assert "allow" in headers and CountingDjango.handed == 1
    assert headers["x-request-id"] == "lb-1"
    assert len(app.fetched) == 1
    # Django used the fast path's MGET (key check and entry): it read nothing more.
    assert "MGET" not in sync_commands and "GET" not in sync_commands, sync_commands
    assert json.loads(body)["assistants"]


def test_other_requests_go_to_django_untouched(app, read_key):
    auth = {"Authorization": f"Bearer {read_key}"}
    answers = asgi_gets(
        app,
        ("/healthz", {}),
        ("/api/v1/assistants/", auth),
        ("/api/v1/config/", {}),  # no key: DRF answers 401
        ("/api/v1/config/?page=2", auth),
    )
    assert [status for status, _, _ in answers] == [200, 200, 401, 200]
    assert CountingDjango.handed == 4
    assert len(app.fetched) == 0


@pytest.fixture
def hung_redis():
    """A port that accepts connections (the listen backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


@pytest.mark.parametrize("redis_is", ["refusing", "hung"])
def test_with_redis_unreachable_a_read_comes_from_the_database_within_2s(
    app, read_key, hung_redis, monkeypatch, request, redis_is
):
    assistant = assistant_with_tools(2)  # written while Redis is there
    request.getfixturevalue("unreachable_redis")  # Django's client, then the fast path's
    dead = f"redis://127.0.0.1:{free_port()}/0" if redis_is == "refusing" else hung_redis
    monkeypatch.setattr(
        "core.store.redis.async_client",
        lambda: redis.asyncio.Redis(
            connection_pool=redis.asyncio.ConnectionPool.from_url(
                dead, socket_connect_timeout=0.25, socket_timeout=0.25
            )
        ),
    )
    url = f"/api/v1/assistants/{assistant.id}/config/"
    auth = {"Authorization": f"Bearer {read_key}"}

    started = time.monotonic()
    [(status, headers, body)] = asgi_gets(app, (url, auth))
    elapsed = time.monotonic() - started

    assert status == 200 and elapsed < 2.0, elapsed
    assert json.loads(body)["name"] == assistant.name
    assert breaker.is_open()  # tripped by the fast path: Django did not try Redis again
    assert CountingDjango.handed == 1
    # While the breaker is open, the fast path does not even try.
    asgi_gets(app, (url, auth))
    assert len(app.fetched) == 1
