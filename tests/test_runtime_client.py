"""The runtime client (client/, `config_client`) against a live server: it starts from the server
or its last-known-good file, follows changes by ETag polling (304 when nothing changed), keeps
serving through an outage, and refuses to start only when it has neither; `build_agents` turns
the live bundle into OpenAI Agents SDK agents whose tools carry the configured schemas and whose
delegate tools run the delegate agent (with a scripted model: no network, no OpenAI key)."""

import asyncio
import contextlib
import json
import logging
import threading
import time

import pytest
from agents import Agent, RunConfig, RunContextWrapper, Runner
from agents.exceptions import UserError
from agents.items import ModelResponse
from agents.models.interface import Model, ModelProvider
from agents.usage import Usage
from config_client import ConfigClient, ConfigUnavailable, FetchFailed, UnknownAssistant
from config_client.agents import MissingToolHandler, build_agents
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from assistants.models import Assistant
from core.models import APIKey
from tests.live import call, live_database_url, server
from tests.throwaway_servers import free_port
from tools.models import AssistantToolLink, Tool

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

POLL = 0.2
ASK_CALENDAR_SCHEMA = {
    "type": "object",
    "properties": {
        "request": {"type": "string", "description": "What to look up."},
        "day": {"type": ["string", "null"], "format": "date"},
    },
    "required": ["request", "day"],
    "additionalProperties": False,
}
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS_HAVE_STRICT = "strict" in {field.name for field in Tool._meta.get_fields()}


@pytest.fixture(scope="module")
def live(django_db_setup):
    """One server for the module's tests (each brings its own rows and keys)."""
    with server(env={"DATABASE_URL": live_database_url()}, workers=1) as base_url:
        yield base_url


@pytest.fixture
def keys():
    _, read = APIKey.objects.create_key(name="runtime", scope="read")
    _, write = APIKey.objects.create_key(name="automation", scope="write")
    return read, write


@pytest.fixture
def config(db):
    secretary = Assistant.objects.create(
        name="Secretary",
        model="gpt-4o-mini",
        is_secretary=True,
        instructions="You are the secretary.",
    )
    calendar = Assistant.objects.create(
        name="Calendar", model="gpt-4.1-mini", instructions="You keep the calendar."
    )
    weather = Tool.objects.create(
        name="get_weather", tool_type="weather", description="Weather.", input_schema=WEATHER_SCHEMA
    )
    ask = Tool.objects.create(
        name="ask_calendar",
        tool_type=Tool.Type.SUB_ASSISTANT,
        assistant=calendar,
        description="Ask the calendar assistant.",
        input_schema=ASK_CALENDAR_SCHEMA,
        **({"strict": True} if TOOLS_HAVE_STRICT else {}),
    )
    AssistantToolLink.objects.create(assistant=secretary, tool=weather)
    AssistantToolLink.objects.create(assistant=secretary, tool=ask)
    return {"secretary": secretary, "calendar": calendar}


@pytest.fixture
def started():
    """Start ConfigClients and stop every one of them at the end of the test."""
    clients = []

    def start(*args, **kwargs) -> ConfigClient:
        client = ConfigClient(*args, **kwargs)
        clients.append(client)
        return client.start()

    yield start
    for client in clients:
        client.stop()


def api_bundle(base_url, key) -> dict:
    status, headers, body = call("GET", f"{base_url}/api/v1/config/", key=key)
    assert status == 200, body
    return json.loads(body)


def wait_for(condition, timeout: float = 5.0) -> float:
    """Seconds until `condition()` held; fails the test after `timeout`."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout, "condition not met in time"
        time.sleep(0.01)
    return time.monotonic() - began


def patch_secretary(base_url, key, config, **fields):
    url = f"{base_url}/api/v1/assistants/{config['secretary'].id}/"
    status, _, body = call("PATCH", url, key=key, body=fields)
    assert status == 200, body


def test_start_serves_the_bundle_the_api_serves_and_saves_it_to_the_file(
    live, keys, config, started, tmp_path
):
    read, _ = keys
    cache = tmp_path / "state" / "config.json"
    client = started(live, read, cache_path=cache, poll_interval=POLL)

    assert client.bundle == api_bundle(live, read)
    assert client.revision == client.bundle["revision"]
    assert client.errors == 0 and client.age_seconds < 1
    assert client.assistant("Secretary")["instructions"] == "You are the secretary."
    calendar_id = str(config["calendar"].id)
    assert client.assistant(calendar_id)["name"] == "Calendar"
    with pytest.raises(UnknownAssistant, match="'Nobody'.*known: Calendar, Secretary"):
        client.assistant("Nobody")
    saved = json.loads(cache.read_text())
    # The client asks for gzip: the ETag is that coding's (core.reads.codings).
    assert saved["bundle"] == client.bundle and saved["etag"] == f'"{client.revision}-gzip"'
    assert [p.name for p in cache.parent.iterdir()] == ["config.json"]  # no temporary left


def test_a_change_made_through_the_api_arrives_within_two_polls_and_fires_on_change_once(
    live, keys, config, started, tmp_path, caplog
):
    read, write = keys
    client = started(live, read, cache_path=tmp_path / "config.json", poll_interval=POLL)
    seen = []

    def broken_callback(bundle):
        raise RuntimeError("a bug in the runtime's callback")

    client.on_change(broken_callback)
    client.on_change(seen.append)

    expected = []
    for instructions in ("v2", "v3"):
        patch_secretary(live, write, config, instructions=instructions)
        waited = wait_for(lambda i=instructions: client.assistant("Secretary")["instructions"] == i)
        assert waited < 2 * POLL * 1.1 + 0.5  # two polls with jitter, plus a loaded machine
        time.sleep(3 * POLL)  # further polls see no change: no further callbacks
        expected.append(instructions)
        assert [bundle["assistants"][1]["instructions"] for bundle in seen] == expected
    assert seen[-1] is client.bundle
    assert client.errors == 0
    assert "on_change callback failed" in caplog.text  # logged; the poller went on
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["bundle"]["revision"] == client.revision


def test_an_unchanged_config_is_revalidated_with_304_and_keeps_the_same_bundle(
    live, keys, config, started, tmp_path
):
    read, _ = keys
    cache = tmp_path / "config.json"
    client = started(live, read, cache_path=cache, poll_interval=POLL)
    first, saved = client.bundle, cache.read_bytes()
    time.sleep(5 * POLL)

    assert client.last_status == 304
    assert client.bundle is first  # not replaced
    assert client.age_seconds < 2 * POLL  # a 304 confirms the bundle, so its age restarts
    assert cache.read_bytes() == saved
    status, headers, _ = call(
        "GET", f"{live}/api/v1/config/", key=read, headers={"If-None-Match": f'"{client.revision}"'}
    )
    assert status == 304 and headers["ETag"] == f'"{client.revision}"'


def test_with_the_server_killed_the_client_keeps_serving_from_memory_and_counts_errors(
    keys, config, started, tmp_path
):
    read, _ = keys
    with contextlib.ExitStack() as running:
        base_url = running.enter_context(
            server(env={"DATABASE_URL": live_database_url()}, workers=1)
        )
        client = started(base_url, read, cache_path=tmp_path / "config.json", poll_interval=POLL)
        before = client.bundle
    # The server is gone (terminated when the stack closed).
    wait_for(lambda: client.errors >= 2)
    assert client.bundle is before
    assert client.assistant("Secretary")["name"] == "Secretary"
    assert f"cannot reach {base_url}/api/v1/config/" in client.last_error
    assert client.age_seconds >= 2 * POLL * 0.9
    with pytest.raises(FetchFailed, match="cannot reach"):
        client.refresh()


def test_a_new_client_with_the_server_down_starts_from_the_file(
    keys, config, started, tmp_path, caplog
):
    read, _ = keys
    cache = tmp_path / "config.json"
    with server(env={"DATABASE_URL": live_database_url()}, workers=1) as base_url:
        first = started(base_url, read, cache_path=cache, poll_interval=POLL)
        expected = first.bundle
        first.stop()
    time.sleep(0.3)

    client = started(base_url, read, cache_path=cache, poll_interval=POLL)
    assert client.bundle == expected and client.revision == expected["revision"]
    assert client.errors == 1
    assert 0.3 <= client.age_seconds < 60  # counted from the file's last confirmation
    assert f"serving revision {client.revision} from {cache}" in caplog.text


def test_a_corrupt_file_is_ignored_with_a_warning_and_the_server_is_used(
    live, keys, config, started, tmp_path, caplog
):
    read, _ = keys
    cache = tmp_path / "config.json"
    cache.write_text('{"format": "assistant-config-client/1", "bundle": {"revision": ')
    caplog.set_level(logging.WARNING, logger="config_client")

    client = started(live, read, cache_path=cache, poll_interval=POLL)
    assert f"ignoring the cache file {cache}: not JSON" in caplog.text
    assert client.bundle == api_bundle(live, read)
    assert json.loads(cache.read_text())["bundle"] == client.bundle  # replaced by a good one


def test_a_file_saved_for_another_label_is_not_served(keys, tmp_path, caplog):
    cache = tmp_path / "config.json"
    bundle = {"revision": 3, "secretary": None, "assistants": []}
    cache.write_text(
        json.dumps(
            {
                "format": "assistant-config-client/1",
                "label": "staging",
                "etag": '"3"',
                "bundle": bundle,
            }
        )
    )
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigUnavailable, match="holds label 'staging', this client reads"):
        ConfigClient(url, "key", label="production", cache_path=cache).start()
    assert "ignoring the cache file" in caplog.text


def test_with_neither_file_nor_server_start_raises_an_error_naming_both(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    cache = tmp_path / "missing.json"
    client = ConfigClient(url, "some-key", cache_path=cache, start_timeout=1)
    with pytest.raises(ConfigUnavailable) as raised:
        client.start()
    message = str(raised.value)
    assert f"the server at {url}/api/v1/config/ gave none (cannot reach" in message
    assert f"the cache file {cache} does not exist" in message
    assert "some-key" not in message
    assert client.errors == 1


def test_a_refused_key_or_an_unserved_label_is_reported_clearly(live, keys, config, tmp_path):
    with pytest.raises(ConfigUnavailable, match=r"refused the API key \(401\)"):
        ConfigClient(live, "not-a-key").start()
    # A server without labels (here: a path that 404s) is reported as such, not as "down".
    read, _ = keys
    with pytest.raises(ConfigUnavailable, match="404 for label 'production': the label does not"):
        ConfigClient(f"{live}/elsewhere", read, label="production").start()


# Push: the SSE listener wakes the poller ------------------------------------------------------

LONG_POLL = 30.0  # so that only a push can bring a change within wait_for's deadline


def test_with_a_long_poll_interval_a_change_reaches_on_change_by_push_before_any_poll(
    live, keys, config, started, tmp_path
):
    read, write = keys
    client = started(live, read, cache_path=tmp_path / "config.json", poll_interval=LONG_POLL)
    seen = []
    client.on_change(seen.append)
    wait_for(lambda: client.listening)
    for instructions in ("pushed 1", "pushed 2", "pushed 3"):
        patch_secretary(live, write, config, instructions=instructions)
        # Within wait_for's deadline, far short of LONG_POLL: only the push can bring it.
        wait_for(lambda i=instructions: client.assistant("Secretary")["instructions"] == i)
    wait_for(lambda: len(seen) == 3)  # the callback runs just after the bundle is served
    assert [bundle["revision"] for bundle in seen] == sorted({b["revision"] for b in seen})
    assert seen[-1] is client.bundle
    assert client.errors == 0


def test_without_listen_only_the_poll_brings_a_change(live, keys, config, started):
    read, write = keys
    client = started(live, read, poll_interval=LONG_POLL, listen=False)
    patch_secretary(live, write, config, instructions="not pushed")
    time.sleep(1.5)
    assert not client.listening
    assert client.assistant("Secretary")["instructions"] != "not pushed"


def test_after_a_server_restart_the_listener_reconnects_and_gets_what_it_missed(
    keys, config, started, tmp_path
):
    read, write = keys
    port = free_port()
    env = {"DATABASE_URL": live_database_url()}
    with server(env=env, workers=1, port=port) as base_url:
        client = started(base_url, read, poll_interval=LONG_POLL)
        wait_for(lambda: client.listening)
    wait_for(lambda: not client.listening)
    # Changed while no server runs (another process, here the test's ORM): the reconnect's
    # Last-Event-ID gets it replayed, and the replayed event wakes the poller.
    secretary = Assistant.objects.get(pk=config["secretary"].pk)
    secretary.instructions = "changed while the server was down"
    secretary.save()

    def serving(instructions):
        return lambda: client.assistant("Secretary")["instructions"] == instructions

    with server(env=env, workers=1, port=port):
        wait_for(serving(secretary.instructions), timeout=20)
        assert client.listening
        patch_secretary(base_url, write, config, instructions="after the restart")
        wait_for(serving("after the restart"))  # far short of LONG_POLL: pushed


def test_stop_ends_the_listener_at_once(live, keys, config):
    read, _ = keys
    client = ConfigClient(live, read, poll_interval=LONG_POLL).start()
    wait_for(lambda: client.listening)
    client.stop()
    # stop() gives up joining after seconds: no thread left means they ended when told to.
    assert not client.listening
    assert not [t for t in threading.enumerate() if t.name.startswith("config-client-")]


# OpenAI Agents SDK ---------------------------------------------------------------------------


class ScriptedModel(Model):
    """Answers as the script says, from the agent's instructions and input: no network."""

    def __init__(self, script):
        self.script = script
        self.calls = []

    async def get_response(self, system_instructions, input, *args, **kwargs):
        self.calls.append((system_instructions, input))
        return ModelResponse(
            output=self.script(system_instructions, input), usage=Usage(), response_id=None
        )

    def stream_response(self, *args, **kwargs):
        raise NotImplementedError


class ScriptedProvider(ModelProvider):
    def __init__(self, model):
        self.model = model
        self.names = []

    def get_model(self, model_name):
        self.names.append(model_name)
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


def tool_output(input):
    """The output of the tool call in this input, if there is one."""
    if isinstance(input, list):
        for item in input:
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                return item["output"]
    return None


def run(agent: Agent, message: str, model: ScriptedModel):
    config = RunConfig(model_provider=ScriptedProvider(model), tracing_disabled=True)
    return asyncio.run(Runner.run(agent, message, run_config=config))


def test_build_agents_gives_every_assistant_its_tools_with_the_configured_schemas(
    live, keys, config, started, monkeypatch
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # building needs no key and no network
    read, _ = keys
    bundle = started(live, read, poll_interval=30).bundle

    agents = build_agents(bundle)
    assert sorted(agents) == ["Calendar", "Secretary"]
    secretary = agents["Secretary"]
    assert secretary.model == "gpt-4o-mini"
    # The instructions render from the run's variables (tests/test_build_agents.py).
    rendered = secretary.instructions(RunContextWrapper(context=None), secretary)
    assert rendered == "You are the secretary."
    assert agents["Calendar"].model == "gpt-4.1-mini"
    tools = {tool.name: tool for tool in secretary.tools}
    assert sorted(tools) == ["ask_calendar", "get_weather"]
    configured = {t["name"]: t for t in bundle["assistants"][1]["tools"]}
    for name, tool in tools.items():
        assert tool.params_json_schema == configured[name]["input_schema"]
        assert tool.strict_json_schema is configured[name].get("strict", False)
    assert tools["ask_calendar"].params_json_schema == ASK_CALENDAR_SCHEMA  # not {"input": …}
    assert tools["get_weather"].strict_json_schema is False
    if TOOLS_HAVE_STRICT:
        assert tools["ask_calendar"].strict_json_schema is True


def test_a_strict_tool_becomes_a_strict_function_tool_with_its_schema_unchanged():
    tool = {
        "id": "t1",
        "name": "ask_calendar",
        "tool_type": "sub_assistant",
        "description": "",
        "input_schema": ASK_CALENDAR_SCHEMA,
        "strict": True,
        "sub_assistant": None,
    }
    bundle = {
        "revision": 1,
        "secretary": None,
        "assistants": [
            {
                "id": "a1",
                "name": "Solo",
                "assistant_type": "llm",
                "model": "m",
                "instructions": "",
                "tools": [tool],
            }
        ],
    }
    (function_tool,) = build_agents(bundle)["Solo"].tools
    assert function_tool.strict_json_schema is True
    assert function_tool.params_json_schema == ASK_CALENDAR_SCHEMA


def test_invoking_a_delegate_tool_runs_the_delegate_agent_with_the_tools_arguments(
    live, keys, config, started
):
    read, _ = keys
    agents = build_agents(started(live, read, poll_interval=30).bundle)
    arguments = {"request": "What is on Monday?", "day": "2030-01-07"}

    def script(instructions, input):
        if instructions == "You keep the calendar.":
            (message,) = input  # the delegate's input: one user message, the tool's arguments
            assert message["role"] == "user"
            return say(f"Calendar got {message['content']}")
        answer = tool_output(input)
        return (
            say(f"Secretary relays: {answer}") if answer else call_tool("ask_calendar", arguments)
        )

    model = ScriptedModel(script)
    result = run(agents["Secretary"], "Monday?", model)
    assert result.final_output == f"Secretary relays: Calendar got {json.dumps(arguments)}"
    assert [instructions for instructions, _ in model.calls] == [
        "You are the secretary.",
        "You keep the calendar.",
        "You are the secretary.",
    ]


def test_a_tool_runs_its_handler_and_a_tool_without_one_fails_the_run_clearly(
    live, keys, config, started
):
    read, _ = keys
    bundle = started(live, read, poll_interval=30).bundle
    got = []

    def weather(arguments):
        got.append(arguments)
        return "sunny"

    def script(instructions, input):
        answer = tool_output(input)
        return say(f"It is {answer}") if answer else call_tool("get_weather", {"city": "Oslo"})

    result = run(
        build_agents(bundle, handlers={"get_weather": weather})["Secretary"],
        "?",
        ScriptedModel(script),
    )
    assert result.final_output == "It is sunny" and got == [{"city": "Oslo"}]

    with pytest.raises(UserError, match="tool 'get_weather' of assistant 'Secretary' has no") as e:
        run(build_agents(bundle)["Secretary"], "?", ScriptedModel(script))
    assert isinstance(e.value.__cause__, MissingToolHandler)
