"""A key's id is random: it shows in admin URLs and logs, so it must not carry the key's hash."""

import importlib
import io
import re

import pytest
from django.apps import apps
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from rest_framework.test import APIClient

from core.models import APIKey

pytestmark = pytest.mark.django_db


def assert_opaque_id(api_key: APIKey):
    stored = APIKey.objects.get(prefix=api_key.prefix)
    assert re.fullmatch(r"[0-9a-f]{32}", stored.pk)
    assert stored.hashed_key.rpartition("$")[2] not in stored.pk
    assert stored.prefix not in stored.pk


def works(key: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.get("/api/v1/assistants/").status_code == 200


def test_a_key_made_with_create_key_has_an_opaque_id():
    api_key, key = APIKey.objects.create_key(name="runtime", scope="runtime")
    assert_opaque_id(api_key)
    assert works(key)


def test_a_key_made_with_the_command_has_an_opaque_id():
    out = io.StringIO()
    call_command("create_api_key", "dashboard", stdout=out)
    assert_opaque_id(APIKey.objects.get())
    assert works(out.getvalue().strip().splitlines()[-1])


def test_a_key_made_in_the_admin_has_an_opaque_id(client):
    client.force_login(User.objects.create_superuser("admin"))
    response = client.post(
        "/admin/config_backend/apikey/add/",
        {"name": "ops", "scope": "read", "expiry_date_0": "", "expiry_date_1": ""},
    )
    assert response.status_code == 200  # the page showing the new key
    assert_opaque_id(APIKey.objects.get())


def test_the_migration_gives_old_keys_opaque_ids_and_keeps_their_admin_history():
    api_key, key = APIKey.objects.create_key(name="old")
    old_id = f"{api_key.prefix}.{api_key.hashed_key}"  # as the library made it
    APIKey.objects.filter(pk=api_key.pk).update(id=old_id)
    entry = LogEntry.objects.create(
        user=User.objects.create_superuser("admin"),
        content_type=ContentType.objects.get_for_model(APIKey),
        object_id=old_id,
        object_repr="old",
        action_flag=CHANGE,
    )

    migration = importlib.import_module("core.migrations.0004_opaque_api_key_ids")
    migration.give_keys_random_ids(apps, None)

    assert_opaque_id(api_key)
    entry.refresh_from_db()
    assert entry.object_id == APIKey.objects.get().pk
    assert works(key)
