"""Reads cost a fixed number of queries, however many assistants and tools there are."""

import pytest

from assistants.models import Assistant
from assistants.selectors import assistant_config_build, assistant_for_config, config_bundle_build
from core.store import assistant_config_key, revision_key
from core.store import store as cache_store
from tests.factories import assistant_with_tools, key_client
from threads.models import UserAssistantThread
from tools.models import Tool

pytestmark = pytest.mark.django_db

# A key is checked from its record in the cache, stored by the fixture's first request: no query.
KEY = 0


@pytest.fixture
def client():
    client = key_client("read")
    client.get("/healthz")
    client.get("/api/v1/tools/")  # the key's hourly last-used write happens here, not below
    return client


@pytest.mark.parametrize("tools", [1, 10, 100])
def test_building_a_config_costs_one_query(tools, django_assert_num_queries):
    assistant = Assistant.objects.get(pk=assistant_with_tools(tools).pk)

    with django_assert_num_queries(1):
        config = assistant_config_build(assistant=assistant, revision=7)

    assert len(config["tools"]) == tools


@pytest.mark.parametrize("tools", [1, 10, 100])
def test_loading_and_building_a_config_costs_two_queries(tools, django_assert_num_queries):
    assistant_id = assistant_with_tools(tools).pk

    with django_assert_num_queries(2):
        assistant = assistant_for_config(assistant_id=assistant_id)
        config = assistant_config_build(assistant=assistant, revision=7)

    assert len(config["tools"]) == tools


@pytest.mark.parametrize("tools", [1, 10, 100])
def test_a_config_miss_costs_three_queries(client, tools, django_assert_num_queries):
    assistant = assistant_with_tools(tools)

    # revision, assistant, its links (joined to tools and delegates)
    with django_assert_num_queries(KEY + 3):
        response = client.get(f"/api/v1/assistants/{assistant.id}/config/")

    assert len(response.json()["tools"]) == tools


def test_a_304_without_a_cached_entry_costs_two_queries(client, django_assert_num_queries):
    assistant = assistant_with_tools(3)
    etag = client.get(f"/api/v1/assistants/{assistant.id}/config/")["ETag"]
    cache_store().delete(assistant_config_key(str(assistant.id)))
    cache_store().delete(revision_key("config"))

    with django_assert_num_queries(KEY + 2):  # revision, is the assistant there and active
        response = client.get(f"/api/v1/assistants/{assistant.id}/config/", HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304


@pytest.mark.parametrize("assistants, tools", [(1, 1), (5, 10), (20, 100)])
def test_a_bundle_miss_costs_four_queries(client, assistants, tools, django_assert_num_queries):
    for i in range(assistants):
        assistant_with_tools(tools, name=f"a{i:02}")

    # revision, assistants, links, the assistants' own revisions
    with django_assert_num_queries(KEY + 4):
        bundle = client.get("/api/v1/config/").json()

    assert len(bundle["assistants"]) == 2 * assistants  # each with its delegate
    assert sum(len(config["tools"]) for config in bundle["assistants"]) == assistants * tools


def test_the_bundle_builder_costs_three_queries(django_assert_num_queries):
    for i in range(10):
        assistant_with_tools(10, name=f"a{i:02}")

    with django_assert_num_queries(3):  # assistants, links, their revisions
        config_bundle_build(revision=1)


def test_listing_200_assistants_costs_two_queries(client, django_assert_num_queries):
    Assistant.objects.bulk_create(Assistant(name=f"a{i:03}", model="m") for i in range(200))

    with django_assert_num_queries(KEY + 2):  # count, page
        body = client.get("/api/v1/assistants/?page_size=500").json()

    assert len(body["results"]) == 200


@pytest.mark.parametrize("tools", [1, 100])
def test_an_assistant_with_its_tools_costs_two_queries(client, tools, django_assert_num_queries):
    assistant = assistant_with_tools(tools)

    with django_assert_num_queries(KEY + 2):  # assistant, its links with their tools
        body = client.get(f"/api/v1/assistants/{assistant.id}/").json()

    assert len(body["tools"]) == tools


@pytest.mark.parametrize("tools", [1, 100])
def test_an_assistants_tool_list_costs_three_queries(client, tools, django_assert_num_queries):
    assistant = assistant_with_tools(tools)

    with django_assert_num_queries(KEY + 3):  # assistant, count, page
        body = client.get(f"/api/v1/assistants/{assistant.id}/tools/?page_size=500").json()

    assert len(body["results"]) == tools


def test_listing_tools_costs_two_queries(client, django_assert_num_queries):
    Tool.objects.bulk_create(Tool(name=f"t{i:03}", tool_type="time") for i in range(200))

    with django_assert_num_queries(KEY + 2):
        assert client.get("/api/v1/tools/?page_size=500").json()["count"] == 200


def test_one_tool_costs_one_query(client, weather_tool, django_assert_num_queries):
    with django_assert_num_queries(KEY + 1):
        client.get(f"/api/v1/tools/{weather_tool.id}/")


def test_listing_threads_costs_two_queries(client, secretary, django_assert_num_queries):
    UserAssistantThread.objects.bulk_create(
        UserAssistantThread(user_id=str(i), assistant=secretary, thread_id="t") for i in range(200)
    )

    with django_assert_num_queries(KEY + 2):
        assert client.get("/api/v1/threads/?page_size=500").json()["count"] == 200


def test_one_thread_costs_one_query(client, secretary, django_assert_num_queries):
    thread = UserAssistantThread.objects.create(user_id="1", assistant=secretary, thread_id="t")

    with django_assert_num_queries(KEY + 1):
        client.get(f"/api/v1/threads/{thread.id}/")
