"""Logs: one line per request (JSON when LOG_FORMAT=json) with its id, method, path, status,
duration and who asked (an API key's name, a username), never the key; X-Request-ID is taken
from the client when sane, generated otherwise, and echoed."""

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import Client

from assistants.models import Assistant
from core import store
from core.api.keys import key_prefix
from core.models import ConfigRevision
from core.ops import request_log
from core.ops.log_formats import ConsoleFormatter, RequestIdFilter, json_formatter
from tests.factories import key_client, staff_client
from tests.live import call, live_database_url, server, server_output

ROOT = Path(__file__).resolve().parent.parent
GENERATED_ID = re.compile(r"\A[0-9a-f]{32}\Z")
FIELDS = {"time", "level", "logger", "event", "request_id", "method", "path", "status"}


@pytest.fixture
def json_log():
    """What the app's JSON format writes, from every logger, while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def request_lines(lines):
    return [line for line in lines if line["event"] == "request"]


@pytest.mark.django_db
def test_an_api_request_is_one_json_line_naming_the_key_and_never_holding_it(json_log):
    client = key_client("read")
    response = client.get("/api/v1/assistants/")
    assert response.status_code == 200

    (line,) = request_lines(json_log())
    assert line.keys() >= FIELDS
    assert line["level"] == "INFO"
    assert line["logger"] == "core.ops.request_log"
    assert line["method"] == "GET"
    assert line["path"] == "/api/v1/assistants/"
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert line["api_key_name"] == "test read"
    assert line["user"] is None
    assert line["request_id"] == response["X-Request-ID"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line["time"])
    assert client.raw_key.partition(".")[2] not in json.dumps(json_log())


@pytest.mark.django_db
def test_a_config_read_says_miss_then_hit_and_names_the_key_both_times(json_log, secretary):
    client = key_client("read")
    for _ in range(2):
        assert client.get(f"/api/v1/assistants/{secretary.id}/config/").status_code == 200

    miss, hit = request_lines(json_log())
    assert (miss["cache"], hit["cache"]) == ("miss", "hit")
    assert miss["api_key_name"] == hit["api_key_name"] == "test read"


@pytest.mark.django_db
def test_an_admin_page_names_the_user():
    client = staff_client(superuser=True)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logging.getLogger("core.ops.request_log").addHandler(handler)
    try:
        assert client.get("/admin/").status_code == 200
    finally:
        logging.getLogger("core.ops.request_log").removeHandler(handler)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["user"].startswith("staff")
    assert line["api_key_name"] is None


@pytest.mark.django_db
def test_a_refused_key_is_logged_as_a_401_without_the_key_or_a_name(json_log):
    key = key_client("read").raw_key
    wrong = key_prefix(key) + "." + "x" * 32
    response = Client().get("/api/v1/assistants/", HTTP_AUTHORIZATION=f"Bearer {wrong}")
    assert response.status_code == 401

    lines = json_log()
    (line,) = request_lines(lines)
    assert line["status"] == 401
    assert line["api_key_name"] is None
    assert "x" * 32 not in json.dumps(lines)
    assert "Bearer" not in json.dumps(lines)


def test_a_sane_request_id_is_kept_and_echoed(db, json_log):
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a:42")
    assert response["X-Request-ID"] == "lb-7f3a:42"
    assert request_lines(json_log())[0]["request_id"] == "lb-7f3a:42"


def test_without_a_request_id_one_is_generated_and_echoed(db, json_log):
    first = Client().get("/healthz")["X-Request-ID"]
    second = Client().get("/healthz")["X-Request-ID"]
    assert GENERATED_ID.match(first) and GENERATED_ID.match(second) and first != second
    assert [line["request_id"] for line in request_lines(json_log())] == [first, second]


@pytest.mark.parametrize(
    "hostile",
    ["x" * 129, "abc\ndef", "abc\x1b[31m", "two words", "naïve", ""],
    ids=["too-long", "newline", "escape", "space", "non-ascii", "empty"],
)
def test_a_hostile_request_id_is_replaced_by_a_generated_one(db, json_log, hostile):
    response = Client().get("/healthz", HTTP_X_REQUEST_ID=hostile)
    assert GENERATED_ID.match(response["X-Request-ID"])
    assert request_lines(json_log())[0]["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_a_warning_logged_during_a_request_carries_its_request_id(json_log, secretary):
    client = key_client("read")
    url = f"/api/v1/assistants/{secretary.id}/config/"
    assert client.get(url).status_code == 200  # stores the key's record
    mirror = store.revision_key(ConfigRevision.for_assistant(secretary.id))
    store.store().set(mirror, b"not a number")
    response = client.get(url, HTTP_X_REQUEST_ID="r-1")
    assert response.status_code == 200

    warnings = [line for line in json_log() if line["level"] == "WARNING"]
    assert any("Unreadable" in line["event"] for line in warnings)
    assert {line["request_id"] for line in warnings} == {"r-1"}


def test_the_console_format_is_one_readable_line_with_the_fields():
    record = logging.LogRecord(
        "core.ops.request_log", logging.INFO, __file__, 1, "request", (), None
    )
    record.__dict__.update(method="GET", path="/healthz", status=200, request_id="r-9", user=None)
    line = ConsoleFormatter().format(record)
    assert "\n" not in line
    assert line.endswith(
        "INFO core.ops.request_log: request method=GET path=/healthz status=200 request_id=r-9"
    )


def test_an_unknown_log_format_fails_loudly_naming_the_variable():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config_backend.settings",
            "LOG_FORMAT": "xml",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "LOG_FORMAT must be json or console" in result.stderr


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_live_server_writes_a_json_line_per_request_fast_path_hits_included():
    assistant = Assistant.objects.create(name="Live", model="gpt-4o-mini")
    client = key_client("read")
    url = f"/api/v1/assistants/{assistant.id}/config/"
    env = {"DATABASE_URL": live_database_url(), "LOG_FORMAT": "json"}
    with server(env=env, workers=1) as base_url:
        answers = [
            call("GET", base_url + url, key=client.raw_key, headers={"X-Request-ID": f"t-{i}"})
            for i in range(3)
        ]
        hostile = call("GET", base_url + url, key=client.raw_key, headers={"X-Request-ID": "a b"})
        # A hit's line is written once its answer is sent: wait for the last one.
        deadline = time.monotonic() + 5
        while hostile[1]["X-Request-ID"] not in server_output(base_url):
            assert time.monotonic() < deadline, "the last request's line never came"
            time.sleep(0.05)
        output = server_output(base_url)

    assert [headers["X-Config-Cache"] for _, headers, _ in answers] == ["miss", "hit", "hit"]
    assert [headers["X-Request-ID"] for _, headers, _ in answers] == ["t-0", "t-1", "t-2"]
    assert GENERATED_ID.match(hostile[1]["X-Request-ID"])
    lines = [json.loads(text) for text in output.splitlines() if text.strip()]  # every line
    requests = {line["request_id"]: line for line in request_lines(lines)}
    for i, cache_state in enumerate(["miss", "hit", "hit"]):
        line = requests[f"t-{i}"]
        assert line.keys() >= FIELDS
        assert (line["path"], line["status"], line["cache"]) == (url, 200, cache_state)
        assert line["api_key_name"] == "test read"
    assert requests[hostile[1]["X-Request-ID"]]["cache"] == "hit"
    assert client.raw_key.partition(".")[2] not in output


@pytest.mark.parametrize(
    "fields",
    [
        {"method": "GET", "path": "/api/v1/x/", "status": 200, "duration_ms": 0.42, "user": None},
        {"path": '/naïve/"quoted"\\slash\n', "cache": "hit", "flag": True, "ms": 1e-07},
        {"not_finite": float("inf"), "a_list": [1, "two"], "big": 10**20},
    ],
    ids=["request-line", "escapes-and-non-ascii", "values-the-encoder-writes"],
)
def test_a_line_written_without_a_record_is_what_the_json_format_writes(fields):
    record = logging.LogRecord(
        "core.ops.request_log", logging.INFO, __file__, 1, "request", (), None
    )
    record.__dict__.update(fields)
    formatter = json_formatter()
    assert formatter.line("INFO", record.name, "request", fields, record.created) == (
        formatter.format(record)
    )


@pytest.mark.parametrize(
    "created",
    [
        1700000000.0,  # a whole second: no fraction written
        1700000000.0000005,  # half a microsecond: rounded to even (0)
        1700000000.0000015,  # to even (2)
        1700000000.9999996,  # rounds up into the next second
        1700000001.25,
        86399.999999,  # 1970-01-01T23:59:59.999999
    ],
)
def test_a_line_without_a_record_has_the_time_the_json_format_writes(created):
    record = logging.LogRecord("core.ops.request_log", logging.INFO, __file__, 1, "x", (), None)
    record.created = created
    formatter = json_formatter()
    for _ in range(2):  # the second time from the second it remembers
        line = formatter.line("INFO", record.name, "x", {}, created)
        assert json.loads(line)["time"] == json.loads(formatter.format(record))["time"]


class CountingStream(io.StringIO):
    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, text):
        self.writes += 1
        return super().write(text)


@contextlib.contextmanager
def request_log_to_the_app_json_handler_only():
    """The request log's logger writing only to the app's JSON handler, as in production.
    Entered in the test's body: pytest adds its own capture handlers to non-propagating
    loggers when each phase of a test begins."""
    stream = CountingStream()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("core.ops.request_log")
    kept, logger.handlers = logger.handlers, [handler]
    logger.propagate = False
    try:
        yield stream, handler
    finally:
        logger.propagate = True
        logger.handlers = kept


def test_the_request_lines_of_one_event_loop_turn_go_out_in_one_write():
    async def three_requests(stream):
        for number in range(3):
            start = request_log.begin({"HTTP_X_REQUEST_ID": f"r-{number}"})
            request_log.finish(start, endpoint="e", method="GET", path="/p/", status=200)
        assert stream.writes == 0  # not before the responses of this turn are sent
        await asyncio.sleep(0)

    with request_log_to_the_app_json_handler_only() as (stream, _):
        asyncio.run(three_requests(stream))
    assert stream.writes == 1
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["r-0", "r-1", "r-2"]
    assert all(line.keys() >= FIELDS and line["level"] == "INFO" for line in lines)


def test_outside_an_event_loop_a_request_line_is_written_at_once_and_levels_hold():
    with request_log_to_the_app_json_handler_only() as (stream, handler):
        start = request_log.begin({"HTTP_X_REQUEST_ID": "sync-1"})
        request_log.finish(start, endpoint="e", method="GET", path="/p/", status=200)
        assert json.loads(stream.getvalue())["request_id"] == "sync-1"
        handler.setLevel(logging.WARNING)
        request_log.finish(request_log.begin({}), endpoint="e", method="GET", path="/", status=200)
    assert stream.getvalue().count("\n") == 1
