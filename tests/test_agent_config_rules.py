"""The whole agent in the config: model settings (their JSON Schema and rule 10), structured
output (rules 1 and 8 on its schema) and declared variables (rule 11), through the API."""

import pytest
from django.test import override_settings
from django.urls import reverse

from assistants.models import Assistant
from snippets.models import Snippet
from tests.factories import (
    OPTIONAL_SCHEMA,
    STRICT_READY_SCHEMA,
    assistant_form,
    assistant_payload,
    link,
)
from tools.models import AssistantToolLink, Tool

pytestmark = pytest.mark.django_db


def create(writer, **fields):
    return writer.post("/api/v1/assistants/", assistant_payload(**fields), format="json")


def patch(writer, assistant, **fields):
    return writer.patch(f"/api/v1/assistants/{assistant.pk}/", fields, format="json")


# --- model settings -----------------------------------------------------------------------------


def test_model_settings_within_the_schema_are_stored_and_shown(writer):
    chosen = {
        "temperature": 0.2,
        "top_p": 1,
        "max_output_tokens": 2048,
        "reasoning_effort": "low",
        "verbosity": "high",
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "frequency_penalty": -2,
        "presence_penalty": 1.5,
    }
    response = create(writer, model_settings=chosen)
    assert response.status_code == 201, response.json()
    assert response.json()["model_settings"] == chosen
    assert Assistant.objects.get(name="Helper").model_settings == chosen


def test_an_unknown_model_setting_is_refused_by_name(writer):
    response = create(writer, model_settings={"temperture": 0.5, "seed": 3})
    assert response.status_code == 400
    messages = response.json()["model_settings"]
    assert messages[0].startswith("/seed: unknown model setting “seed”")
    assert messages[1].startswith("/temperture: unknown model setting “temperture”")
    assert not Assistant.objects.exists()


@pytest.mark.parametrize(
    ("model_settings", "pointer"),
    [
        ({"temperature": 2.5}, "/temperature"),
        ({"top_p": -0.1}, "/top_p"),
        ({"max_output_tokens": 0}, "/max_output_tokens"),
        ({"max_output_tokens": 128_001}, "/max_output_tokens"),
        ({"max_output_tokens": 100.0}, "/max_output_tokens"),
        ({"reasoning_effort": "extreme"}, "/reasoning_effort"),
        ({"verbosity": "loud"}, "/verbosity"),
        ({"parallel_tool_calls": "yes"}, "/parallel_tool_calls"),
        ({"presence_penalty": 3}, "/presence_penalty"),
        ({"temperature": True}, "/temperature"),
        ({"tool_choice": "not a tool"}, "/tool_choice"),
    ],
)
def test_a_model_setting_out_of_range_is_refused_with_its_pointer(writer, model_settings, pointer):
    response = create(writer, model_settings=model_settings)
    assert response.status_code == 400
    assert response.json()["model_settings"][0].startswith(pointer + ": ")


def test_model_settings_that_are_no_object_are_refused(writer):
    response = create(writer, model_settings=[1])
    assert response.json() == {"model_settings": ["/: must be a JSON object, not list."]}


@override_settings(MAX_OUTPUT_TOKENS=4096, REASONING_EFFORTS=["low", "high"])
def test_the_bounds_come_from_the_settings(writer):
    assert create(writer, model_settings={"max_output_tokens": 4097}).status_code == 400
    assert create(writer, model_settings={"reasoning_effort": "medium"}).status_code == 400
    assert create(writer, model_settings={"max_output_tokens": 4096}).status_code == 201


# --- rule 10: tool_choice naming a tool ---------------------------------------------------------


@pytest.fixture
def chooser(weather_tool):
    assistant = Assistant.objects.create(name="Chooser", model="m")
    link(assistant, weather_tool)
    assistant.model_settings = {"tool_choice": "get_weather"}
    assistant.full_clean()
    assistant.save()
    return assistant


def test_a_tool_choice_must_name_an_active_linked_tool(writer, weather_tool):
    response = create(writer, model_settings={"tool_choice": "get_weather"})
    assert response.status_code == 400
    assert response.json()["model_settings"] == [
        "/tool_choice: “get_weather” is not one of this assistant's active linked tools; link "
        "and activate it first, or choose auto, required or none."
    ]
    assistant = Assistant.objects.create(name="Linked", model="m")
    link(assistant, weather_tool, is_active=False)
    assert patch(writer, assistant, model_settings={"tool_choice": "get_weather"}).status_code == (
        400
    )
    AssistantToolLink.objects.filter(assistant=assistant).update(is_active=True)
    assert patch(writer, assistant, model_settings={"tool_choice": "get_weather"}).status_code == (
        200
    )


REFUSAL = (
    "The model settings of “Chooser” name “get_weather” as tool_choice; change their "
    "tool_choice first."
)


def test_deactivating_the_chosen_tools_link_is_refused_naming_the_assistant(writer, chooser):
    tool = Tool.objects.get(name="get_weather")
    url = f"/api/v1/assistants/{chooser.pk}/tools/{tool.pk}/"
    response = writer.post(url, {"is_active": False}, format="json")
    assert response.status_code == 400
    assert response.json() == {"is_active": [REFUSAL]}
    assert AssistantToolLink.objects.get(assistant=chooser).is_active


def test_unlinking_the_chosen_tool_is_refused_naming_the_assistant(writer, chooser):
    tool = Tool.objects.get(name="get_weather")
    response = writer.delete(f"/api/v1/assistants/{chooser.pk}/tools/{tool.pk}/")
    assert response.status_code == 400
    assert REFUSAL in str(response.json())
    assert AssistantToolLink.objects.filter(assistant=chooser).exists()


def test_deactivating_or_renaming_the_chosen_tool_is_refused_naming_the_assistant(writer, chooser):
    tool = Tool.objects.get(name="get_weather")
    response = writer.patch(f"/api/v1/tools/{tool.pk}/", {"is_active": False}, format="json")
    assert response.json() == {"is_active": [REFUSAL]}
    response = writer.patch(f"/api/v1/tools/{tool.pk}/", {"name": "weather"}, format="json")
    assert response.json() == {"name": [REFUSAL]}
    tool.refresh_from_db()
    assert (tool.name, tool.is_active) == ("get_weather", True)


def test_the_tool_may_go_once_the_tool_choice_no_longer_names_it(writer, chooser):
    assert patch(writer, chooser, model_settings={"tool_choice": "required"}).status_code == 200
    tool = Tool.objects.get(name="get_weather")
    assert writer.delete(f"/api/v1/assistants/{chooser.pk}/tools/{tool.pk}/").status_code == 204


# --- structured output --------------------------------------------------------------------------


def test_a_structured_output_is_stored_with_strict_defaulting_to_false(writer):
    output = {
        "name": "answer",
        "schema": {"type": "object", "properties": {"x": {"type": "string"}}},
    }
    response = create(writer, output=output)
    assert response.status_code == 201, response.json()
    assert response.json()["output"] == {**output, "strict": False}


def test_a_strict_output_schema_must_pass_strict_mode_naming_the_pointer(writer):
    response = create(writer, output={"name": "answer", "schema": OPTIONAL_SCHEMA, "strict": True})
    assert response.status_code == 400
    (message,) = response.json()["output"]
    assert message.startswith("/schema/properties/tz: optional")
    ready = {"name": "answer", "schema": STRICT_READY_SCHEMA, "strict": True}
    assert create(writer, output=ready).status_code == 201


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ({"name": "a", "schema": {"type": "array"}}, "/schema/type: "),
        (
            {"name": "a", "schema": {"type": "object", "properties": {"x": {"type": "strin"}}}},
            "/schema/properties/x/type: ",
        ),
        ({"name": "a b", "schema": {"type": "object"}}, "/name: "),
        ({"name": "a", "schema": {"type": "object"}, "format": "json"}, "/format: unknown key"),
        ({"name": "a"}, "/schema: required"),
        ({"name": "a", "schema": "{}"}, "/schema: must be a JSON object"),
        ({"name": "a", "schema": {"type": "object"}, "strict": 1}, "/strict: "),
        ("answer", "/: must be null or a JSON object"),
    ],
)
def test_a_broken_output_is_refused_with_its_pointer(writer, output, message):
    response = create(writer, output=output)
    assert response.status_code == 400
    assert response.json()["output"][0].startswith(message)


# --- variables and placeholders (rule 11) -------------------------------------------------------


def test_declared_variables_are_stored_with_every_key(writer):
    variables = [
        {"name": "user_name", "type": "string", "required": True},
        {"name": "tone", "type": "enum", "enum": ["formal", "casual"], "default": "casual"},
    ]
    response = create(
        writer, instructions="Hello {{ user_name }}, be {{tone}}. \\{{ stays", variables=variables
    )
    assert response.status_code == 201, response.json()
    assert response.json()["variables"] == [
        {
            "name": "user_name",
            "type": "string",
            "required": True,
            "default": None,
            "description": "",
        },
        {
            "name": "tone",
            "type": "enum",
            "required": False,
            "default": "casual",
            "enum": ["formal", "casual"],
            "description": "",
        },
    ]


def test_a_placeholder_naming_no_declared_variable_is_refused(writer):
    response = create(writer, instructions="Hi {{ user_name }}")
    assert response.status_code == 400
    assert response.json() == {
        "instructions": [
            "placeholders name undeclared variables: “user_name”; declare them under variables."
        ]
    }


def test_a_template_syntax_error_names_its_character_offset(writer):
    response = create(writer, instructions="Hi {{ user name }}")
    assert response.status_code == 400
    assert "at character 3" in response.json()["instructions"][0]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ([{"name": "Name", "type": "string"}], "/0/name: "),
        ([{"name": "n", "type": "date"}], "/0/type: "),
        ([{"name": "n", "type": "integer", "default": "3"}], "/0/default: must be of type integer"),
        ([{"name": "n", "type": "boolean", "default": 1}], "/0/default: "),
        ([{"name": "n", "type": "enum"}], "/0/enum: "),
        ([{"name": "n", "type": "enum", "enum": ["a"], "default": "b"}], "/0/default: "),
        ([{"name": "n", "type": "string", "enum": ["a"]}], "/0/enum: only"),
        (
            [{"name": "n", "type": "string"}, {"name": "n", "type": "integer"}],
            "/1/name: “n” is declared twice",
        ),
        ([{"name": "n", "type": "string", "secret": True}], "/0/secret: unknown key"),
        ([{"name": "n", "type": "string", "required": "yes"}], "/0/required: "),
        ({"name": "n"}, "/: must be a list"),
        (["n"], "/0: must be an object"),
    ],
)
def test_a_broken_variable_is_refused_with_its_pointer(writer, variables, message):
    response = create(writer, variables=variables)
    assert response.status_code == 400
    assert response.json()["variables"][0].startswith(message)
    assert not Assistant.objects.exists()


# --- the admin ----------------------------------------------------------------------------------


def change_form(assistant, **overrides) -> dict:
    """The admin's change form of `assistant` as shown, with its one link (chooser's)."""
    (row,) = assistant.tool_links.all()
    data = assistant_form(
        name=assistant.name,
        model=assistant.model,
        instructions=assistant.instructions,
        **{
            "tool_links-TOTAL_FORMS": "1",
            "tool_links-INITIAL_FORMS": "1",
            "tool_links-0-id": str(row.pk),
            "tool_links-0-assistant": str(assistant.pk),
            "tool_links-0-tool": str(row.tool_id),
            "tool_links-0-is_active": "on",
        },
    )
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def change_url(assistant) -> str:
    return reverse("admin:assistants_assistant_change", args=[assistant.pk])


@pytest.mark.parametrize(
    "edit", [{"tool_links-0-DELETE": "on"}, {"tool_links-0-is_active": None}], ids=str
)
def test_the_admin_refuses_removing_or_deactivating_the_chosen_tools_link(
    admin_client, chooser, edit
):
    response = admin_client.post(change_url(chooser), change_form(chooser, **edit))
    assert response.status_code == 200  # the form again, with the error
    assert REFUSAL in response.content.decode()
    assert AssistantToolLink.objects.get(assistant=chooser).is_active


def test_the_admin_warns_of_a_declared_variable_no_placeholder_uses_and_saves(admin_client):
    assistant = Assistant.objects.create(
        name="Greeter",
        model="m",
        instructions="Hi {{ name }}.",
        variables=[{"name": "name", "type": "string", "required": False, "default": None}],
    )
    link(assistant, Tool.objects.create(name="get_time", tool_type="time"))
    response = admin_client.post(
        change_url(assistant), change_form(assistant, instructions="Hi."), follow=True
    )
    assert response.status_code == 200
    messages = [str(message) for message in response.context["messages"]]
    assert "Declared but used by no placeholder: “name”." in messages
    assistant.refresh_from_db()
    assert assistant.instructions == "Hi."


# --- rule 11 from a snippet's side ---------------------------------------------------------------


def test_a_snippet_edit_bringing_an_undeclared_placeholder_to_an_includer_is_refused(writer):
    tone = Snippet.objects.create(name="tone", text="Be brief.")
    Assistant.objects.create(name="Includer", model="m", instructions="Hi. {{> tone }}")
    response = writer.patch(
        f"/api/v1/snippets/{tone.pk}/", {"text": "Be brief, {{ user_name }}."}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "text": [
            "assistant “Includer” includes it: placeholders name undeclared variables: "
            "“user_name”; declare them there."
        ]
    }
    tone.refresh_from_db()
    assert tone.text == "Be brief."
