"""Tools: list with filters, detail, writes, and linking tools to assistants."""

import pytest

from tests.factories import link, make_delegate_tool, tool_payload
from tools.models import AssistantToolLink, Tool

pytestmark = pytest.mark.django_db


def test_it_lists_tools_by_name(reader, weather_tool, calendar_assistant):
    make_delegate_tool("ask_calendar", calendar_assistant)

    body = reader.get("/api/v1/tools/").json()

    assert body["count"] == 2
    assert [t["name"] for t in body["results"]] == ["ask_calendar", "get_weather"]
    assert body["results"][0]["assistant"] == str(calendar_assistant.id)
    assert set(body["results"][1]) == {"id", *Tool.CONFIG_FIELDS, "created_at", "updated_at"}


def test_it_filters_tools_by_type_and_activity(reader, weather_tool):
    Tool.objects.create(name="get_time", tool_type="time", is_active=False)

    def names(query):
        return [t["name"] for t in reader.get(f"/api/v1/tools/?{query}").json()["results"]]

    assert names("tool_type=weather") == ["get_weather"]
    assert names("is_active=false") == ["get_time"]
    assert names("tool_type=time&is_active=true") == []


@pytest.mark.parametrize("query", ["tool_type=email", "is_active=nope"])
def test_an_invalid_tool_filter_is_400(reader, query):
    response = reader.get(f"/api/v1/tools/?{query}")
    assert response.status_code == 400
    assert list(response.json()) == [query.split("=")[0]]


def test_it_shows_one_tool(reader, weather_tool):
    body = reader.get(f"/api/v1/tools/{weather_tool.id}/").json()
    assert body["name"] == "get_weather" and body["assistant"] is None


def test_an_unknown_tool_is_404(reader):
    response = reader.get("/api/v1/tools/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404


def test_it_creates_a_sub_assistant_tool(writer, calendar_assistant):
    body = tool_payload(
        name="ask_calendar", tool_type="sub_assistant", assistant=str(calendar_assistant.id)
    )
    response = writer.post("/api/v1/tools/", body, format="json")

    assert response.status_code == 201
    assert Tool.objects.get().assistant == calendar_assistant


def test_it_creates_a_tool_with_the_default_schema(writer):
    response = writer.post("/api/v1/tools/", {"name": "now", "tool_type": "time"}, format="json")
    assert response.status_code == 201
    assert response.json()["input_schema"] == {"type": "object", "properties": {}}


def test_patch_and_put_update_a_tool(writer, weather_tool):
    url = f"/api/v1/tools/{weather_tool.id}/"
    assert writer.patch(url, {"description": "New."}, format="json").status_code == 200
    weather_tool.refresh_from_db()
    assert weather_tool.description == "New."

    response = writer.put(url, {"name": "weather", "tool_type": "weather"}, format="json")
    assert response.status_code == 200
    weather_tool.refresh_from_db()
    assert (weather_tool.name, weather_tool.description) == ("weather", "")


def test_changing_a_delegate_keeps_links_in_sync(writer, secretary, calendar_assistant):
    tool = make_delegate_tool("ask", calendar_assistant)
    link(secretary, tool)
    other = type(secretary).objects.create(name="Other", model="m")

    writer.patch(f"/api/v1/tools/{tool.id}/", {"assistant": str(other.id)}, format="json")

    assert AssistantToolLink.objects.get().sub_assistant == other


def test_it_deletes_an_unused_tool(writer, weather_tool):
    assert writer.delete(f"/api/v1/tools/{weather_tool.id}/").status_code == 204
    assert not Tool.objects.exists()


def test_linking_creates_then_updates_the_link(writer, secretary, weather_tool):
    url = f"/api/v1/assistants/{secretary.id}/tools/{weather_tool.id}/"

    created = writer.post(url, {}, format="json")
    assert created.status_code == 201
    assert created.json()["tool"]["name"] == "get_weather"
    assert created.json()["link"]["is_active"] is True

    updated = writer.post(url, {"is_active": False}, format="json")
    assert updated.status_code == 200
    assert updated.json()["link"]["is_active"] is False
    assert AssistantToolLink.objects.get().is_active is False


def test_linking_without_a_body_works(writer, secretary, weather_tool):
    response = writer.post(f"/api/v1/assistants/{secretary.id}/tools/{weather_tool.id}/")
    assert response.status_code == 201


def test_unlinking_removes_the_link(writer, secretary, weather_tool):
    link(secretary, weather_tool)
    url = f"/api/v1/assistants/{secretary.id}/tools/{weather_tool.id}/"

    assert writer.delete(url).status_code == 204
    assert not AssistantToolLink.objects.exists()
    assert writer.delete(url).status_code == 404


def test_linking_unknown_ids_is_404(writer, secretary, weather_tool):
    missing = "00000000-0000-0000-0000-000000000000"
    assert writer.post(f"/api/v1/assistants/{missing}/tools/{weather_tool.id}/").status_code == 404
    assert writer.post(f"/api/v1/assistants/{secretary.id}/tools/{missing}/").status_code == 404
