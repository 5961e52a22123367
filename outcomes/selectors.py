"""Reads of outcomes: the API's list, the admin's comparisons, and the derived rates (defined
once here; docs/outcomes.md)."""

import datetime
from dataclasses import dataclass

from django.db.models import QuerySet, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone
from django.utils.translation import gettext as _

from outcomes.charts import line_chart
from outcomes.models import COUNTERS, OutcomeBucket, Variant

LIVE = "live"


def outcome_buckets(
    *, assistant=None, label: str | None = None, since: datetime.datetime | None = None
) -> QuerySet[OutcomeBucket]:
    """Buckets, oldest first; `label="live"` is the rows of live reads (no label)."""
    buckets = OutcomeBucket.objects.order_by("period_start", "id")
    if assistant is not None:
        buckets = buckets.filter(assistant_id=assistant)
    if label is not None:
        buckets = buckets.filter(label="" if label == LIVE else label)
    if since is not None:
        buckets = buckets.filter(period_start__gte=since)
    return buckets


def derived(counts) -> dict:
    """The rates of a bucket or a sum of buckets (anything with the COUNTERS as attributes or
    keys); None where the denominator is 0.

    error_rate = errors / runs; mean_latency_ms = latency_ms / runs; tokens_per_run =
    (input_tokens + output_tokens) / runs; feedback_score = (up − down) / (up + down), from −1
    (all down) to 1 (all up).
    """
    get = counts.get if isinstance(counts, dict) else lambda name: getattr(counts, name)
    runs = get("runs") or 0
    up, down = get("feedback_up") or 0, get("feedback_down") or 0
    tokens = (get("input_tokens") or 0) + (get("output_tokens") or 0)
    return {
        "error_rate": (get("errors") or 0) / runs if runs else None,
        "mean_latency_ms": (get("latency_ms") or 0) / runs if runs else None,
        "tokens_per_run": tokens / runs if runs else None,
        "feedback_score": (up - down) / (up + down) if up + down else None,
    }


@dataclass(frozen=True)
class VariantSummary:
    variant: str
    totals: dict  # COUNTERS → sum
    rates: dict  # derived(totals)
    days: list[tuple[datetime.date, dict]]  # (day, totals and rates) oldest first


def label_comparison(*, label: str, since: datetime.datetime) -> list[VariantSummary]:
    """Base and candidate of a label since `since`: totals, rates, and one point a day for the
    chart. Two queries, whatever the number of buckets (summed by the database)."""
    buckets = OutcomeBucket.objects.filter(label=label, period_start__gte=since)
    totals = {
        row["variant"]: summed(row)
        for row in buckets.values("variant").annotate(**sums()).order_by("variant")
    }
    by_day: dict[str, list] = {Variant.BASE: [], Variant.CANDIDATE: []}
    daily = (
        buckets.filter(variant__in=by_day)
        .annotate(day=TruncDay("period_start", tzinfo=datetime.UTC))
        .values("variant", "day")
        .annotate(**sums())
        .order_by("variant", "day")
    )
    for row in map(summed, daily):
        by_day[row["variant"]].append((row["day"].date(), {**row, **derived(row)}))
    summaries = []
    for variant in (Variant.BASE, Variant.CANDIDATE):
        found = totals.get(variant, {})
        counts = {name: found.get(name) or 0 for name in COUNTERS}
        summaries.append(VariantSummary(variant, counts, derived(counts), by_day[variant]))
    return summaries


def assistant_revision_outcomes(*, assistant_id, since: datetime.datetime, limit: int = 10):
    """An assistant's most recent revisions with their totals and rates since `since`, newest
    revision first; one query."""
    rows = (
        OutcomeBucket.objects.filter(assistant_id=assistant_id, period_start__gte=since)
        .values("revision")
        .annotate(**sums())
        .order_by("-revision")[:limit]
    )
    return [{**row, **derived(row)} for row in map(summed, rows)]


def sums() -> dict:
    """Annotations summing each counter, as `sum_<counter>` (a field's own name is taken)."""
    return {f"sum_{name}": Sum(name) for name in COUNTERS}


def summed(row: dict) -> dict:
    """A row annotated with sums(), its sums under the counters' names (0 for none)."""
    return {**row, **{name: row.get(f"sum_{name}") or 0 for name in COUNTERS}}


# What the admin shows -------------------------------------------------------------------------

COMPARISON_DAYS = (1, 7, 30, 90, 365)
DEFAULT_COMPARISON_DAYS = 30


def label_comparison_context(*, label: str, days: str | None) -> dict:
    """The context of admin/outcomes/label_comparison.html: base and candidate since `days`
    ago (one of COMPARISON_DAYS; 30 otherwise), side by side, and their charts."""
    chosen = int(days) if days in {str(d) for d in COMPARISON_DAYS} else DEFAULT_COMPARISON_DAYS
    summaries = label_comparison(
        label=label, since=timezone.now() - datetime.timedelta(days=chosen)
    )
    runs = {s.variant: [(day, point["runs"]) for day, point in s.days] for s in summaries}
    errors = {s.variant: [(day, point["error_rate"]) for day, point in s.days] for s in summaries}
    return {
        "outcome_days": chosen,
        "outcome_day_choices": COMPARISON_DAYS,
        "outcome_summaries": summaries,
        "outcome_has_data": any(s.totals["runs"] or s.days for s in summaries),
        "outcome_charts": [
            line_chart(
                title=_("Runs per day"),
                series=runs,
                value_label=lambda v: f"{v:,.0f}",
                chart_id="outcome-runs-chart",
            ),
            line_chart(
                title=_("Error rate per day"),
                series=errors,
                value_label=lambda v: f"{v:.1%}",
                chart_id="outcome-error-chart",
            ),
        ],
    }
