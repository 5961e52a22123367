"""check_config: every rule against the live database."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from assistants.models import Assistant
from tests.factories import link, make_delegate_tool
from tools.models import AssistantToolLink, Tool

pytestmark = pytest.mark.django_db


def check() -> str:
    out = StringIO()
    call_command("check_config", stdout=out)
    return out.getvalue()


def problems() -> list[str]:
    out = StringIO()
    with pytest.raises(CommandError, match=r"problem\(s\) found"):
        call_command("check_config", stdout=out)
    return out.getvalue().splitlines()


def test_a_valid_config_passes_with_a_one_line_summary(secretary, calendar_assistant, weather_tool):
    link(secretary, weather_tool)
    link(secretary, make_delegate_tool("ask_calendar", calendar_assistant))
    assert check() == (
        "OK: 2 assistants, 2 tools, 2 links, 0 snippets, 0 threads; every rule holds.\n"
    )


def test_the_demo_config_passes():
    call_command("import_config", "demo/config.json", "--no-backup", stdout=StringIO())
    assert check().startswith("OK: 3 assistants, 10 tools, 12 links")


def test_it_lists_an_invalid_input_schema_written_around_validation(weather_tool):
    Tool.objects.filter(pk=weather_tool.pk).update(
        input_schema={"type": "object", "properties": {"city": {"type": "strin"}}}
    )
    [problem] = problems()
    assert problem.startswith(
        "tool \"get_weather\" input_schema/properties/city/type: 'strin' is not valid"
    )


def test_it_lists_a_schema_stored_as_a_string_and_one_not_of_type_object(weather_tool):
    Tool.objects.filter(pk=weather_tool.pk).update(input_schema='{"type": "object"}')
    Tool.objects.create(name="t", tool_type="time", input_schema={"type": "array"})
    assert problems() == [
        'tool "t" input_schema/type: the top-level type of a tool\'s arguments must be "object".',
        'tool "get_weather" input_schema: stored as str, not as a JSON object',
    ]


def test_it_lists_a_delegation_cycle(secretary, calendar_assistant):
    to_calendar = make_delegate_tool("ask_calendar", calendar_assistant)
    to_secretary = make_delegate_tool("ask_secretary", secretary)
    link(secretary, to_calendar)
    # Written around validation: the bulk path skips clean().
    AssistantToolLink.objects.bulk_create(
        [
            AssistantToolLink(
                assistant=calendar_assistant, tool=to_secretary, sub_assistant=secretary
            )
        ]
    )
    [problem] = problems()
    assert "delegation cycle" in problem
    assert "Secretary → Calendar assistant → Secretary" in problem or (
        "Calendar assistant → Secretary → Calendar assistant" in problem
    )


def test_it_lists_a_link_whose_sub_assistant_is_out_of_sync(secretary, calendar_assistant):
    ask = make_delegate_tool("ask_calendar", calendar_assistant)
    link(secretary, ask)
    AssistantToolLink.objects.update(sub_assistant=secretary)
    assert problems() == [
        'link "Secretary" → "ask_calendar" sub_assistant: is "Secretary" but the tool '
        'delegates to "Calendar assistant"'
    ]


def test_it_lists_every_problem(secretary, weather_tool):
    Assistant.objects.filter(pk=secretary.pk).update(instructions="x", model="x" * 10)
    Tool.objects.filter(pk=weather_tool.pk).update(input_schema={"type": "string"})
    Tool.objects.create(
        name="other", tool_type="time", input_schema={"type": "object", "required": "x"}
    )
    assert len(problems()) == 2


@pytest.mark.parametrize("size", [10, 100])
def test_the_check_uses_a_fixed_number_of_queries(size, secretary, django_assert_num_queries):
    for i in range(size):
        link(secretary, Tool.objects.create(name=f"t{i}", tool_type="time"))
    with django_assert_num_queries(8):
        check()
