"""The client's outcomes: record_outcome adds up in memory and a background thread sends the
sums to a live server; memory stays bounded while the server is away; a failed batch is retried
with its Idempotency-Key; stop() sends what is left; build_agents(record_outcomes=client)
records a real Runner.run's runs, errors, tool calls and tokens."""

import asyncio
import gc
import json
import time

import pytest
from agents import RunConfig, Runner
from agents.items import ModelResponse
from agents.models.interface import Model, ModelProvider
from agents.usage import Usage
from config_client import ConfigClient
from config_client.agents import build_agents
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from assistants.models import Assistant
from core.models import APIKey, Label
from outcomes.models import COUNTERS, OutcomeBucket
from tests.factories import newest_revision
from tests.live import live_database_url, server
from tests.misbehaving_http import MisbehavingServer
from tests.throwaway_servers import free_port
from tools.models import AssistantToolLink, Tool

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def live(django_db_setup):
    with server(env={"DATABASE_URL": live_database_url()}, workers=1) as base_url:
        yield base_url


@pytest.fixture
def secretary(db):
    secretary = Assistant.objects.create(
        name="Secretary", model="gpt-4o-mini", is_secretary=True, instructions="You help."
    )
    weather = Tool.objects.create(
        name="get_weather",
        tool_type="weather",
        description="Weather.",
        input_schema={"type": "object", "properties": {"city": {"type": "string"}}},
    )
    AssistantToolLink.objects.create(assistant=secretary, tool=weather)
    Label.objects.create(name="production", revision=newest_revision())
    return secretary


@pytest.fixture
def runtime_key():
    return APIKey.objects.create_key(name="runtime", scope="runtime")[1]


@pytest.fixture
def clients():
    made = []

    def make(*args, **kwargs) -> ConfigClient:
        client = ConfigClient(*args, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()


def server_totals(**filters) -> dict:
    buckets = list(OutcomeBucket.objects.filter(**filters).values(*COUNTERS))
    return {name: sum(bucket[name] for bucket in buckets) for name in COUNTERS}


def wait_for(condition, timeout: float = 15.0):
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout, "condition not met in time"
        time.sleep(0.05)


def test_recorded_outcomes_arrive_added_up_in_the_background(live, secretary, runtime_key, clients):
    client = clients(live, runtime_key, label="production", listen=False).start()
    client.outcomes.flush_interval = 0.1
    for _ in range(50):
        client.record_outcome("Secretary", runs=1, input_tokens=10, latency_ms=20)
    client.record_outcome("Secretary", runs=1, errors=1, variant="candidate")

    wait_for(lambda: server_totals()["runs"] == 51)
    base = server_totals(variant="", label="production")
    assert (base["runs"], base["input_tokens"], base["latency_ms"]) == (50, 500, 1000)
    assert server_totals(variant="candidate")["errors"] == 1
    assert OutcomeBucket.objects.filter(revision=client.revision).count() == 2
    assert client.outcomes.sent == 51 and client.outcomes_dropped == 0


def test_bad_values_never_raise_into_the_runtime_and_are_counted(
    live, secretary, runtime_key, clients
):
    client = clients(live, runtime_key, listen=False).start()
    client.record_outcome("Secretary", runs=-1)
    client.record_outcome("Secretary", runs=1, colour=3)
    client.record_outcome("Secretary", variant="canary")
    assert client.outcomes_dropped == 3 and client.outcomes.pending == 0


def test_stop_sends_what_is_left(live, secretary, runtime_key, clients):
    client = clients(live, runtime_key, listen=False).start()
    client.outcomes.flush_interval = 3600  # only stop() will send
    client.record_outcome("Secretary", runs=3, tool_calls=2)
    assert server_totals()["runs"] == 0
    client.stop()
    assert server_totals()["runs"] == 3 and server_totals()["tool_calls"] == 2


def test_with_the_server_away_memory_stays_bounded_and_the_oldest_are_dropped(
    secretary, runtime_key, clients
):
    client = clients(f"http://127.0.0.1:{free_port()}", runtime_key)
    client._index = {}  # never started: no bundle needed to record by id
    client.outcomes.flush_interval = 0.05
    client.outcomes.max_buckets = 100
    hour = 3600 * (int(time.time()) // 3600)
    for index in range(1_000):  # a bucket each: 1,000 distinct revisions
        client.record_outcome(str(secretary.id), revision=index, runs=1)
        client.outcomes.record(assistant=str(secretary.id), revision=index, at=hour, runs=1)
    wait_for(lambda: client.outcomes.failures >= 2)
    assert client.outcomes.pending <= 100 + 100  # the held batch and the newest buckets
    assert client.outcomes_dropped >= 1_800
    assert client.outcomes.sent == 0


def test_a_failed_batch_is_retried_with_the_same_idempotency_key(secretary, runtime_key):
    answers = iter(["503 Busy", "503 Busy", "201 Created", "201 Created"])

    def script(exchange):
        exchange.answer(next(answers), {"Content-Length": "2", "Connection": "close"}, b"{}")

    with MisbehavingServer(script) as fake:
        client = ConfigClient(fake.url, runtime_key)
        client.outcomes.flush_interval = 0.05
        client.outcomes.record(assistant=str(secretary.id), revision=1, runs=1)
        client.outcomes.start()
        wait_for(lambda: client.outcomes.sent == 1)
        client.outcomes.record(assistant=str(secretary.id), revision=1, runs=1)
        wait_for(lambda: client.outcomes.sent == 2)
        client.stop()
    keys = [e.request.headers["idempotency-key"] for e in fake.to("/api/v1/outcomes/")]
    assert len(keys) == 4 and keys[0] == keys[1] == keys[2] != keys[3]


# A real Runner.run against a scripted model ------------------------------------------------


class ScriptedModel(Model):
    """Answers as the script says, each answer using 100 input and 7 output tokens."""

    def __init__(self, script):
        self.script = script

    async def get_response(self, system_instructions, input, *args, **kwargs):
        output = self.script(input)
        usage = Usage(requests=1, input_tokens=100, output_tokens=7, total_tokens=107)
        return ModelResponse(output=output, usage=usage, response_id=None)

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


def weather_then_answer(input):
    if isinstance(input, list) and any(
        isinstance(item, dict) and item.get("type") == "function_call_output" for item in input
    ):
        return say("Sunny.")
    call = ResponseFunctionToolCall(
        call_id="call_1",
        name="get_weather",
        arguments=json.dumps({"city": "Oslo"}),
        type="function_call",
    )
    return [call]


def run(agent):
    config = RunConfig(
        model_provider=ScriptedProvider(ScriptedModel(weather_then_answer)), tracing_disabled=True
    )
    return asyncio.run(Runner.run(agent, "Weather?", run_config=config))


def test_build_agents_records_runs_errors_tool_calls_and_tokens_of_real_runs(
    live, secretary, runtime_key, clients
):
    client = clients(live, runtime_key, label="production", listen=False).start()
    client.outcomes.flush_interval = 0.1
    working = build_agents(
        client.bundle, handlers={"get_weather": lambda a: "sunny"}, record_outcomes=client
    )
    for _ in range(3):
        assert run(working["Secretary"]).final_output == "Sunny."

    def broken(arguments):
        raise RuntimeError("the weather service is down")

    failing = build_agents(client.bundle, handlers={"get_weather": broken}, record_outcomes=client)
    with pytest.raises(Exception, match="weather service is down"):
        run(failing["Secretary"])

    wait_for(lambda: server_totals()["runs"] == 4)
    client.stop()
    totals = server_totals(assistant=secretary, label="production", revision=client.revision)
    assert totals["runs"] == 4 and totals["errors"] == 1
    assert totals["tool_calls"] == 4 and totals["tool_errors"] == 1
    # Two model calls per good run (the tool call, then the answer), one for the failed one.
    assert totals["input_tokens"] == 700 and totals["output_tokens"] == 49
    assert totals["latency_ms"] >= 0


class FailingModel(ScriptedModel):
    """The model's API fails (after the first call, which asks for the tool)."""

    def __init__(self):
        super().__init__(weather_then_answer)
        self.calls = 0

    async def get_response(self, *args, **kwargs):
        self.calls += 1
        if self.calls > 1:
            raise ConnectionError("the model's API is down")
        return await super().get_response(*args, **kwargs)


def test_a_run_the_model_fails_is_recorded_as_a_run_with_an_error(
    live, secretary, runtime_key, clients
):
    client = clients(live, runtime_key, label="production", listen=False).start()
    client.outcomes.flush_interval = 0.1
    agents = build_agents(
        client.bundle, handlers={"get_weather": lambda a: "sunny"}, record_outcomes=client
    )
    config = RunConfig(model_provider=ScriptedProvider(FailingModel()), tracing_disabled=True)
    try:
        asyncio.run(Runner.run(agents["Secretary"], "Weather?", run_config=config))
    except ConnectionError:
        pass  # what the runtime sees is the SDK's error, unchanged
    else:
        pytest.fail("the run should have failed")
    gc.collect()  # the run's state may sit in a reference cycle until the next collection

    wait_for(lambda: server_totals()["runs"] == 1)
    totals = server_totals(assistant=secretary)
    assert (totals["runs"], totals["errors"]) == (1, 1)
    assert (totals["tool_calls"], totals["tool_errors"]) == (1, 0)
    assert totals["input_tokens"] == 100  # the one model call that answered
