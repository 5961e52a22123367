"""A key whose prefix no usable key has (made up, revoked, expired) is refused from a cached
record after its first lookup: a burst repeating it costs the database nothing. Creating a key
with that prefix, or changing any key, retires the record at once; a wrong secret for a real
prefix never locks its key out."""

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from core import store
from core.api.keys import UNUSABLE_PREFIX_SECONDS, key_prefix
from core.models import APIKey
from tests.factories import key_client

pytestmark = pytest.mark.django_db

BOGUS = "abcdefgh.notarealkeyatall000000000000000"


def bearer_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def config_url(assistant) -> str:
    return f"/api/v1/assistants/{assistant.id}/config/"


@pytest.mark.parametrize("path", ["config", "/api/v1/assistants/"])
def test_the_second_request_with_a_made_up_key_costs_no_query(
    path, secretary, django_assert_num_queries
):
    url = config_url(secretary) if path == "config" else path
    client = bearer_client(BOGUS)
    assert client.get(url).status_code == 401  # looked up once

    with django_assert_num_queries(0):
        for _ in range(3):
            response = client.get(url)
            assert response.status_code == 401
            assert response.json() == {"detail": "Invalid, expired or revoked API key."}


def test_the_refusal_is_remembered_for_a_short_time_only(secretary):
    assert bearer_client(BOGUS).get(config_url(secretary)).status_code == 401
    ttl = store.store().client.ttl(store.api_key_record_key(key_prefix(BOGUS)))
    assert 0 < ttl <= UNUSABLE_PREFIX_SECONDS <= 30


def test_a_key_created_with_a_refused_prefix_works_at_once(secretary, monkeypatch):
    generator = APIKey.objects.key_generator
    key, prefix, hashed_key = generator.generate()
    client = bearer_client(key)
    for _ in range(2):  # refused, the second time from the cached record
        assert client.get(config_url(secretary)).status_code == 401

    # The one key in a trillion whose random prefix was tried before it existed.
    monkeypatch.setattr(generator, "generate", lambda: (key, prefix, hashed_key))
    with transaction.atomic():
        APIKey.objects.create_key(name="runtime", scope="read")

    assert client.get(config_url(secretary)).status_code == 200
    assert client.get("/api/v1/assistants/").status_code == 200


def test_a_wrong_secret_does_not_lock_the_real_key_out(secretary):
    good = key_client("read")
    wrong = bearer_client(good.raw_key[:-1] + ("x" if good.raw_key[-1] != "x" else "y"))
    for _ in range(3):
        assert wrong.get(config_url(secretary)).status_code == 401

    assert good.get(config_url(secretary)).status_code == 200
    assert good.get("/api/v1/assistants/").status_code == 200


@pytest.mark.parametrize("how", ["save", "admin action"])
def test_a_revoked_key_is_refused_at_once_and_then_without_a_query(
    how, secretary, admin_client, django_assert_num_queries
):
    client = key_client("read")
    for _ in range(2):  # the second is a hit
        assert client.get(config_url(secretary)).status_code == 200
    api_key = APIKey.objects.get()
    if how == "save":
        with transaction.atomic():
            api_key.revoked = True
            api_key.save()
    else:
        admin_client.post(
            "/admin/config_backend/apikey/",
            {"action": "revoke_selected", "_selected_action": [api_key.pk]},
        )

    assert client.get(config_url(secretary)).status_code == 401
    with django_assert_num_queries(0):
        assert client.get(config_url(secretary)).status_code == 401
        assert client.get("/api/v1/assistants/").status_code == 401
