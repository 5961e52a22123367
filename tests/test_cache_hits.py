"""A cache hit costs zero SQL (key check included) and one Redis round trip, however big."""

import pytest
from django.db import transaction
from django.test import Client

from config_backend import cache
from config_backend.models import APIKey
from tests.api_support import key_client
from tests.test_api_query_counts import assistant_with_tools

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_commands(monkeypatch):
    """Counts the commands sent to Redis (each one a round trip: no pipelines on this path)."""
    sent = []
    client = cache.store().client
    original = client.execute_command

    def counting(*args, **options):
        sent.append(args[0])
        return original(*args, **options)

    monkeypatch.setattr(client, "execute_command", counting)
    return sent


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
