"""A config write while Redis is unreachable is refused with 503, and nothing changes."""

import pytest
from django.urls import reverse

from assistants.models import Assistant
from tests.factories import assistant_form, assistant_payload, key_client

pytestmark = pytest.mark.django_db


def test_an_api_write_is_refused_with_503(request):
    client = key_client("write")
    request.getfixturevalue("unreachable_redis")
    response = client.post("/api/v1/assistants/", assistant_payload(), format="json")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "nothing was changed" in response.json()["detail"]
    assert not Assistant.objects.exists()


def test_an_admin_save_is_refused_with_503(admin_client, unreachable_redis):
    response = admin_client.post(reverse("admin:assistants_assistant_add"), assistant_form())
    assert response.status_code == 503
    assert "nothing was changed" in response.content.decode()
    assert not Assistant.objects.exists()


def test_reads_are_still_answered_from_the_database(secretary, request):
    client = key_client("read")
    request.getfixturevalue("unreachable_redis")
    response = client.get(f"/api/v1/assistants/{secretary.id}/config/")
    assert response.status_code == 200
    assert response.json()["name"] == "Secretary"
