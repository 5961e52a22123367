"""`GET /api/v1/config/events/` (docs/contract.md "Runtime delivery", push over HTTP) on real
servers: a change committed through one instance reaches a subscriber of another, naming exactly the
assistants it changed, in commit order (more than one hub read's worth too); a reconnect
resumes with Last-Event-ID (or gets a `reset`); refusals are JSON before any stream;
heartbeats; dropped subscribers are released; hundreds of open streams hold no thread each; a
stream ends when its key stops being valid; a restore resets open streams, which then see later
label moves; and the embedded default (runserver, SQLite, local memory) delivers another
process's change too. (How soon an event follows its commit is measured, not asserted:
bench/sse_scale_bench.py.)"""

import datetime
import io
import json
import re
import sys
import time

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from assistants.models import Assistant
from core import store
from core.models import APIKey, LabelMove, Revision
from tests.factories import EMBEDDED, embedded_manage
from tests.live import (
    call,
    live_database_url,
    server,
    server_output,
    server_pids,
    thread_count,
)
from tests.sse import EventStream
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


def test_a_change_through_one_instance_reaches_a_subscriber_of_another(instances, keys, config):
    first, second = instances
    secretary, calendar = config["secretary"], config["calendar"]
    with subscribed(second, keys["read"]) as stream:
        hello = stream.next_named("hello")
        assert re.fullmatch(r"\d+\.\d+", hello.id)
        numbers = []
        for round_ in range(5):
            patch(first, keys["write"], secretary, instructions=f"Version {round_}.")
            event = stream.next(timeout=5)
            assert event.event == "revision"
            # Only the secretary's config changed (its instructions are its own).
            assert event.json["assistants"] == [str(secretary.id)]
            assert event.id == f"{event.json['revision']}.0"
            numbers.append(event.json["revision"])
        assert numbers == sorted(numbers) and len(set(numbers)) == 5
        # Woken by the commit's Redis message, not by the 0.5 s polling it falls back to.
        assert "pub/sub unavailable" not in server_output(second)

        # Renaming the calendar changes the secretary's config too (its delegate's name).
        patch(first, keys["write"], calendar, name="Agenda")
        event = stream.next(timeout=5)
        assert sorted(event.json["assistants"]) == sorted([str(secretary.id), str(calendar.id)])


def move_label(base_url, key, name, revision):
    status, _, body = call(
        "PUT", f"{base_url}/api/v1/labels/{name}/", key=key, body={"revision": revision}
    )
    assert status in (200, 201), body


def test_a_label_move_through_one_instance_is_a_label_event_on_another(instances, keys, config):
    first, second = instances
    patch(first, keys["write"], config["secretary"], instructions="To be labelled.")
    _, headers, _ = call("GET", first + "/api/v1/config/", key=keys["read"])
    revision = int(headers["X-Config-Revision"])
    with subscribed(second, keys["read"]) as stream:
        hello = stream.next_named("hello")
        move_label(first, keys["write"], "staging", revision)
        event = stream.next(timeout=5)
        assert event.event == "label"
        assert event.json == {"label": "staging", "revision": revision, "rollout": None}
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
        beats = [stream.next(timeout=HEARTBEAT + 1, comments=True) for _ in range(3)]
    assert [beat.event for beat in beats] == ["comment"] * 3
    assert [beat.data for beat in beats] == ["keep-alive"] * 3


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


def test_the_embedded_default_delivers_another_processs_change(fresh_copy):
    embedded_manage(fresh_copy, "migrate", "--noinput")
    embedded_manage(fresh_copy, "import_config", "demo/config.json", "--no-backup")
    made = embedded_manage(fresh_copy, "create_api_key", "events", "--scope", "read")
    key = made.splitlines()[-1]
    document = json.loads((fresh_copy / "demo" / "config.json").read_text())
    document["assistants"][0]["instructions"] = "Imported in another terminal."
    (fresh_copy / "changed.json").write_text(json.dumps(document))

    env = {**EMBEDDED, **SERVER_ENV}
    argv = [sys.executable, "manage.py", "runserver", "127.0.0.1:{port}", "--noreload"]
    with server(env=env, cwd=fresh_copy, argv=argv) as base_url:
        with subscribed(base_url, key) as stream:
            stream.next_named("hello")
            embedded_manage(fresh_copy, "import_config", "changed.json", "--no-backup")
            event = stream.next_named("revision", timeout=5)
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


def test_more_than_one_read_of_pending_events_arrive_in_commit_order(instances, keys):
    """More than events.BATCH (500) revisions pending at once, with a label move committed
    after the 550th: the hub reads them in several reads, and the move still comes after
    every revision committed before it."""
    first, _ = instances
    with subscribed(first, keys["read"]) as stream:
        stream.next_named("hello")
        with transaction.atomic():  # committed at once: the hub sees all 601 in one wake-up
            numbers = pending_revisions(550)
            move = LabelMove.objects.create(label="staging", to_revision=numbers[-1])
            numbers += pending_revisions(50)
        store.store().publish(store.CHANGES_CHANNEL, "test")
        arrived = [stream.next(timeout=10) for _ in range(601)]
    kinds = [event.event for event in arrived]
    assert kinds == ["revision"] * 550 + ["label"] + ["revision"] * 50
    assert [event.json["revision"] for event in arrived if event.event == "revision"] == numbers
    assert arrived[550].id == f"{numbers[549]}.{move.id}"


def pending_revisions(count: int) -> list[int]:
    """`count` Revision rows (as committed change sets leave them), numbered after the newest;
    returns their numbers."""
    newest = Revision.objects.order_by("-number").values_list("number", flat=True).first() or 0
    rows = [
        Revision(number=newest + i, source=Revision.Source.API, assistants=[])
        for i in range(1, count + 1)
    ]
    for row in rows:  # one by one: each gets its own, later, created_at
        row.save()
    return [row.number for row in rows]


def test_four_hundred_open_streams_on_one_worker_hold_no_thread_each(keys, config):
    """Django's ASGI handler keeps a thread blocked per open stream; streams of API keys are
    served in the event loop instead."""
    env = {"DATABASE_URL": live_database_url(), **SERVER_ENV}
    with server(env=env, workers=1) as base_url:
        worker_pids = server_pids(base_url)
        before = sum(thread_count(pid) for pid in worker_pids)
        streams = [subscribed(base_url, keys["read"]) for _ in range(400)]
        try:
            for stream in streams:
                stream.next_named("hello")
            held = sum(thread_count(pid) for pid in server_pids(base_url))
            patch(base_url, keys["write"], config["secretary"], instructions="To all 400.")
            delivered = [stream.next_named("revision").json for stream in streams]
        finally:
            for stream in streams:
                stream.close()
    assert held - before <= 10, (before, held)
    assert len({json.dumps(event) for event in delivered}) == 1  # the same event to each


def revoke(how: str, api_key: APIKey, admin_client) -> None:
    if how == "by the admin's action":
        response = admin_client.post(
            "/admin/config_backend/apikey/",
            {"action": "revoke_selected", "_selected_action": [api_key.pk]},
        )
        assert response.status_code == 302
    elif how == "deleted":
        api_key.delete()
    # "expired": nothing to do but wait (no change is made, no revision moves).


@pytest.mark.parametrize("how", ["by the admin's action", "deleted", "expired"])
def test_a_stream_ends_when_its_key_stops_being_valid(instances, how, admin_client):
    first, _ = instances
    expires = timezone.now() + datetime.timedelta(seconds=3) if how == "expired" else None
    api_key, key = APIKey.objects.create_key(name="doomed", scope="read", expiry_date=expires)
    with subscribed(first, key) as stream:
        stream.next_named("hello")
        revoke(how, api_key, admin_client)
        assert stream.ended(timeout=HEARTBEAT + 10)
    with EventStream(first, key) as again:
        assert again.status == 401


def test_after_a_restore_open_streams_are_reset_and_see_later_label_moves(keys, config, tmp_path):
    env = {"DATABASE_URL": live_database_url(), **SERVER_ENV}
    with server(env=env, workers=1) as base_url:
        patch(base_url, keys["write"], config["secretary"], instructions="Backed up.")
        move_label(base_url, keys["write"], "staging", "live")
        backup_file = tmp_path / "service.dump"
        call_command("backup_service", "-o", str(backup_file), stdout=io.StringIO())
        for _ in range(3):  # label move ids the restore takes back
            move_label(base_url, keys["write"], "staging", "live")
        with subscribed(base_url, keys["read"]) as stream:
            stream.next_named("hello")
            call_command("restore_service", str(backup_file), "--force", stdout=io.StringIO())
            reset = stream.next(timeout=10)
            assert reset.event == "reset"
            move_label(base_url, keys["write"], "staging", "live")
            moved = stream.next(timeout=10)
    assert moved.event == "label" and moved.json["label"] == "staging"
    assert int(moved.id.split(".")[1]) > int(reset.id.split(".")[1])
