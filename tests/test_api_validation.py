"""Every validation rule of docs/contract.md, through the API: 400 naming the field (rule 7:
409 on DELETE)."""

import pytest

from assistants.models import Assistant
from tests.factories import assistant_payload, key_client, link, make_delegate_tool, tool_payload
from tools.models import AssistantToolLink, Tool

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return key_client("write")


# Rule 1: input_schema


def test_it_names_the_json_pointer_of_a_bad_input_schema(client):
    body = tool_payload(input_schema={"type": "object", "properties": {"city": {"type": "strin"}}})
    response = client.post("/api/v1/tools/", body, format="json")

    assert response.status_code == 400
    assert response.json()["input_schema"][0].startswith(
        "/properties/city/type: 'strin' is not valid"
    )
    assert not Tool.objects.exists()


def test_it_requires_a_top_level_object_type(client):
    response = client.post(
        "/api/v1/tools/", tool_payload(input_schema={"type": "string"}), format="json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "input_schema": ['/type: the top-level type of a tool\'s arguments must be "object".']
    }


@pytest.mark.parametrize("bad", ["[]", 3, "not json", True, [1]])
def test_it_rejects_an_input_schema_that_is_not_an_object(client, bad):
    response = client.post("/api/v1/tools/", tool_payload(input_schema=bad), format="json")
    assert response.status_code == 400
    assert response.json()["input_schema"][0].startswith("/:")


def test_it_rejects_an_empty_input_schema(client):
    response = client.post("/api/v1/tools/", tool_payload(input_schema=[]), format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["input_schema"]


def test_it_rejects_a_null_input_schema(client):
    response = client.post("/api/v1/tools/", tool_payload(input_schema=None), format="json")
    assert response.status_code == 400
    assert "input_schema" in response.json()


def test_it_accepts_the_legacy_string_schema_and_returns_it_parsed(client):
    body = tool_payload(input_schema='{"type": "object", "properties": {"x": {"type": "integer"}}}')
    response = client.post("/api/v1/tools/", body, format="json")

    assert response.status_code == 201
    expected = {"type": "object", "properties": {"x": {"type": "integer"}}}
    assert response.json()["input_schema"] == expected
    assert Tool.objects.get().input_schema == expected


def test_it_checks_the_schema_on_patch_too(weather_tool, client):
    response = client.patch(
        f"/api/v1/tools/{weather_tool.id}/",
        {"input_schema": {"type": "object", "required": "city"}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["input_schema"][0].startswith("/required:")


# Rule 2: tool names


@pytest.mark.parametrize("name", ["has space", "x" * 65, "dot.name", "ünicode", ""])
def test_it_rejects_tool_names_the_llm_cannot_call(client, name):
    response = client.post("/api/v1/tools/", tool_payload(name=name), format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["name"]


def test_it_rejects_a_duplicate_tool_name(client, weather_tool):
    response = client.post("/api/v1/tools/", tool_payload(name="get_weather"), format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["name"]


# Rule 3: the delegate of sub_assistant tools


def test_a_sub_assistant_tool_needs_a_delegate(client):
    response = client.post(
        "/api/v1/tools/", tool_payload(name="ask", tool_type="sub_assistant"), format="json"
    )
    assert response.status_code == 400
    assert list(response.json()) == ["assistant"]


def test_other_tools_must_not_name_a_delegate(client, calendar_assistant):
    body = tool_payload(assistant=str(calendar_assistant.id))
    response = client.post("/api/v1/tools/", body, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["assistant"]


def test_an_unknown_delegate_is_a_field_error(client):
    body = tool_payload(tool_type="sub_assistant", assistant="00000000-0000-0000-0000-000000000000")
    response = client.post("/api/v1/tools/", body, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["assistant"]


# Rule 4: delegation cycles


def test_linking_a_tool_that_closes_a_cycle_is_refused_with_the_cycle(
    client, secretary, calendar_assistant
):
    link(secretary, make_delegate_tool("ask_calendar", calendar_assistant))
    ask_secretary = make_delegate_tool("ask_secretary", secretary)

    response = client.post(
        f"/api/v1/assistants/{calendar_assistant.id}/tools/{ask_secretary.id}/", {}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "tool": [
            "This would create a delegation cycle: "
            "Calendar assistant → Secretary → Calendar assistant."
        ]
    }
    assert not AssistantToolLink.objects.filter(assistant=calendar_assistant).exists()


def test_an_assistant_may_not_delegate_to_itself(client, secretary):
    ask_self = make_delegate_tool("ask_self", secretary)
    response = client.post(
        f"/api/v1/assistants/{secretary.id}/tools/{ask_self.id}/", {}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["tool"] == [
        "This would create a delegation cycle: Secretary → Secretary."
    ]


def test_changing_a_tools_delegate_into_a_cycle_is_refused(client, secretary, calendar_assistant):
    link(secretary, make_delegate_tool("ask_calendar", calendar_assistant))
    ask_other = make_delegate_tool("ask_other", Assistant.objects.create(name="Other", model="m"))
    link(calendar_assistant, ask_other)

    response = client.patch(
        f"/api/v1/tools/{ask_other.id}/", {"assistant": str(secretary.id)}, format="json"
    )

    assert response.status_code == 400
    assert "delegation cycle" in response.json()["assistant"][0]
    assert "Secretary" in response.json()["assistant"][0]


def test_reactivating_a_link_that_closes_a_cycle_is_refused(client, secretary, calendar_assistant):
    link(secretary, make_delegate_tool("ask_calendar", calendar_assistant))
    ask_secretary = make_delegate_tool("ask_secretary", secretary)
    link(calendar_assistant, ask_secretary, is_active=False)

    response = client.post(
        f"/api/v1/assistants/{calendar_assistant.id}/tools/{ask_secretary.id}/",
        {"is_active": True},
        format="json",
    )

    assert response.status_code == 400
    assert "delegation cycle" in response.json()["tool"][0]


# Rule 5: what each assistant type needs


def test_an_llm_assistant_needs_a_model(client):
    response = client.post("/api/v1/assistants/", assistant_payload(model=""), format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["model"]


def test_an_openai_api_assistant_needs_an_openai_id(client):
    body = assistant_payload(assistant_type="openai_api", model="")
    response = client.post("/api/v1/assistants/", body, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["openai_assistant_id"]


def test_switching_type_without_the_needed_field_is_refused(client, secretary):
    response = client.patch(
        f"/api/v1/assistants/{secretary.id}/", {"assistant_type": "openai_api"}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()) == ["openai_assistant_id"]


def test_an_unknown_assistant_type_is_refused(client):
    body = assistant_payload(assistant_type="gpt")
    response = client.post("/api/v1/assistants/", body, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["assistant_type"]


# Rule 6: one active secretary


def test_a_second_active_secretary_is_refused(client, secretary):
    body = assistant_payload(name="Other", is_secretary=True)
    response = client.post("/api/v1/assistants/", body, format="json")
    assert response.status_code == 400
    assert "already the active secretary" in response.json()["is_secretary"][0]


def test_a_second_inactive_secretary_is_fine(client, secretary):
    body = assistant_payload(name="Other", is_secretary=True, is_active=False)
    assert client.post("/api/v1/assistants/", body, format="json").status_code == 201


def test_names_of_assistants_are_unique(client, secretary):
    response = client.post(
        "/api/v1/assistants/", assistant_payload(name="Secretary"), format="json"
    )
    assert response.status_code == 400
    assert list(response.json()) == ["name"]


# Rule 7: deleting something still referenced


def test_deleting_a_delegate_assistant_is_refused_listing_the_tools(
    client, secretary, calendar_assistant
):
    make_delegate_tool("ask_calendar", calendar_assistant)

    response = client.delete(f"/api/v1/assistants/{calendar_assistant.id}/")

    assert response.status_code == 409
    body = response.json()
    assert body["references"] == ["tool “ask_calendar” delegates to it"]
    assert "Calendar assistant" in body["detail"]
    assert Assistant.objects.filter(pk=calendar_assistant.pk).exists()


def test_deleting_a_linked_tool_is_refused_listing_the_assistants(
    client, secretary, calendar_assistant, weather_tool
):
    link(secretary, weather_tool)
    link(calendar_assistant, weather_tool, is_active=False)

    response = client.delete(f"/api/v1/tools/{weather_tool.id}/")

    assert response.status_code == 409
    assert response.json()["references"] == [
        "assistant “Calendar assistant” uses it",
        "assistant “Secretary” uses it",
    ]
    assert Tool.objects.filter(pk=weather_tool.pk).exists()


def test_a_tool_can_be_deleted_once_unlinked(client, secretary, weather_tool):
    link(secretary, weather_tool)
    assert (
        client.delete(f"/api/v1/assistants/{secretary.id}/tools/{weather_tool.id}/").status_code
        == 204
    )
    assert client.delete(f"/api/v1/tools/{weather_tool.id}/").status_code == 204
    assert not Tool.objects.exists()
