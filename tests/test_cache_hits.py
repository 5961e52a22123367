"""A cache hit costs zero SQL (key check included) and one Redis round trip, however big."""

from wsgiref.util import setup_testing_defaults

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import Client

from core import store
from core.models import APIKey
from core.reads.fast_path import ConfigFastPath
from tests.factories import assistant_with_tools, key_client

pytestmark = pytest.mark.django_db


# A miss after the MGET: the build lock taken (SET NX) and the entry read again in one
# pipeline, then the entry in its three codings stored and the lock released in another.
MISS_STORE = ["PIPELINE(SET,GET)", "PIPELINE(SET,SET,SET,EVAL)"]


@pytest.mark.parametrize("tools", [1, 10, 100])
def test_a_config_hit_costs_no_query_and_one_round_trip(
    tools, django_assert_num_queries, redis_commands
):
    client = key_client("read")
    url = f"/api/v1/assistants/{assistant_with_tools(tools).id}/config/"
    miss = client.get(url)
    redis_commands.clear()

    with django_assert_num_queries(0):
        hit = client.get(url)

    assert redis_commands == ["MGET"]
    assert hit.status_code == 200
    assert hit.content == miss.content
    assert hit["ETag"] == miss["ETag"] and hit["X-Config-Revision"] == miss["X-Config-Revision"]


def test_a_bundle_hit_costs_no_query_and_one_round_trip(django_assert_num_queries, redis_commands):
    client = key_client("read")
    for i in range(5):
        assistant_with_tools(20, name=f"a{i}")
    miss = client.get("/api/v1/config/")
    redis_commands.clear()

    with django_assert_num_queries(0):
        hit = client.get("/api/v1/config/")

    assert redis_commands == ["MGET"]
    assert hit.content == miss.content


def test_a_304_from_the_cache_costs_no_query(django_assert_num_queries, redis_commands):
    client = key_client("read")
    url = f"/api/v1/assistants/{assistant_with_tools(3).id}/config/"
    etag = client.get(url)["ETag"]
    redis_commands.clear()

    with django_assert_num_queries(0):
        response = client.get(url, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304 and response.content == b""
    assert redis_commands == ["MGET"]


def test_a_revoked_key_stops_working_at_once(secretary):
    client = key_client("read")
    url = f"/api/v1/assistants/{secretary.id}/config/"
    assert client.get(url).status_code == 200
    assert client.get(url).status_code == 200  # now a hit

    with transaction.atomic():
        key = APIKey.objects.get()
        key.revoked = True
        key.save()

    assert client.get(url).status_code == 401


def test_a_wrong_key_with_a_known_prefix_is_not_a_hit(secretary):
    client = key_client("read")
    url = f"/api/v1/assistants/{secretary.id}/config/"
    client.get(url)
    prefix = client.raw_key.partition(".")[0]
    forged = Client(HTTP_AUTHORIZATION=f"Bearer {prefix}.{'x' * 32}")
    assert forged.get(url).status_code == 401


def test_a_staff_session_is_served_too(admin_client, secretary):
    response = admin_client.get(f"/api/v1/assistants/{secretary.id}/config/")
    assert response.status_code == 200
    assert response.json()["name"] == "Secretary"


@pytest.mark.parametrize("if_none_match", ["*", "{etag}"])
def test_a_304_needs_the_assistant_to_be_there_and_active(secretary, if_none_match):
    client = key_client("read")
    url = f"/api/v1/assistants/{secretary.id}/config/"
    etag = client.get(url)["ETag"]
    header = if_none_match.format(etag=etag)
    assert client.get(url, HTTP_IF_NONE_MATCH=header).status_code == 304

    unknown = "/api/v1/assistants/00000000-0000-4000-8000-000000000000/config/"
    assert client.get(unknown, HTTP_IF_NONE_MATCH="*").status_code == 404
    forged = etag.replace(str(secretary.id), "00000000-0000-4000-8000-000000000000")
    assert client.get(unknown, HTTP_IF_NONE_MATCH=forged).status_code == 404


def test_an_unreadable_cache_entry_is_answered_from_the_database(secretary):
    client = key_client("read")
    url = f"/api/v1/assistants/{secretary.id}/config/"
    client.get(url)
    store.store().set(store.assistant_config_key(str(secretary.id)), b"not-a-number\n{}")
    response = client.get(url)
    assert response.status_code == 200
    assert response.json()["name"] == "Secretary"


def test_the_wsgi_fast_path_hands_other_paths_to_django(secretary):
    client = key_client("read")
    client.get("/api/v1/config/")  # cached now
    handed_on = []
    fast = ConfigFastPath(lambda environ, start_response: handed_on.append(environ["PATH_INFO"]))
    environ = {
        "REQUEST_METHOD": "GET",
        "HTTP_HOST": "localhost",
        "HTTP_AUTHORIZATION": f"Bearer {client.raw_key}",
        "wsgi.url_scheme": "http",
    }
    answered = []
    fast({**environ, "PATH_INFO": "/api/v1/config/"}, lambda *args: answered.append(args))
    assert answered[0][0] == "200 OK" and handed_on == []
    for path in ["/api/v1/config/\n", "/api/v1/config/x", "/api/v1/configs/"]:
        fast({**environ, "PATH_INFO": path}, lambda *args: None)
    fast({**environ, "PATH_INFO": "/api/v1/config/", "HTTP_HOST": "evil.example"}, None)
    assert handed_on == [
        "/api/v1/config/\n",
        "/api/v1/config/x",
        "/api/v1/configs/",
        "/api/v1/config/",
    ]


def test_a_miss_reads_the_cache_once_then_builds_and_stores(redis_commands):
    client = key_client("read")
    assistant = assistant_with_tools(3)
    client.get("/api/v1/tools/")  # the key's record is cached: the miss below is the config's
    redis_commands.clear()

    response = client.get(f"/api/v1/assistants/{assistant.id}/config/")

    # One MGET decided "miss" and its values served the key check and the entry lookup.
    assert response["X-Config-Cache"] == "miss"
    assert redis_commands == ["MGET", *MISS_STORE]
    assert client.get(f"/api/v1/assistants/{assistant.id}/config/")["X-Config-Cache"] == "hit"


def wsgi_get(path: str, key: str, **meta) -> tuple[str, dict, bytes]:
    """A GET through the production WSGI application (ConfigFastPath around Django); `meta`:
    more of the environ (HTTP_ACCEPT_ENCODING=…)."""
    from config_backend.wsgi import application

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        **meta,
    }
    setup_testing_defaults(environ)
    environ["HTTP_HOST"] = "localhost"
    started = []
    # As Django's test client does: keep the test's database connection open after the request.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        body = b"".join(application(environ, lambda *response: started.append(response)))
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)
    status, headers = started[0]
    return status, dict(headers), body


def test_a_miss_through_the_wsgi_fast_path_is_not_fetched_again(redis_commands):
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
    url = f"/api/v1/assistants/{assistant_with_tools(2).id}/config/"
    wsgi_get("/api/v1/tools/", key)  # the key's record is cached
    redis_commands.clear()

    status, miss, _ = wsgi_get(url, key)
    assert status == "200 OK" and miss["X-Config-Cache"] == "miss"
    assert redis_commands == ["MGET", *MISS_STORE]
    redis_commands.clear()
    status, hit, _ = wsgi_get(url, key)
    assert status == "200 OK" and hit["X-Config-Cache"] == "hit"
    assert redis_commands == ["MGET"]
    assert "Allow" in miss and "Allow" not in hit  # DRF adds it: the hit never reached DRF


def test_an_unreadable_key_record_is_checked_against_the_database(secretary):
    client = key_client("read")
    client.get("/api/v1/tools/")
    store.store().set(store.api_key_record_key(client.raw_key.partition(".")[0]), b"{not json")

    response = client.get("/api/v1/tools/")

    assert response.status_code == 200
