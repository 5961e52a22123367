"""Two app servers share one Redis: a write through one is seen by the very next read on the
other — for assistant, tool, link and unlink changes, and for admin bulk actions."""

import json

import pytest
from django.contrib.auth.models import User

from assistants.models import Assistant
from core.models import APIKey
from tests.factories import make_delegate_tool
from tests.live import AdminBrowser, call, live_database_url, server
from tools.models import AssistantToolLink, Tool

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_servers():
    env = {"DATABASE_URL": live_database_url()}
    with server(env=env, workers=2) as first, server(env=env, workers=2) as second:
        yield first, second


@pytest.fixture
def keys():
    _, read = APIKey.objects.create_key(name="runtime", scope="read")
    _, write = APIKey.objects.create_key(name="automation", scope="write")
    return read, write


@pytest.fixture
def config_objects():
    secretary = Assistant.objects.create(
        name="Secretary", model="gpt-4o-mini", is_secretary=True, instructions="v1"
    )
    calendar = Assistant.objects.create(name="Calendar", model="gpt-4o-mini")
    weather = Tool.objects.create(
        name="get_weather", tool_type="weather", description="v1", input_schema={"type": "object"}
    )
    ask = make_delegate_tool("ask_calendar", calendar)
    AssistantToolLink.objects.create(assistant=secretary, tool=weather)
    AssistantToolLink.objects.create(assistant=secretary, tool=ask)
    return {"secretary": secretary, "calendar": calendar, "weather": weather, "ask": ask}


def config_on(base_url, key, assistant) -> dict:
    status, _, body = call("GET", f"{base_url}/api/v1/assistants/{assistant.id}/config/", key=key)
    assert status == 200, body
    return json.loads(body)


def warm(base_url, key, assistant) -> dict:
    """Read twice, so the second server holds (and serves) a cached entry."""
    config_on(base_url, key, assistant)
    return config_on(base_url, key, assistant)


def test_an_assistant_change_is_seen_by_the_next_read_on_the_other_server(
    two_servers, keys, config_objects
):
    first, second = two_servers
    read, write = keys
    secretary = config_objects["secretary"]
    assert warm(second, read, secretary)["instructions"] == "v1"

    status, _, _ = call(
        "PATCH",
        f"{first}/api/v1/assistants/{secretary.id}/",
        key=write,
        body={"instructions": "v2"},
    )
    assert status == 200
    assert config_on(second, read, secretary)["instructions"] == "v2"


def test_a_tool_change_reaches_every_assistant_that_links_it(two_servers, keys, config_objects):
    first, second = two_servers
    read, write = keys
    secretary, weather = config_objects["secretary"], config_objects["weather"]
    warm(second, read, secretary)
    status, _, bundle = call("GET", f"{second}/api/v1/config/", key=read)
    assert status == 200

    status, _, _ = call(
        "PATCH", f"{first}/api/v1/tools/{weather.id}/", key=write, body={"description": "v2"}
    )
    assert status == 200
    tools = {t["name"]: t for t in config_on(second, read, secretary)["tools"]}
    assert tools["get_weather"]["description"] == "v2"
    _, _, bundle = call("GET", f"{second}/api/v1/config/", key=read)
    secretary_config = next(a for a in json.loads(bundle)["assistants"] if a["is_secretary"])
    assert {t["name"]: t for t in secretary_config["tools"]}["get_weather"]["description"] == "v2"


def test_a_delegate_change_reaches_the_assistants_that_delegate_to_it(
    two_servers, keys, config_objects
):
    first, second = two_servers
    read, write = keys
    secretary, calendar = config_objects["secretary"], config_objects["calendar"]
    warm(second, read, secretary)

    call(
        "PATCH",
        f"{first}/api/v1/assistants/{calendar.id}/",
        key=write,
        body={"name": "Calendar v2"},
    )
    tools = {t["name"]: t for t in config_on(second, read, secretary)["tools"]}
    assert tools["ask_calendar"]["sub_assistant"]["name"] == "Calendar v2"

    call("PATCH", f"{first}/api/v1/assistants/{calendar.id}/", key=write, body={"is_active": False})
    names = [t["name"] for t in config_on(second, read, secretary)["tools"]]
    assert names == ["get_weather"]  # a sub-assistant tool whose delegate is inactive is left out


def test_link_and_unlink_are_seen_by_the_next_read_on_the_other_server(
    two_servers, keys, config_objects
):
    first, second = two_servers
    read, write = keys
    secretary = config_objects["secretary"]
    clock = Tool.objects.create(name="get_time", tool_type="time", input_schema={"type": "object"})
    warm(second, read, secretary)

    status, _, _ = call(
        "POST", f"{first}/api/v1/assistants/{secretary.id}/tools/{clock.id}/", key=write
    )
    assert status in (200, 201)
    names = [t["name"] for t in config_on(second, read, secretary)["tools"]]
    assert names == ["ask_calendar", "get_time", "get_weather"]

    status, _, _ = call(
        "DELETE", f"{first}/api/v1/assistants/{secretary.id}/tools/{clock.id}/", key=write
    )
    assert status == 204
    names = [t["name"] for t in config_on(second, read, secretary)["tools"]]
    assert names == ["ask_calendar", "get_weather"]


def test_an_admin_bulk_action_is_seen_by_the_next_read_on_the_other_server(
    two_servers, keys, config_objects
):
    first, second = two_servers
    read, _ = keys
    secretary, weather = config_objects["secretary"], config_objects["weather"]
    warm(second, read, secretary)

    User.objects.create_superuser("ops", password="a-long-test-password")
    browser = AdminBrowser(first)
    browser.log_in("ops", "a-long-test-password")
    result = browser.post_form(
        "/admin/tools/tool/",
        {"action": "deactivate_selected", "_selected_action": [str(weather.id)]},
    )
    assert "1 deactivated." in result

    names = [t["name"] for t in config_on(second, read, secretary)["tools"]]
    assert names == ["ask_calendar"]
