"""Creating and revoking API keys: the create_api_key command and the admin."""

import io
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from core.models import APIKey

pytestmark = pytest.mark.django_db


def create_key(*args) -> str:
    out = io.StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.mark.parametrize("scope", ["read", "runtime", "write"])
def test_the_command_prints_a_working_key_of_the_scope_as_its_last_line(scope):
    key = create_key("orchestrator", "--scope", scope)

    stored = APIKey.objects.get()
    assert (stored.name, stored.scope) == ("orchestrator", scope)
    assert key.startswith(stored.prefix + ".")
    assert key not in stored.hashed_key
    assert bearer(key).get("/api/v1/assistants/").status_code == 200


def test_the_command_defaults_to_the_read_scope():
    create_key("dashboard")
    assert APIKey.objects.get().scope == "read"


def test_the_command_refuses_an_unknown_scope():
    with pytest.raises(CommandError):
        call_command("create_api_key", "x", "--scope", "admin", stdout=io.StringIO())
    assert not APIKey.objects.exists()


def test_the_command_refuses_a_name_too_long():
    with pytest.raises(CommandError):
        call_command("create_api_key", "x" * 51, stdout=io.StringIO())


def test_each_key_is_different():
    assert create_key("a") != create_key("b")


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


def test_the_admin_creates_a_key_and_shows_it_once(admin_client):
    response = admin_client.post(
        "/admin/config_backend/apikey/add/",
        {"name": "runtime", "scope": "runtime", "expiry_date_0": "", "expiry_date_1": ""},
    )

    assert response.status_code == 200  # the answer to the form itself: no redirect
    stored = APIKey.objects.get()
    assert stored.scope == "runtime"
    page = response.content.decode()
    key = re.search(r'<code id="new-api-key">([^<]+)</code>', page)[1]
    assert key.startswith(stored.prefix + ".")
    assert page.count(key.partition(".")[2]) == 1
    assert "no-store" in response["Cache-Control"]
    assert bearer(key).get("/api/v1/assistants/").status_code == 200
    # Not shown again on the key's page.
    page = admin_client.get(f"/admin/config_backend/apikey/{stored.pk}/change/")
    assert key not in page.content.decode()


def test_a_new_key_is_in_no_cookie_message_session_or_log_entry(admin_client):
    response = admin_client.post(
        "/admin/config_backend/apikey/add/",
        {"name": "runtime", "scope": "read", "expiry_date_0": "", "expiry_date_1": ""},
    )
    secret = re.search(r'<code id="new-api-key">[^.]+\.([^<]+)</code>', response.content.decode())[
        1
    ]

    # The messages cookie is signed, not encrypted: the key must not travel in it.
    assert secret not in response.cookies.output()
    assert all(secret not in value for _, value in response.items())
    assert all(secret not in str(message) for message in get_messages(response.wsgi_request))
    assert secret not in str(dict(admin_client.session.items()))
    entry = LogEntry.objects.get()
    assert secret not in f"{entry.object_repr} {entry.change_message}"
    # Nor in what the next page shows (where a queued message would appear).
    following = admin_client.get("/admin/config_backend/apikey/")
    assert secret not in following.content.decode()
    assert secret not in following.cookies.output()


def test_the_admin_revokes_keys_with_an_action(admin_client, secretary):
    key = create_key("old")
    stored = APIKey.objects.get()
    config = f"/api/v1/assistants/{secretary.id}/config/"
    for _ in range(2):  # the key's record and the config are cached: the second is a hit
        assert bearer(key).get(config).status_code == 200

    admin_client.post(
        "/admin/config_backend/apikey/",
        {"action": "revoke_selected", "_selected_action": [stored.pk]},
    )

    assert APIKey.objects.get().revoked
    assert bearer(key).get("/api/v1/assistants/").status_code == 401
    assert bearer(key).get(config).status_code == 401


def test_the_admin_lists_keys_with_scope_and_last_use(admin_client):
    create_key("listed", "--scope", "write")
    page = admin_client.get("/admin/config_backend/apikey/").content.decode()
    assert "listed" in page and "write" in page and "last used" in page.lower()


def test_the_librarys_own_key_model_is_not_in_the_admin(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert "/admin/rest_framework_api_key/" not in page
    assert "/admin/config_backend/apikey/" in page
