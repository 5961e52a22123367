"""A write that changes nothing (the same values through the API or the admin) makes no
revision, touches no row and changes no ETag (docs/contract.md "Cache semantics")."""

import pytest
from django.urls import reverse

from assistants.models import Assistant
from core.store import committed_counter
from tests.factories import assistant_form, key_client, link

pytestmark = pytest.mark.django_db


@pytest.fixture
def writer():
    return key_client("write")


def config_etag(client, assistant) -> str:
    return client.get(f"/api/v1/assistants/{assistant.pk}/config/")["ETag"]


def test_a_patch_with_the_same_values_makes_no_revision_and_keeps_the_etag(writer, secretary):
    etag, revision = config_etag(writer, secretary), committed_counter()
    updated_at = Assistant.objects.get().updated_at

    response = writer.patch(
        f"/api/v1/assistants/{secretary.pk}/",
        {"instructions": secretary.instructions, "model": secretary.model, "is_secretary": True},
    )

    assert response.status_code == 200
    assert committed_counter() == revision
    assert config_etag(writer, secretary) == etag
    assert Assistant.objects.get().updated_at == updated_at


def test_a_put_of_what_get_returned_makes_no_revision(writer, weather_tool):
    tool = writer.get(f"/api/v1/tools/{weather_tool.pk}/").json()
    revision = committed_counter()
    body = {name: tool[name] for name in ("name", "tool_type", "description", "input_schema")}

    assert writer.put(f"/api/v1/tools/{weather_tool.pk}/", body).status_code == 200
    assert committed_counter() == revision


def test_linking_a_tool_already_linked_makes_no_revision(writer, secretary, weather_tool):
    link(secretary, weather_tool)
    revision = committed_counter()

    response = writer.post(f"/api/v1/assistants/{secretary.pk}/tools/{weather_tool.pk}/", {})

    assert response.status_code == 200
    assert committed_counter() == revision


def test_an_admin_save_without_changes_makes_no_revision(admin_client, secretary, weather_tool):
    tool_link = link(secretary, weather_tool)
    form = assistant_form(
        name=secretary.name,
        model=secretary.model,
        instructions=secretary.instructions,
        is_secretary="on",
        **{
            "tool_links-TOTAL_FORMS": "1",
            "tool_links-INITIAL_FORMS": "1",
            "tool_links-0-id": str(tool_link.pk),
            "tool_links-0-assistant": str(secretary.pk),
            "tool_links-0-tool": str(weather_tool.pk),
            "tool_links-0-is_active": "on",
        },
    )
    url = reverse("admin:assistants_assistant_change", args=[secretary.pk])
    revision = committed_counter()

    assert admin_client.post(url, form).status_code == 302
    assert committed_counter() == revision

    assert admin_client.post(url, {**form, "instructions": "New."}).status_code == 302
    assert committed_counter() == revision + 1
