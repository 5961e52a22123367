"""Outcome storage stays bounded: `prune_outcomes` rolls old hours into days without changing a
total, deletes what is past the retention and forgets old Idempotency-Keys; /metrics counts
what was reported per assistant and variant."""

import datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from assistants.models import Assistant
from outcomes.models import COUNTERS, DAILY, HOURLY, OutcomeBatch, OutcomeBucket
from tests.factories import key_client, newest_revision, outcome_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def assistant():
    return Assistant.objects.create(name="Secretary", model="gpt-4o-mini", instructions="Hi.")


def hours_ago(hours: int) -> datetime.datetime:
    return timezone.now().replace(minute=0, second=0, microsecond=0) - datetime.timedelta(
        hours=hours
    )


def totals(**filters) -> dict:
    buckets = list(OutcomeBucket.objects.filter(**filters).values(*COUNTERS))
    return {name: sum(bucket[name] for bucket in buckets) for name in COUNTERS}


def test_prune_rolls_old_hours_into_days_and_deletes_what_is_past_the_retention(
    assistant, settings
):
    settings.OUTCOMES_HOURLY_DAYS, settings.OUTCOMES_RETENTION_DAYS = 30, 400
    revision = newest_revision()
    for hours in [*range(0, 48), *range(40 * 24, 42 * 24), 401 * 24]:  # recent, old, too old
        for variant in ("base", "candidate"):
            OutcomeBucket.objects.create(
                assistant=assistant,
                revision=revision,
                label="production",
                variant=variant,
                period_start=hours_ago(hours),
                runs=2,
                errors=1,
                latency_ms=100,
            )
    OutcomeBatch.objects.create(key="old", created_at=timezone.now() - datetime.timedelta(days=3))
    OutcomeBatch.objects.create(key="new", created_at=timezone.now())
    kept = totals(period_start__gte=hours_ago(400 * 24))

    out = StringIO()
    call_command("prune_outcomes", stdout=out)

    assert "Rolled 96 hourly buckets" in out.getvalue()
    assert totals() == kept  # nothing of the retained period is lost by rolling up
    assert OutcomeBucket.objects.filter(hours=HOURLY).count() == 96
    daily = OutcomeBucket.objects.filter(hours=DAILY)
    assert daily.count() in (4, 6)  # 48 old hours: 2 days, or 3 when they straddle midnights
    assert all(bucket.period_start.hour == 0 for bucket in daily)
    assert list(OutcomeBatch.objects.values_list("key", flat=True)) == ["new"]

    call_command("prune_outcomes", stdout=StringIO())  # again: nothing more changes
    assert totals() == kept and OutcomeBucket.objects.count() == 96 + daily.count()


def scrape() -> dict:
    response = Client().get("/metrics")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def outcome_metric(found, **labels) -> float:
    return found.get(("config_outcomes_total", tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_reported_outcomes_per_assistant_and_variant(
    assistant, settings, django_capture_on_commit_callbacks
):
    settings.METRICS_ENABLED, settings.METRICS_TOKEN = True, ""
    before = scrape()
    runtime = key_client("runtime")
    rows = [
        outcome_row(assistant, newest_revision(), variant="candidate", runs=4, errors=1),
        outcome_row(assistant, newest_revision(), runs=2, input_tokens=50),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):  # the repeat adds nothing, here too
            runtime.post(
                "/api/v1/outcomes/",
                {"outcomes": rows},
                format="json",
                headers={"Idempotency-Key": "once"},
            )
    after = scrape()

    def delta(**labels):
        return outcome_metric(after, **labels) - outcome_metric(before, **labels)

    assert delta(assistant="Secretary", variant="candidate", counter="runs") == 4
    assert delta(assistant="Secretary", variant="candidate", counter="errors") == 1
    assert delta(assistant="Secretary", variant="none", counter="runs") == 2
    assert delta(assistant="Secretary", variant="none", counter="input_tokens") == 50
