"""Helpers for the API tests: clients holding a key of a given scope, or a staff session."""

from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from core.models import APIKey


def key_client(scope: str = "read", **key_fields) -> APIClient:
    """A client sending `Authorization: Bearer <a new key of this scope>`."""
    _, key = APIKey.objects.create_key(name=f"test {scope}", scope=scope, **key_fields)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    client.raw_key = key
    return client


def staff_client(*permissions: str, superuser: bool = False) -> APIClient:
    """A client logged in as a staff user with these permissions ("assistants.view_assistant")."""
    user = User.objects.create_user(
        username=f"staff{User.objects.count()}",
        password="pw",
        is_staff=True,
        is_superuser=superuser,
    )
    for dotted in permissions:
        app_label, codename = dotted.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    client = APIClient()
    client.force_login(user)
    return client


def assistant_payload(**fields) -> dict:
    return {"name": "Helper", "assistant_type": "llm", "model": "gpt-4o-mini", **fields}


def tool_payload(**fields) -> dict:
    return {
        "name": "get_time",
        "tool_type": "time",
        "description": "The time.",
        "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}},
        **fields,
    }
