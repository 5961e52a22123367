"""build_agents builds the whole agent from the config: ModelSettings from model_settings, the
configured output schema as the output type (validated on the way back), instructions rendered
from the run context's variables. Proved with a real Runner.run against a scripted Model (no
network, no key), on the bundle the API serves."""

import asyncio
import json

import pytest
from agents import ModelSettings, RunConfig, Runner, Usage
from agents.exceptions import ModelBehaviorError
from agents.items import ModelResponse
from agents.models.interface import Model, ModelProvider
from config_client.agents import ConfiguredOutput, build_agents, model_settings_of
from config_client.templates import TemplateError
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from openai.types.shared import Reasoning

from assistants.models import Assistant
from tests.factories import link, make_delegate_tool
from tools.models import Tool

pytestmark = pytest.mark.django_db

SETTINGS = {
    "temperature": 0.2,
    "top_p": 0.9,
    "max_output_tokens": 500,
    "reasoning_effort": "low",
    "verbosity": "low",
    "tool_choice": "get_weather",
    "parallel_tool_calls": False,
    "frequency_penalty": 0.1,
    "presence_penalty": -0.1,
}
REPLY_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "weather": {"type": ["string", "null"]}},
    "required": ["text", "weather"],
    "additionalProperties": False,
}
CALENDAR_SCHEMA = {
    "type": "object",
    "properties": {"request": {"type": "string"}},
    "required": ["request"],
    "additionalProperties": False,
}


def saved(assistant: Assistant) -> Assistant:
    assistant.full_clean()
    assistant.save()
    return assistant


@pytest.fixture
def bundle(reader, weather_tool):
    calendar = saved(
        Assistant(
            name="Calendar",
            model="gpt-4.1-mini",
            instructions="You keep {{ user_name }}'s calendar.",
            variables=[{"name": "user_name", "type": "string", "required": True}],
            model_settings={"temperature": 0},
        )
    )
    secretary = saved(
        Assistant(
            name="Secretary",
            model="gpt-4o-mini",
            is_secretary=True,
            instructions="Help {{ user_name }}. Today is {{ today }}.",
            variables=[
                {"name": "user_name", "type": "string", "required": True},
                {"name": "today", "type": "string", "default": "Monday"},
            ],
        )
    )
    link(secretary, weather_tool)
    ask = make_delegate_tool("ask_calendar", calendar)
    Tool.objects.filter(pk=ask.pk).update(input_schema=CALENDAR_SCHEMA, strict=True)
    link(secretary, ask)
    secretary.model_settings = SETTINGS
    secretary.output = {"name": "reply", "schema": REPLY_SCHEMA, "strict": True}
    saved(secretary)
    response = reader.get("/api/v1/config/")
    assert response.status_code == 200
    return response.json()


class ScriptedModel(Model):
    """Answers as the script says and records what each call received: no network."""

    def __init__(self, script):
        self.script = script
        self.calls = []

    async def get_response(
        self, system_instructions, input, model_settings, tools, output_schema, *args, **kwargs
    ):
        self.calls.append(
            {
                "instructions": system_instructions,
                "input": input,
                "settings": model_settings,
                "tools": sorted(tool.name for tool in tools),
                "output_schema": output_schema,
            }
        )
        output = self.script(system_instructions, input)
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args, **kwargs):
        raise NotImplementedError


class ScriptedProvider(ModelProvider):
    def __init__(self, model):
        self.model = model

    def get_model(self, model_name):
        return self.model


def say(text):
    content = [ResponseOutputText(text=text, type="output_text", annotations=[])]
    return [
        ResponseOutputMessage(
            id="msg_1", role="assistant", status="completed", type="message", content=content
        )
    ]


def call_tool(name, arguments):
    return [
        ResponseFunctionToolCall(
            call_id=f"call_{name}", name=name, arguments=json.dumps(arguments), type="function_call"
        )
    ]


def tool_outputs(input) -> dict:
    """{call id: output} of the tool calls answered in this input."""
    if not isinstance(input, list):
        return {}
    return {
        item["call_id"]: item["output"]
        for item in input
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    }


def run(agent, message, model, **kwargs):
    config = RunConfig(model_provider=ScriptedProvider(model), tracing_disabled=True)
    return asyncio.run(Runner.run(agent, message, run_config=config, **kwargs))


def test_the_secretary_calls_a_tool_delegates_and_answers_in_the_configured_schema(
    bundle, monkeypatch
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    agents = build_agents(bundle, handlers={"get_weather": lambda arguments: "sunny"})

    def script(instructions, input):
        if instructions.startswith("You keep"):
            return say("Dentist at 9.")
        answered = tool_outputs(input)
        if "call_get_weather" not in answered:
            return call_tool("get_weather", {"city": "Oslo"})
        if "call_ask_calendar" not in answered:
            return call_tool("ask_calendar", {"request": "What is on today?"})
        reply = {"text": f"Today: {answered['call_ask_calendar']}", "weather": "sunny"}
        return say(json.dumps(reply))

    model = ScriptedModel(script)
    result = run(agents["Secretary"], "My day?", model, context={"variables": {"user_name": "Ann"}})

    assert result.final_output == {"text": "Today: Dentist at 9.", "weather": "sunny"}
    assert [call["instructions"] for call in model.calls] == [
        "Help Ann. Today is Monday.",
        "Help Ann. Today is Monday.",
        "You keep Ann's calendar.",
        "Help Ann. Today is Monday.",
    ]
    first = model.calls[0]
    assert first["settings"] == ModelSettings(
        temperature=0.2,
        top_p=0.9,
        max_tokens=500,
        reasoning=Reasoning(effort="low"),
        verbosity="low",
        tool_choice="get_weather",
        parallel_tool_calls=False,
        frequency_penalty=0.1,
        presence_penalty=-0.1,
    )
    assert first["tools"] == ["ask_calendar", "get_weather"]
    schema = first["output_schema"]
    assert (schema.name(), schema.json_schema(), schema.is_strict_json_schema()) == (
        "reply",
        REPLY_SCHEMA,
        True,
    )
    # The delegate runs with its own settings and no output schema (free text).
    delegate = model.calls[2]
    assert delegate["settings"] == ModelSettings(temperature=0)
    assert delegate["output_schema"] is None


def test_an_answer_that_breaks_the_output_schema_fails_the_run(bundle):
    agents = build_agents(bundle, handlers={"get_weather": lambda arguments: "sunny"})
    model = ScriptedModel(lambda instructions, input: say(json.dumps({"text": 3})))
    with pytest.raises(ModelBehaviorError, match=r"output 'reply' does not match its schema"):
        run(agents["Secretary"], "?", model, context={"variables": {"user_name": "Ann"}})


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"variables": {}}, "variable “user_name” is required"),
        (None, "variable “user_name” is required"),
        ({"variables": {"user_name": 7}}, "variable “user_name” must be of type string"),
        ({"variables": {"user_name": "A", "usr": "x"}}, "“usr” is not declared by any"),
    ],
)
def test_a_run_with_bad_variables_fails_with_template_error_before_any_model_call(
    bundle, context, message
):
    agents = build_agents(bundle)
    model = ScriptedModel(lambda instructions, input: say("never"))
    with pytest.raises(TemplateError, match=message):
        run(agents["Secretary"], "?", model, context=context)
    assert model.calls == []


def test_the_model_settings_map_onto_the_sdk_and_empty_ones_are_the_defaults():
    assert model_settings_of({}) == ModelSettings()
    assert model_settings_of({"max_output_tokens": 9, "reasoning_effort": "none"}) == (
        ModelSettings(max_tokens=9, reasoning=Reasoning(effort="none"))
    )


def test_the_configured_output_validates_what_comes_back():
    output = ConfiguredOutput({"name": "reply", "schema": REPLY_SCHEMA, "strict": False})
    assert output.validate_json('{"text": "a", "weather": null}') == {"text": "a", "weather": None}
    with pytest.raises(ModelBehaviorError, match="is not JSON"):
        output.validate_json("not json")
    with pytest.raises(ModelBehaviorError, match=r"at /: 'weather' is a required property"):
        output.validate_json('{"text": "a"}')
    assert output.is_strict_json_schema() is False and not output.is_plain_text()
