"""The resolved runtime config of one assistant, and the bundle of every active assistant."""

import pytest

from assistants.models import Assistant
from core.models import ConfigRevision
from core.store import committed_counter
from tests.factories import key_client, link, make_delegate_tool
from tools.models import Tool

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return key_client("read")


def config_url(assistant) -> str:
    return f"/api/v1/assistants/{assistant.id}/config/"


def test_it_returns_the_resolved_config_in_spec_shape(
    client, secretary, calendar_assistant, weather_tool
):
    ask_calendar = make_delegate_tool("ask_calendar", calendar_assistant)
    link(secretary, weather_tool)
    link(secretary, ask_calendar)

    response = client.get(config_url(secretary))

    assert response.status_code == 200
    body = response.json()
    revision = committed_counter()
    assert list(body) == [
        "id",
        "name",
        "assistant_type",
        "model",
        "instructions",
        "openai_assistant_id",
        "is_secretary",
        "model_settings",
        "output",
        "variables",
        "revision",
        "tools",
    ]
    assert body == {
        "id": str(secretary.id),
        "name": "Secretary",
        "assistant_type": "llm",
        "model": "gpt-4o-mini",
        "instructions": "Help the user.",
        "openai_assistant_id": None,
        "is_secretary": True,
        "model_settings": {},
        "output": None,
        "variables": [],
        "revision": revision,
        "tools": [
            {
                "id": str(ask_calendar.id),
                "name": "ask_calendar",
                "tool_type": "sub_assistant",
                "description": "",
                "input_schema": {"type": "object", "properties": {"request": {"type": "string"}}},
                "strict": False,
                "sub_assistant": {"id": str(calendar_assistant.id), "name": "Calendar assistant"},
            },
            {
                "id": str(weather_tool.id),
                "name": "get_weather",
                "tool_type": "weather",
                "description": "Weather for a city.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": False,
                "sub_assistant": None,
            },
        ],
    }
    assert list(body["tools"][0]) == [
        "id",
        "name",
        "tool_type",
        "description",
        "input_schema",
        "strict",
        "sub_assistant",
    ]


def test_it_orders_tools_by_name(client, secretary):
    for name in ["b_tool", "A_tool", "a_tool", "c-tool"]:
        link(secretary, Tool.objects.create(name=name, tool_type="time"))

    names = [tool["name"] for tool in client.get(config_url(secretary)).json()["tools"]]

    assert names == ["A_tool", "a_tool", "b_tool", "c-tool"]


def test_it_leaves_out_inactive_links_inactive_tools_and_tools_of_inactive_delegates(
    client, secretary, calendar_assistant, weather_tool
):
    link(secretary, weather_tool, is_active=False)
    inactive_tool = Tool.objects.create(name="get_time", tool_type="time", is_active=False)
    link(secretary, inactive_tool)
    ask_calendar = make_delegate_tool("ask_calendar", calendar_assistant)
    link(secretary, ask_calendar)
    Assistant.objects.filter(pk=calendar_assistant.pk).update(is_active=False)
    kept = Tool.objects.create(name="set_reminder", tool_type="reminder")
    link(secretary, kept)

    tools = client.get(config_url(secretary)).json()["tools"]

    assert [tool["name"] for tool in tools] == ["set_reminder"]


def test_an_inactive_assistant_has_no_config(client, calendar_assistant):
    client.get(config_url(calendar_assistant))  # cached
    calendar_assistant.is_active = False
    calendar_assistant.save()

    response = client.get(config_url(calendar_assistant))

    assert response.status_code == 404


def test_an_unknown_assistant_has_no_config(client):
    response = client.get("/api/v1/assistants/00000000-0000-0000-0000-000000000000/config/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No active assistant with this id."}


def test_config_carries_etag_and_revision_headers(client, secretary):
    response = client.get(config_url(secretary))

    revision = committed_counter(ConfigRevision.for_assistant(secretary.id))
    assert revision > 0
    assert response["X-Config-Revision"] == str(revision)
    assert response["ETag"] == f'"{revision}-{secretary.id}"'


def test_a_matching_if_none_match_gets_304(client, secretary):
    etag = client.get(config_url(secretary))["ETag"]

    response = client.get(config_url(secretary), HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag


def test_a_weak_or_listed_etag_matches_too(client, secretary):
    etag = client.get(config_url(secretary))["ETag"]

    assert client.get(config_url(secretary), HTTP_IF_NONE_MATCH=f'"x", W/{etag}').status_code == 304


def test_an_old_etag_gets_the_new_config(client, secretary):
    etag = client.get(config_url(secretary))["ETag"]
    secretary.instructions += " Be brief."
    secretary.save()

    response = client.get(config_url(secretary), HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 200
    assert response["ETag"] != etag


def test_the_bundle_lists_every_active_assistant_by_name(
    client, secretary, calendar_assistant, weather_tool
):
    Assistant.objects.create(name="Asleep", model="m", is_active=False)
    link(calendar_assistant, weather_tool)

    response = client.get("/api/v1/config/")

    assert response.status_code == 200
    body = response.json()
    revision = committed_counter()
    assert list(body) == ["revision", "secretary", "assistants"]
    assert body["revision"] == revision
    assert body["secretary"] == str(secretary.id)
    assert [config["name"] for config in body["assistants"]] == ["Calendar assistant", "Secretary"]
    # Each entry is exactly the per-assistant config.
    for config in body["assistants"]:
        single = client.get(f"/api/v1/assistants/{config['id']}/config/").json()
        assert config == single
    assert response["ETag"] == f'"{revision}"'
    assert response["X-Config-Revision"] == str(revision)


def test_the_bundle_secretary_is_null_without_an_active_secretary(client, calendar_assistant):
    assert client.get("/api/v1/config/").json()["secretary"] is None


def test_the_bundle_answers_304_to_its_etag(client, secretary):
    etag = client.get("/api/v1/config/")["ETag"]

    assert client.get("/api/v1/config/", HTTP_IF_NONE_MATCH=etag).status_code == 304
