"""The validation rules of docs/contract.md, enforced by the shared model/service code (admin,
API and import)."""

import pytest
from django.core.exceptions import ValidationError

from assistants.models import Assistant
from assistants.services import assistant_create, assistant_delete, assistant_update, tool_link
from tests.factories import link, make_delegate_tool
from tools.models import Tool
from tools.services import tool_create, tool_delete, tool_update
from tools.validators import validate_input_schema

pytestmark = pytest.mark.django_db


def errors_of(call) -> dict:
    with pytest.raises(ValidationError) as exc_info:
        call()
    return exc_info.value.message_dict


# Rule 1: input_schema is a valid JSON Schema object with top-level type object.


def test_it_names_the_json_pointer_of_a_bad_schema_part():
    errors = errors_of(
        lambda: tool_create(
            name="get_weather",
            tool_type="weather",
            input_schema={"type": "object", "properties": {"city": {"type": "strin"}}},
        )
    )
    assert errors["input_schema"][0].startswith("/properties/city/type: 'strin' is not valid")
    assert not Tool.objects.exists()


def test_it_requires_a_top_level_object_type():
    errors = errors_of(
        lambda: tool_create(name="t", tool_type="time", input_schema={"type": "string"})
    )
    assert errors["input_schema"] == [
        '/type: the top-level type of a tool\'s arguments must be "object".'
    ]


@pytest.mark.parametrize("bad", [[], "[]", 3, None, "not json"])
def test_it_rejects_schemas_that_are_not_objects(bad):
    with pytest.raises(ValidationError) as exc_info:
        validate_input_schema(bad)
    assert exc_info.value.messages[0].startswith("/:")


def test_it_accepts_the_legacy_string_form_and_stores_it_parsed():
    tool = tool_create(
        name="get_time", tool_type="time", input_schema='{"type": "object", "properties": {}}'
    )
    tool.refresh_from_db()
    assert tool.input_schema == {"type": "object", "properties": {}}


def test_it_checks_against_the_draft_named_by_dollar_schema():
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"when": {"type": "string"}},
        "additionalProperties": False,
    }
    assert validate_input_schema(draft7) == draft7
    with pytest.raises(ValidationError, match="/properties/when/minLength"):
        validate_input_schema({**draft7, "properties": {"when": {"minLength": -1}}})


# Rule 2: tool names.


@pytest.mark.parametrize("name", ["has space", "x" * 65, "dot.name", ""])
def test_it_rejects_tool_names_the_llm_cannot_call(name):
    errors = errors_of(lambda: tool_create(name=name, tool_type="time"))
    assert "name" in errors


def test_it_accepts_hyphens_and_underscores_in_tool_names():
    assert tool_create(name="get-time_2", tool_type="time").pk


# Rule 3: delegates only on sub-assistant tools.


def test_a_sub_assistant_tool_must_name_a_delegate():
    errors = errors_of(lambda: tool_create(name="ask", tool_type="sub_assistant"))
    assert errors["assistant"] == ["A sub-assistant tool must name the assistant it delegates to."]


def test_other_tools_must_not_name_a_delegate(calendar_assistant):
    errors = errors_of(
        lambda: tool_create(name="w", tool_type="weather", assistant=calendar_assistant)
    )
    assert errors["assistant"] == ["Only sub-assistant tools name a delegate assistant."]


# Rule 4: no delegation cycles.


def test_it_rejects_an_assistant_delegating_to_itself(secretary):
    tool = make_delegate_tool("ask_secretary", secretary)
    errors = errors_of(lambda: tool_link(assistant=secretary, tool=tool))
    assert errors["tool"] == ["This would create a delegation cycle: Secretary → Secretary."]


def test_it_rejects_a_two_step_cycle_and_names_it(secretary, calendar_assistant):
    link(secretary, make_delegate_tool("ask_calendar", calendar_assistant))
    back = make_delegate_tool("ask_secretary", secretary)
    errors = errors_of(lambda: tool_link(assistant=calendar_assistant, tool=back))
    assert errors["tool"] == [
        "This would create a delegation cycle: Calendar assistant → Secretary → Calendar assistant."
    ]
    assert not calendar_assistant.tool_links.exists()


def test_it_rejects_a_cycle_made_by_changing_a_tools_delegate(secretary, calendar_assistant):
    reminders = Assistant.objects.create(name="Reminders", model="m")
    link(secretary, make_delegate_tool("ask_calendar", calendar_assistant))
    ask = make_delegate_tool("ask_other", reminders)
    link(calendar_assistant, ask)
    errors = errors_of(lambda: tool_update(tool=ask, assistant=secretary))
    assert "Calendar assistant → Secretary → Calendar assistant" in errors["assistant"][0]


def test_inactive_links_do_not_make_cycles(secretary, calendar_assistant):
    link(secretary, make_delegate_tool("ask_calendar", calendar_assistant), is_active=False)
    back = make_delegate_tool("ask_secretary", secretary)
    assert tool_link(assistant=calendar_assistant, tool=back)[1] is True


def test_it_rejects_reactivating_a_link_that_closes_a_cycle(secretary, calendar_assistant):
    link(secretary, make_delegate_tool("ask_calendar", calendar_assistant), is_active=False)
    tool_link(assistant=calendar_assistant, tool=make_delegate_tool("ask_secretary", secretary))
    ask_calendar = Tool.objects.get(name="ask_calendar")
    errors = errors_of(lambda: tool_link(assistant=secretary, tool=ask_calendar, is_active=True))
    assert "Secretary → Calendar assistant → Secretary" in errors["tool"][0]


# Rule 5: type-specific required fields.


def test_an_llm_assistant_needs_a_model():
    errors = errors_of(lambda: assistant_create(name="A", assistant_type="llm"))
    assert errors["model"] == ["An LLM assistant needs a model."]


def test_an_openai_api_assistant_needs_its_openai_id():
    errors = errors_of(
        lambda: assistant_create(name="A", assistant_type="openai_api", openai_assistant_id="")
    )
    assert errors["openai_assistant_id"] == [
        "An OpenAI Assistants API assistant needs an OpenAI assistant id."
    ]


# Rule 6: one active secretary.


def test_a_second_active_secretary_is_refused_by_name(secretary):
    errors = errors_of(lambda: assistant_create(name="B", model="m", is_secretary=True))
    assert "“Secretary” is already the active secretary" in errors["is_secretary"][0]


def test_a_secretary_can_be_replaced_once_the_old_one_is_inactive(secretary):
    assistant_update(assistant=secretary, is_active=False)
    assert assistant_create(name="B", model="m", is_secretary=True).is_secretary


# Rule 7: deleting something still referenced.


def test_deleting_a_delegate_is_refused_with_what_references_it(secretary, calendar_assistant):
    make_delegate_tool("ask_calendar", calendar_assistant)
    with pytest.raises(ValidationError) as exc_info:
        assistant_delete(assistant=calendar_assistant)
    assert exc_info.value.messages == [
        "“Calendar assistant” is still referenced: tool “ask_calendar” delegates to it."
    ]
    assert Assistant.objects.filter(pk=calendar_assistant.pk).exists()


def test_deleting_a_linked_tool_is_refused_with_the_assistants(secretary, weather_tool):
    link(secretary, weather_tool)
    with pytest.raises(ValidationError, match="assistant “Secretary” uses it"):
        tool_delete(tool=weather_tool)
    assert Tool.objects.filter(pk=weather_tool.pk).exists()


def test_an_unreferenced_tool_can_be_deleted(weather_tool):
    tool_delete(tool=weather_tool)
    assert not Tool.objects.exists()


@pytest.mark.parametrize(
    ("schema", "error"),
    [
        ({"type": "object", "$schema": []}, "/$schema: must be a string"),
        ({"type": "object", "$schema": 5}, "/$schema: must be a string"),
        (
            {"type": "object", "$schema": "https://example.com/mine"},
            "/$schema: unknown JSON Schema",
        ),
        (
            {"type": "object", "properties": {"a": {"minimum": float("nan")}}},
            "/properties/a/minimum: nan is not a JSON number",
        ),
        ({"type": "object", "description": "a\x00b"}, "/description: must not contain NUL"),
        ({"type": "object", "properties": {"a\x00": {}}}, "/properties/a\x00: keys must not"),
    ],
)
def test_it_rejects_schemas_that_cannot_be_checked_or_stored(schema, error):
    with pytest.raises(ValidationError) as exc_info:
        validate_input_schema(schema)
    assert exc_info.value.messages[0].startswith(error)


def test_a_tool_name_with_a_trailing_newline_is_refused():
    errors = errors_of(lambda: tool_create(name="get_weather\n", tool_type="time"))
    assert "name" in errors
