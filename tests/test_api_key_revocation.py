"""Revoking an API key other than through the admin, a command or the API (a bare UPDATE) takes
effect within API_KEY_RECORD_SECONDS; revoking while Redis is unreachable works, and the key is
refused at once, and still once Redis is back."""

import time

import pytest
from django.db import transaction

from core import store
from core.models import APIKey
from tests.factories import key_client
from tests.live import call, live_database_url, server


def config_url(assistant) -> str:
    return f"/api/v1/assistants/{assistant.id}/config/"


@pytest.mark.django_db
def test_a_key_record_is_cached_for_api_key_record_seconds(settings, secretary):
    settings.API_KEY_RECORD_SECONDS = 7
    client = key_client("read")
    assert client.get(config_url(secretary)).status_code == 200
    record_key = store.api_key_record_key(client.raw_key.partition(".")[0])
    assert 0 < store.store().client.ttl(record_key) <= 7


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_key_revoked_by_a_bare_update_is_refused_once_its_record_expires(secretary):
    record_seconds = 2
    api_key, key = APIKey.objects.create_key(name="runtime", scope="read")
    env = {"DATABASE_URL": live_database_url(), "API_KEY_RECORD_SECONDS": str(record_seconds)}
    with server(env=env, workers=1) as base_url:
        url = base_url + config_url(secretary)
        assert call("GET", url, key=key)[0] == 200  # a miss: stores the entry and the key record
        assert call("GET", url, key=key)[0] == 200
        # No signal, no revision bump: as an operator's SQL would revoke it.
        APIKey.objects.filter(pk=api_key.pk).update(revoked=True)
        revoked_at = time.monotonic()
        # Still 200: only the cached record (the WSGI fast path) can say so now, so hits are
        # being served.
        assert call("GET", url, key=key)[0] == 200
        status = 200
        while status == 200 and time.monotonic() - revoked_at < record_seconds + 3:
            time.sleep(0.1)
            status = call("GET", url, key=key)[0]
        refused_after = time.monotonic() - revoked_at

    assert status == 401
    assert refused_after < record_seconds + 0.5


def revoke(how: str, api_key: APIKey, admin_client) -> None:
    if how == "admin action":
        response = admin_client.post(
            "/admin/config_backend/apikey/",
            {"action": "revoke_selected", "_selected_action": [api_key.pk]},
        )
        assert response.status_code == 302
    else:
        with transaction.atomic():
            api_key.revoked = True
            api_key.save()


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["admin action", "save"])
def test_a_key_is_revoked_while_redis_is_unreachable_and_refused_at_once(
    how, request, admin_client, secretary, caplog
):
    client = key_client("read")
    for _ in range(2):  # the second is a hit
        assert client.get(config_url(secretary)).status_code == 200
    request.getfixturevalue("unreachable_redis")

    revoke(how, APIKey.objects.get(), admin_client)

    assert APIKey.objects.get().revoked
    assert "API keys changed while the cache is unreachable" in caplog.text
    assert client.get(config_url(secretary)).status_code == 401
    assert client.get("/api/v1/assistants/").status_code == 401


@pytest.mark.django_db
def test_once_redis_is_back_the_first_key_check_retires_records_older_than_a_revocation(
    request, monkeypatch, secretary, django_assert_num_queries
):
    revoked = key_client("read")
    other = key_client("read")  # not used yet: no record, its first request reaches the database
    for _ in range(2):
        assert revoked.get(config_url(secretary)).status_code == 200
    reachable = store.store()
    request.getfixturevalue("unreachable_redis")
    with transaction.atomic():
        api_key = APIKey.objects.get(prefix=revoked.raw_key.partition(".")[0])
        api_key.revoked = True
        api_key.save()

    # Redis is back with its old contents (the revoked key's record among them).
    monkeypatch.setattr(store.base, "_store", reachable)
    store.breaker.reset()
    assert other.get(config_url(secretary)).status_code == 200

    assert revoked.get(config_url(secretary)).status_code == 401
    with django_assert_num_queries(0):  # and hits are served again
        assert other.get(config_url(secretary)).status_code == 200
