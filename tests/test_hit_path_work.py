"""What a cache hit no longer redoes on every request (bench/RESULTS.md "Servers: a logged hit"):
each speed-up is shown by the fast path serving the hit while the work it saves is counted.
The rules stay exact: a key change, a wrong secret, another host are decided as before."""

import pytest
from django.db import transaction

from core.models import APIKey
from tests.factories import key_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def hashes(monkeypatch):
    """The keys the API-key hash was computed for, in order (the library's verifier, counted)."""
    generator = APIKey.objects.key_generator
    verify = generator.verify
    computed = []

    def counting_verify(key, hashed_key):
        computed.append(key)
        return verify(key, hashed_key)

    monkeypatch.setattr(generator, "verify", counting_verify)
    return computed


def config_url(assistant) -> str:
    return f"/api/v1/assistants/{assistant.id}/config/"


def test_a_key_is_hashed_once_and_later_hits_with_it_compute_no_hash(secretary, hashes):
    client = key_client("read")
    assert client.get(config_url(secretary))["X-Config-Cache"] == "miss"
    assert client.get(config_url(secretary))["X-Config-Cache"] == "hit"
    hashes.clear()

    for _ in range(3):
        response = client.get(config_url(secretary))
        assert response.status_code == 200 and response["X-Config-Cache"] == "hit"
    assert len(hashes) == 0

    # A wrong secret for the same prefix is hashed, and refused, every time.
    wrong = client.raw_key[:-1] + ("x" if client.raw_key[-1] != "x" else "y")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {wrong}")
    for _ in range(2):
        assert client.get(config_url(secretary)).status_code == 401
    assert hashes.count(wrong) >= 2


def test_a_key_revoked_after_hits_that_computed_no_hash_is_refused_at_once(secretary, hashes):
    client = key_client("read")
    for _ in range(3):
        client.get(config_url(secretary))
    hashes.clear()
    assert client.get(config_url(secretary))["X-Config-Cache"] == "hit" and len(hashes) == 0

    with transaction.atomic():
        key = APIKey.objects.get()
        key.revoked = True
        key.save()

    assert client.get(config_url(secretary)).status_code == 401
