"""OpenAI Agents SDK factory: `build_agents(bundle)` → `{assistant name: agents.Agent}`.

Needs the `agents` extra (`pip install "./client[agents]"`); building makes no network call and
needs no OpenAI key.

Each configured tool becomes one `FunctionTool` whose `params_json_schema` is the tool's own
`input_schema` and whose `strict_json_schema` is the tool's `strict` flag (False when the bundle
predates the flag). A `sub_assistant` tool runs its delegate agent with `Runner.run`, the model's
JSON arguments as the delegate's input message, inside the caller's run config: the SDK's
`agent.as_tool()` would replace the configured schema with `{"input": string}`.
Other tools run the caller's handler: `handlers={"tool_name": callable}`; the callable gets the
arguments as a dict (an `async def` is awaited, a plain function runs in a worker thread) and
returns the tool's output. A tool without one fails the run with MissingToolHandler when called.

Only `llm` assistants become agents: an `openai_api` assistant lives in OpenAI's Assistants API,
which the Agents SDK does not drive; a delegate tool pointing at one needs a handler.

The whole agent comes from the config (docs/agent-config.md):
- `model_settings` become the agent's `ModelSettings` (`max_output_tokens` → `max_tokens`,
  `reasoning_effort` → `Reasoning(effort=…)`, the rest by the same name);
- `output` becomes the agent's output type: `ConfiguredOutput`, exactly the configured JSON
  Schema (nothing rewritten, `strict` as configured), every answer validated against it;
- the instructions are a function that renders the template (config_client.templates, as the
  server does) from the run context's variables: `Runner.run(agent, input,
  context={"variables": {...}})` (or any context object with a `variables` attribute). The
  variables are the run's, shared by the agents it reaches: each renders the ones it declares; a
  name that no assistant of the bundle declares, a required variable missing, or a value of the
  wrong type raises TemplateError before any model call.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

from agents import Agent, FunctionTool, ModelSettings, RunConfig, RunContextWrapper, Runner
from agents.agent_output import AgentOutputSchemaBase
from agents.exceptions import ModelBehaviorError
from agents.tool_context import ToolContext
from jsonschema import Draft202012Validator
from openai.types.shared import Reasoning

from config_client._bundle import Bundle, check_bundle
from config_client.outcomes import record_runs
from config_client.templates import TemplateError, render

ToolHandler = Callable[[dict[str, Any]], Any]


class MissingToolHandler(LookupError):
    """The model called a tool that has no handler (and is not a delegation)."""


def build_agents(
    bundle: Bundle,
    *,
    handlers: Mapping[str, ToolHandler] | None = None,
    max_turns: int = 10,
    record_outcomes: Any = None,
) -> dict[str, Agent[Any]]:
    """One Agent per active `llm` assistant of the bundle, keyed by assistant name.

    `handlers` maps tool names to callables; a handler given for a sub_assistant tool replaces
    the delegation. `max_turns` bounds each delegate's run. `record_outcomes`: a ConfigClient
    that records each agent's runs, errors, tool calls and tokens (config_client.outcomes).
    """
    check_bundle(bundle)
    handlers = dict(handlers or {})
    declared = {
        variable["name"]
        for config in bundle["assistants"]
        for variable in config.get("variables") or []
    }
    by_id: dict[str, Agent[Any]] = {}
    for config in bundle["assistants"]:
        if config.get("assistant_type", "llm") == "llm":
            output = config.get("output")
            by_id[config["id"]] = Agent(
                name=config["name"],
                instructions=_instructions(config, declared),
                model=config.get("model") or None,
                model_settings=model_settings_of(config.get("model_settings") or {}),
                output_type=ConfiguredOutput(output) if output else None,
            )
    for config in bundle["assistants"]:
        agent = by_id.get(config["id"])
        if agent is None:
            continue
        for tool in config["tools"]:
            handler = handlers.get(tool["name"])
            delegate = tool.get("sub_assistant")
            if handler is None and delegate:
                invoke = _delegation(tool["name"], delegate, by_id.get(delegate["id"]), max_turns)
            else:
                invoke = _handled(tool["name"], config["name"], handler)
            agent.tools.append(_function_tool(tool, invoke))
    if record_outcomes is not None:
        record_runs(by_id, bundle=bundle, client=record_outcomes)
    return {agent.name: agent for agent in by_id.values()}


# The configured model settings that keep their name in ModelSettings.
_SAME_NAME_SETTINGS = (
    "temperature",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "tool_choice",
    "parallel_tool_calls",
    "verbosity",
)


def model_settings_of(settings: Mapping[str, Any]) -> ModelSettings:
    """The SDK's ModelSettings of an assistant's `model_settings` (unset keys stay None: the
    provider's defaults)."""
    fields: dict[str, Any] = {
        name: settings[name] for name in _SAME_NAME_SETTINGS if name in settings
    }
    if "max_output_tokens" in settings:
        fields["max_tokens"] = settings["max_output_tokens"]
    if "reasoning_effort" in settings:
        fields["reasoning"] = Reasoning(effort=settings["reasoning_effort"])
    return ModelSettings(**fields)


class ConfiguredOutput(AgentOutputSchemaBase):
    """An agent's output type from the config's `output`: exactly the configured schema (the
    SDK's own AgentOutputSchema would derive one from a Python type, and in strict mode rewrite
    it); an answer that is not JSON or breaks the schema is a ModelBehaviorError naming where."""

    def __init__(self, output: Mapping[str, Any]):
        self._name = output["name"]
        self._schema = copy.deepcopy(output["schema"])
        self._strict = bool(output.get("strict", False))
        self._validator = Draft202012Validator(self._schema)

    def is_plain_text(self) -> bool:
        return False

    def name(self) -> str:
        return self._name

    def json_schema(self) -> dict[str, Any]:
        return copy.deepcopy(self._schema)

    def is_strict_json_schema(self) -> bool:
        return self._strict

    def validate_json(self, json_str: str) -> Any:
        try:
            value = json.loads(json_str)
        except (TypeError, ValueError) as exc:
            raise ModelBehaviorError(f"output {self._name!r} is not JSON: {exc}") from None
        error = next(iter(self._validator.iter_errors(value)), None)
        if error is not None:
            pointer = "/" + "/".join(str(step) for step in error.absolute_path)
            raise ModelBehaviorError(
                f"output {self._name!r} does not match its schema at {pointer}: {error.message}"
            )
        return value


def run_variables(context: Any) -> Mapping[str, Any]:
    """The variables a run context carries: `context["variables"]` of a mapping, or the
    `variables` attribute of an object; none without either."""
    if isinstance(context, Mapping):
        variables = context.get("variables")
    else:
        variables = getattr(context, "variables", None)
    if variables is None:
        return {}
    if not isinstance(variables, Mapping):
        raise TemplateError(f"the run context's variables must be a mapping, not {variables!r}")
    return variables


def _instructions(config: Mapping[str, Any], declared: set[str]) -> Any:
    """The agent's instructions: a function rendering the configured template from the run's
    variables (None when the assistant has no instructions and declares no variables)."""
    template = config.get("instructions") or ""
    variables = list(config.get("variables") or [])
    if not template and not variables:
        return None
    own = {variable["name"] for variable in variables}

    def instructions(run_context: RunContextWrapper[Any], agent: Agent[Any]) -> str:
        values = run_variables(run_context.context)
        for name in values:
            if name not in declared:
                raise TemplateError(
                    f"variable “{name}” is not declared by any assistant", variable=name
                )
        return render(template, variables, {k: v for k, v in values.items() if k in own})

    return instructions


def _function_tool(tool: dict[str, Any], invoke: Callable[..., Any]) -> FunctionTool:
    """A FunctionTool carrying exactly the configured schema.

    For a strict tool the SDK runs `ensure_strict_json_schema`, which silently rewrites a schema
    that is not strict-ready (optional properties become required...). The server only marks
    strict what is strict-ready, so here the SDK's result may differ from the configured schema
    only in the order of `required`: anything more is refused rather than sent rewritten.
    """
    schema = copy.deepcopy(tool["input_schema"])
    strict = bool(tool.get("strict", False))
    function_tool = FunctionTool(
        name=tool["name"],
        description=tool.get("description") or "",
        params_json_schema=copy.deepcopy(schema),
        on_invoke_tool=invoke,
        strict_json_schema=strict,
    )
    if strict and _ordered(function_tool.params_json_schema) != _ordered(schema):
        raise ValueError(
            f"tool {tool['name']!r} is marked strict, but its input_schema is not strict-ready "
            f"for the Agents SDK, which would rewrite it to "
            f"{json.dumps(function_tool.params_json_schema)}"
        )
    function_tool.params_json_schema = schema
    return function_tool


def _ordered(schema: Any) -> Any:
    """The schema with every `required` list sorted (its order carries no meaning)."""
    if isinstance(schema, dict):
        return {
            key: sorted(value)
            if key == "required"
            and isinstance(value, list)
            and all(isinstance(v, str) for v in value)
            else _ordered(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_ordered(item) for item in schema]
    return schema


def _delegation(
    tool_name: str, delegate: dict[str, Any], agent: Agent[Any] | None, max_turns: int
) -> Callable[[ToolContext[Any], str], Any]:
    async def run_delegate(context: ToolContext[Any], arguments: str) -> str:
        if agent is None:
            raise MissingToolHandler(
                f"tool {tool_name!r} delegates to {delegate.get('name')!r}, which is not an llm "
                f"assistant of this bundle: pass handlers={{{tool_name!r}: callable}}"
            )
        run_config = getattr(context, "run_config", None)
        result = await Runner.run(
            agent,
            input=arguments,
            context=getattr(context, "context", None),
            max_turns=max_turns,
            run_config=run_config if isinstance(run_config, RunConfig) else None,
        )
        output = result.final_output
        return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)

    return run_delegate


def _handled(
    tool_name: str, assistant_name: str, handler: ToolHandler | None
) -> Callable[[ToolContext[Any], str], Any]:
    async def run_handler(context: ToolContext[Any], arguments: str) -> Any:
        if handler is None:
            raise MissingToolHandler(
                f"tool {tool_name!r} of assistant {assistant_name!r} has no handler: pass "
                f"build_agents(bundle, handlers={{{tool_name!r}: callable}})"
            )
        parsed = json.loads(arguments) if arguments else {}
        if inspect.iscoroutinefunction(handler):
            return await handler(parsed)
        result = await asyncio.to_thread(handler, parsed)
        return await result if inspect.isawaitable(result) else result

    return run_handler
