"""`GET /api/v1/config/events/` (SPEC "Runtime delivery", push over HTTP) on real servers: a
change committed through one instance reaches a subscriber of another within a second, naming
exactly the assistants it changed; a reconnect resumes with Last-Event-ID (or gets a `reset`);
refusals are JSON before any stream; heartbeats; dropped subscribers are released; and the
embedded default (runserver, SQLite, local memory) delivers another process's change too."""

import json
import re
import sys
import time

import pytest

from assistants.models import Assistant
from core.models import APIKey
from tests.live import call, live_database_url, server, server_output
from tests.sse import EventStream
from tests.test_embedded_default import fresh_copy, manage  # noqa: F401  (a fixture)
from tools.models import AssistantToolLink, Tool

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MAX_REPLAY = 4
HEARTBEAT = 1
SERVER_ENV = {
    "SSE_MAX_REPLAY": str(MAX_REPLAY),
    "SSE_HEARTBEAT_SECONDS": str(HEARTBEAT),
    "METRICS_ENABLED": "1",
}


@pytest.fixture(scope="module")
def instances(django_db_setup):
    """Two instances of the production server (two workers each) on one database and Redis."""
    env = {"DATABASE_URL": live_database_url(), **SERVER_ENV}
    with server(env=env) as first, server(env=env) as second:
        yield first, second


@pytest.fixture
def keys():
    return {
        scope: APIKey.objects.create_key(name=f"events-{scope}", scope=scope)[1]
        for scope in ("read", "runtime", "write")
    }


@pytest.fixture
def config(db):
    secretary = Assistant.objects.create(name="Secretary", model="gpt-4o-mini", is_secretary=True)
    calendar = Assistant.objects.create(name="Calendar", model="gpt-4.1-mini")
    ask = Tool.objects.create(
        name="ask_calendar",
        tool_type=Tool.Type.SUB_ASSISTANT,
        assistant=calendar,
        description="Ask the calendar assistant.",
        input_schema={"type": "object", "properties": {}},
    )
    AssistantToolLink.objects.create(assistant=secretary, tool=ask)
    return {"secretary": secretary, "calendar": calendar}


def patch(base_url, key, assistant, **fields):
    status, _, body = call(
        "PATCH", f"{base_url}/api/v1/assistants/{assistant.id}/", key=key, body=fields
    )
    assert status == 200, body


def subscribed(base_url, key, **kwargs) -> EventStream:
    """A subscription past its opening event (`hello`, or what a resume sends first)."""
    stream = EventStream(base_url, key, **kwargs)
    assert stream.status == 200, stream.body
    assert stream.headers["Content-Type"] == "text/event-stream"
    return stream


def subscriber_count(base_url) -> int:
    _, _, body = call("GET", base_url + "/metrics")
    match = re.search(rb"^config_event_subscribers (\S+)$", body, re.MULTILINE)
    return int(float(match[1])) if match else 0


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_change_through_one_instance_reaches_a_subscriber_of_another_within_a_second(
    instances, keys, config
):
    first, second = instances
    secretary, calendar = config["secretary"], config["calendar"]
    with subscribed(second, keys["read"]) as stream:
        hello = stream.next_named("hello")
        assert re.fullmatch(r"\d+\.\d+", hello.id)
        delays = []
        for round_ in range(5):
            patch(first, keys["write"], secretary, instructions=f"Version {round_}.")
            committed = time.monotonic()  # the PATCH answered: its change has committed
            event = stream.next(timeout=2)
            delays.append(event.arrived - committed)
            assert event.event == "revision"
            # Only the secretary's config changed (its instructions are its own).
            assert event.json["assistants"] == [str(secretary.id)]
            assert event.id == f"{event.json['revision']}.0"
        assert max(delays) < 1.0, delays
        # Woken by the commit's Redis message, not by the 0.5 s polling it falls back to.
        assert "pub/sub unavailable" not in server_output(second)

        # Renaming the calendar changes the secretary's config too (its delegate's name).
        patch(first, keys["write"], calendar, name="Agenda")
        event = stream.next(timeout=2)
        assert sorted(event.json["assistants"]) == sorted([str(secretary.id), str(calendar.id)])


def move_label(base_url, key, name, revision):
    status, _, body = call(
        "PUT", f"{base_url}/api/v1/labels/{name}/", key=key, body={"revision": revision}
    )
    assert status in (200, 201), body


def test_a_label_move_through_one_instance_is_a_label_event_on_another_within_a_second(
    instances, keys, config
):
    first, second = instances
    patch(first, keys["write"], config["secretary"], instructions="To be labelled.")
    _, headers, _ = call("GET", first + "/api/v1/config/", key=keys["read"])
    revision = int(headers["X-Config-Revision"])
    with subscribed(second, keys["read"]) as stream:
        hello = stream.next_named("hello")
        move_label(first, keys["write"], "staging", revision)
        moved = time.monotonic()
        event = stream.next(timeout=2)
        assert event.arrived - moved < 1.0
        assert event.event == "label"
        assert event.json == {"label": "staging", "revision": revision}
        revision_part, label_part = event.id.split(".")
        assert revision_part == hello.id.split(".")[0] and int(label_part) > 0
    # Both kinds replay in the order they happened.
    patch(first, keys["write"], config["secretary"], instructions="After the label.")
    move_label(first, keys["write"], "staging", "live")
    with subscribed(first, keys["read"], last_event_id=hello.id) as stream:
        kinds = [stream.next(timeout=2).event for _ in range(3)]
    assert kinds == ["label", "revision", "label"]


def test_a_reconnect_with_last_event_id_gets_the_missed_events_oldest_first(
    instances, keys, config
):
    first, second = instances
    with subscribed(second, keys["read"]) as stream:
        last_seen = stream.next_named("hello").id
    revisions = []
    for round_ in range(3):
        patch(first, keys["write"], config["secretary"], instructions=f"Missed {round_}.")
        status, headers, _ = call("GET", first + "/api/v1/config/", key=keys["read"])
        revisions.append(int(headers["X-Config-Revision"]))

    with subscribed(second, keys["read"], last_event_id=last_seen) as stream:
        missed = [stream.next(timeout=2) for _ in revisions]
    assert [event.event for event in missed] == ["revision"] * 3
    assert [event.json["revision"] for event in missed] == revisions
    assert [event.id for event in missed] == [f"{number}.0" for number in revisions]

    # The same from the query string, for clients that cannot send the header; from the
    # middle, only what came after.
    with subscribed(first, keys["read"], query=f"?last_event_id={missed[0].id}") as stream:
        rest = [stream.next(timeout=2) for _ in revisions[1:]]
        assert [event.json["revision"] for event in rest] == revisions[1:]
        patch(first, keys["write"], config["secretary"], instructions="Live again.")
        assert stream.next(timeout=2).json["revision"] > revisions[-1]  # then live, no repeat


def test_a_reconnect_that_missed_too_much_gets_one_reset(instances, keys, config):
    first, second = instances
    with subscribed(second, keys["read"]) as stream:
        last_seen = stream.next_named("hello").id
    for round_ in range(MAX_REPLAY + 1):
        patch(first, keys["write"], config["secretary"], instructions=f"Many {round_}.")
    _, headers, _ = call("GET", first + "/api/v1/config/", key=keys["read"])

    with subscribed(second, keys["read"], last_event_id=last_seen) as stream:
        reset = stream.next(timeout=2)
        assert reset.event == "reset"
        assert reset.json == {"revision": int(headers["X-Config-Revision"])}
        # Its id resumes exactly: the next change is the next event.
        patch(first, keys["write"], config["secretary"], instructions="After the reset.")
        after = stream.next(timeout=2)
        assert after.event == "revision" and after.json["revision"] > reset.json["revision"]
    with subscribed(second, keys["read"], last_event_id=reset.id) as stream:
        assert stream.next(timeout=2).id == after.id


@pytest.mark.parametrize("last_event_id", ["garbage", "1.2.3", "-1.0", "", "99999999999.0"])
def test_a_malformed_or_unknown_last_event_id_gets_a_reset_not_an_error(
    instances, keys, config, last_event_id
):
    first, _ = instances
    patch(first, keys["write"], config["secretary"], instructions="Some history.")
    with subscribed(first, keys["read"], last_event_id=last_event_id) as stream:
        expected = "hello" if last_event_id == "" else "reset"  # an empty header is no header
        assert stream.next(timeout=2).event == expected


def test_without_a_key_the_answer_is_a_json_401_and_no_stream(instances, keys):
    first, _ = instances
    for key in (None, "not-a-key", "ak_" + "0" * 30 + ".nope"):
        with EventStream(first, key) as refused:
            assert refused.status == 401
            assert refused.headers["Content-Type"] == "application/json"
            assert json.loads(refused.body)["detail"]
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    APIKey.objects.filter(name="events-read").update(revoked=True)
    with EventStream(first, keys["read"]) as revoked:
        assert revoked.status == 401 and revoked.headers["Content-Type"] == "application/json"


def test_keys_of_every_scope_may_subscribe(instances, keys):
    first, _ = instances
    for scope in ("read", "runtime", "write"):
        with subscribed(first, keys[scope]) as stream:
            assert stream.next().event == "hello"


def test_an_idle_stream_gets_a_keep_alive_comment_every_heartbeat(instances, keys):
    first, _ = instances
    with subscribed(first, keys["read"]) as stream:
        stream.next_named("hello")
        began = time.monotonic()
        beats = [stream.next(timeout=HEARTBEAT + 1, comments=True) for _ in range(3)]
    assert [beat.event for beat in beats] == ["comment"] * 3
    assert [beat.data for beat in beats] == ["keep-alive"] * 3
    assert beats[-1].arrived - began < 3 * HEARTBEAT + 1


def test_fifty_dropped_subscribers_are_all_released(instances, keys):
    first, _ = instances
    wait_for(lambda: subscriber_count(first) == 0)
    streams = [subscribed(first, keys["read"]) for _ in range(50)]
    for stream in streams:
        stream.next_named("hello")
    assert subscriber_count(first) == 50  # both workers together
    for stream in streams:
        stream.close()
    wait_for(lambda: subscriber_count(first) == 0, timeout=5)


def test_the_embedded_default_delivers_another_processs_change_within_a_second(fresh_copy):  # noqa: F811
    manage(fresh_copy, "migrate", "--noinput")
    manage(fresh_copy, "import_config", "demo/config.json", "--no-backup")
    key = manage(fresh_copy, "create_api_key", "events", "--scope", "read").splitlines()[-1]
    document = json.loads((fresh_copy / "demo" / "config.json").read_text())
    document["assistants"][0]["instructions"] = "Imported in another terminal."
    (fresh_copy / "changed.json").write_text(json.dumps(document))

    env = {"DEBUG": "1", "DATABASE_URL": "", "REDIS_URL": "", "SECRET_KEY": "", **SERVER_ENV}
    argv = [sys.executable, "manage.py", "runserver", "127.0.0.1:{port}", "--noreload"]
    with server(env=env, cwd=fresh_copy, argv=argv) as base_url:
        with subscribed(base_url, key) as stream:
            stream.next_named("hello")
            manage(fresh_copy, "import_config", "changed.json", "--no-backup")
            committed = time.monotonic()  # the command exited: its import has committed
            event = stream.next_named("revision", timeout=2)
            assert event.arrived - committed < 1.0
            assert len(event.json["assistants"]) == 1

            # Heartbeats, and a dropped subscriber is released at the latest by the next one.
            assert stream.next(timeout=HEARTBEAT + 1, comments=True).data == "keep-alive"
            others = [subscribed(base_url, key) for _ in range(5)]
            for other in others:
                other.next_named("hello")
            assert subscriber_count(base_url) == 6
            for other in others:
                other.close()
        wait_for(lambda: subscriber_count(base_url) == 0, timeout=HEARTBEAT + 5)
