"""POST /api/v1/outcomes/ adds rows to hourly buckets, all or nothing, once per Idempotency-Key;
GET lists them with their rates (docs/outcomes.md)."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from assistants.models import Assistant
from outcomes.models import OutcomeBucket
from tests.factories import key_client, newest_revision, outcome_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def assistant():
    return Assistant.objects.create(name="Secretary", model="gpt-4o-mini", instructions="Hi.")


def post(client, rows, **headers):
    return client.post("/api/v1/outcomes/", {"outcomes": rows}, format="json", headers=headers)


def totals() -> dict:
    buckets = list(OutcomeBucket.objects.values("runs", "errors", "input_tokens", "latency_ms"))
    return {
        name: sum(b[name] for b in buckets)
        for name in ("runs", "errors", "input_tokens", "latency_ms")
    }


def test_rows_of_one_hour_add_into_one_bucket_and_the_list_shows_its_rates(assistant):
    revision = newest_revision()
    runtime = key_client("runtime")
    row = outcome_row(
        assistant,
        revision,
        label="production",
        variant="candidate",
        runs=4,
        errors=1,
        latency_ms=800,
        input_tokens=300,
        output_tokens=100,
        feedback_up=3,
        feedback_down=1,
    )
    first = post(runtime, [row, row])
    assert first.status_code == 201, first.data
    assert first.data == {"rows": 2, "buckets": 1, "repeated": False}
    assert post(runtime, [row]).status_code == 201

    listed = key_client("read").get("/api/v1/outcomes/", {"label": "production"})
    assert listed.status_code == 200
    (bucket,) = listed.data["results"]
    assert bucket["runs"] == 12 and bucket["errors"] == 3 and bucket["variant"] == "candidate"
    assert bucket["error_rate"] == 0.25
    assert bucket["mean_latency_ms"] == 200
    assert bucket["tokens_per_run"] == 100
    assert bucket["feedback_score"] == 0.5
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    assert bucket["period_start"] == hour.isoformat().replace("+00:00", "Z")


def test_a_repeated_idempotency_key_adds_nothing(assistant):
    runtime = key_client("runtime")
    rows = [outcome_row(assistant, newest_revision(), runs=5)]
    assert post(runtime, rows, **{"Idempotency-Key": "batch-1"}).status_code == 201
    again = post(runtime, rows, **{"Idempotency-Key": "batch-1"})
    assert again.status_code == 200 and again.data["repeated"] is True
    assert post(runtime, rows, **{"Idempotency-Key": "batch-2"}).status_code == 201
    assert totals()["runs"] == 10


def test_a_write_key_may_post_and_a_read_key_may_not(assistant):
    rows = [outcome_row(assistant, newest_revision())]
    assert post(key_client("write"), rows).status_code == 201
    refused = post(key_client("read"), rows)
    assert refused.status_code == 403 and "`runtime` or `write`" in refused.data["detail"]
    assert totals()["runs"] == 1


def _far_future():
    return (timezone.now() + datetime.timedelta(days=2)).isoformat()


def _far_past():
    return (timezone.now() - datetime.timedelta(days=30)).isoformat()


BAD_ROWS = [
    ({"runs": -1}, "outcomes/1/runs"),
    ({"runs": 1.5}, "outcomes/1/runs"),
    ({"errors": "2"}, "outcomes/1/errors"),
    ({"tool_calls": True}, "outcomes/1/tool_calls"),
    ({"input_tokens": 10**13}, "outcomes/1/input_tokens"),
    ({"assistant": "00000000-0000-0000-0000-000000000000"}, "outcomes/1/assistant"),
    ({"assistant": "not-a-uuid"}, "outcomes/1/assistant"),
    ({"revision": 999_999}, "outcomes/1/revision"),
    ({"revision": None}, "outcomes/1/revision"),
    ({"variant": "canary"}, "outcomes/1/variant"),
    ({"label": "Live!"}, "outcomes/1/label"),
    ({"period_start": "2030-01-07T10:00:00"}, "outcomes/1/period_start"),
    ({"period_start": "yesterday"}, "outcomes/1/period_start"),
    ({"period_start": "far future"}, "outcomes/1/period_start"),
    ({"period_start": "far past"}, "outcomes/1/period_start"),
    ({"colour": "red"}, "outcomes/1/colour"),
]


@pytest.mark.parametrize(("change", "place"), BAD_ROWS)
def test_a_bad_row_is_refused_naming_its_place_and_nothing_is_added(assistant, change, place):
    revision = newest_revision()
    if change.get("period_start") == "far future":
        change = {"period_start": _far_future()}
    elif change.get("period_start") == "far past":
        change = {"period_start": _far_past()}
    good = outcome_row(assistant, revision)
    answer = post(key_client("runtime"), [good, {**good, **change}, good])
    assert answer.status_code == 400, answer.data
    assert list(answer.data) == [place]
    assert OutcomeBucket.objects.count() == 0


def test_more_than_a_thousand_rows_are_refused(assistant):
    rows = [outcome_row(assistant, newest_revision())] * 1_001
    answer = post(key_client("runtime"), rows)
    assert answer.status_code == 400 and "1,000" in str(answer.data["outcomes"])
    assert OutcomeBucket.objects.count() == 0


def test_a_huge_body_is_refused_before_it_is_read(assistant, settings):
    rows = [outcome_row(assistant, newest_revision(), label="production")] * 1_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    answer = post(key_client("runtime"), rows)
    assert answer.status_code == 413
    assert OutcomeBucket.objects.count() == 0


def test_a_bad_idempotency_key_is_refused(assistant):
    rows = [outcome_row(assistant, newest_revision())]
    answer = post(key_client("runtime"), rows, **{"Idempotency-Key": "x" * 256})
    assert answer.status_code == 400 and list(answer.data) == ["Idempotency-Key"]
    assert OutcomeBucket.objects.count() == 0


def test_a_thousand_rows_cost_a_constant_number_of_queries(assistant):
    others = [Assistant.objects.create(name=f"A{i}", model="m", instructions="x") for i in range(9)]
    revision = newest_revision()
    runtime = key_client("runtime")
    start = timezone.now() - datetime.timedelta(hours=99)
    rows = [
        outcome_row(
            others[i % 9],
            revision,
            period_start=(start + datetime.timedelta(hours=i % 100)).isoformat(),
        )
        for i in range(1_000)
    ]
    with CaptureQueriesContext(connection) as queries:
        answer = post(runtime, rows, **{"Idempotency-Key": "big"})
    assert answer.status_code == 201, answer.data
    assert answer.data["buckets"] == 900
    upserts = [q for q in queries.captured_queries if "ON CONFLICT" in q["sql"]]
    assert len(upserts) == 2  # the key, and the buckets in one statement
    assert len(queries.captured_queries) <= 10
