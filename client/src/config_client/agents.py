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
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

from agents import Agent, FunctionTool, RunConfig, Runner
from agents.tool_context import ToolContext

from config_client._bundle import Bundle, check_bundle
from config_client.outcomes import record_runs

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
    by_id: dict[str, Agent[Any]] = {}
    for config in bundle["assistants"]:
        if config.get("assistant_type", "llm") == "llm":
            by_id[config["id"]] = Agent(
                name=config["name"],
                instructions=config.get("instructions") or None,
                model=config.get("model") or None,
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
        return str(result.final_output)

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
