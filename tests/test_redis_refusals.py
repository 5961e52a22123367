"""Redis that answers but refuses a command (at maxmemory under `noeviction`) is not an outage:
the breaker stays closed, a read is answered from the database for that request with a warning,
and a config write is refused with a 503 saying Redis refused the command; nothing changes."""

import pytest

from assistants.models import Assistant
from core.store import breaker
from tests.factories import assistant_payload, key_client

pytestmark = pytest.mark.django_db


def fill_up(client) -> None:
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)


def make_room(client) -> None:
    client.config_set("maxmemory", 0)


def test_a_config_write_to_a_full_redis_is_refused_saying_why_and_changes_nothing(own_redis_cache):
    client = key_client("write")  # made while Redis has room: a key change raises its mirror
    fill_up(own_redis_cache)

    for _ in range(2):  # the first refusal trips no breaker: the second is refused the same way
        response = client.post("/api/v1/assistants/", assistant_payload(), format="json")
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        detail = response.json()["detail"]
        assert "refused the command (OutOfMemoryError" in detail
        assert "nothing was changed" in detail and "unreachable" not in detail
        assert not breaker.is_open()
    assert not Assistant.objects.exists()

    make_room(own_redis_cache)
    response = client.post("/api/v1/assistants/", assistant_payload(), format="json")
    assert response.status_code == 201


def test_a_read_from_a_full_redis_is_answered_from_the_database_with_a_warning(
    own_redis_cache, secretary, caplog
):
    client = key_client("read")
    fill_up(own_redis_cache)

    response = client.get(f"/api/v1/assistants/{secretary.id}/config/")

    assert response.status_code == 200
    assert response.json()["name"] == "Secretary"
    assert "Cache refused a command while storing a config (OutOfMemoryError" in caplog.text
    assert not breaker.is_open()
