"""Writes of outcomes: adding a batch to the hourly buckets, and pruning old buckets.

Adding is one atomic upsert per chunk of rows (`INSERT … ON CONFLICT DO UPDATE SET runs =
runs + EXCLUDED.runs, …`: PostgreSQL and SQLite both have it), so concurrent batches from many
runtime instances each add their counts and none is lost, whatever the interleaving. Rows of one
batch that fall in one bucket are summed first (one statement may not touch a row twice), and
buckets are written in one order (their key) so two batches never wait on each other in a circle.

An `Idempotency-Key` is inserted into OutcomeBatch in the same transaction, before the buckets:
a repeat, on any process, either finds it committed (and adds nothing) or waits on the first's
row lock until it commits (and then adds nothing) or rolls back (and then adds its own).
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models.functions import TruncDay
from django.utils import timezone
from django.utils.translation import gettext as _

from assistants.selectors import assistant_names
from core.models import Revision
from core.ops.metrics import count_outcomes
from outcomes.models import COUNTERS, DAILY, HOURLY, OutcomeBatch, OutcomeBucket
from outcomes.selectors import summed, sums
from outcomes.validators import OutcomeRow, outcome_rows

KEY_COLUMNS = ("assistant_id", "revision", "label", "variant", "period_start", "hours")


@dataclass(frozen=True)
class AddedOutcomes:
    rows: int  # rows of the request added (0 for a repeat)
    buckets: int  # buckets they added to
    repeated: bool  # the Idempotency-Key was seen already: nothing was added


def outcomes_add(*, body, idempotency_key: str | None) -> AddedOutcomes:
    """Add a POST's rows to their hourly buckets, all or nothing; ValidationError by place
    (`outcomes/3/runs`) when any row is wrong."""
    now = timezone.now()
    max_age = datetime.timedelta(hours=settings.OUTCOMES_MAX_AGE_HOURS)
    rows, problems = outcome_rows(body, now=now, max_age=max_age)
    names = _reference_problems(rows, problems)
    if problems:
        raise ValidationError(problems)
    buckets = _summed(rows)
    with transaction.atomic():
        if idempotency_key is not None and not _first_use(idempotency_key, now):
            return AddedOutcomes(rows=0, buckets=0, repeated=True)
        _upsert(buckets, hours=HOURLY)
        transaction.on_commit(lambda: count_outcomes(_metric_totals(buckets, names)))
    return AddedOutcomes(rows=len(rows), buckets=len(buckets), repeated=False)


def _reference_problems(rows: list[OutcomeRow], problems: dict) -> dict:
    """Add to `problems` the rows naming an unknown assistant or revision; the names of the
    known assistants (for the metrics). Two queries, whatever the number of rows."""
    if not rows:
        return {}
    names = assistant_names(ids={row.assistant_id for row in rows})
    known_revisions = set(
        Revision.objects.filter(number__in={row.revision for row in rows}).values_list(
            "number", flat=True
        )
    )
    for row in rows:
        if row.assistant_id not in names:
            problems[f"outcomes/{row.index}/assistant"] = [_("No assistant has this id.")]
        if row.revision not in known_revisions:
            problems[f"outcomes/{row.index}/revision"] = [
                _("No revision of the history has this number (GET /api/v1/revisions/).")
            ]
    return names


def _summed(rows: list[OutcomeRow]) -> list[tuple[tuple, list[int]]]:
    totals: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(COUNTERS))
    for row in rows:
        bucket = totals[row.bucket]
        for position, count in enumerate(row.counts):
            bucket[position] += count
    return sorted(totals.items(), key=lambda item: (str(item[0][0]), *item[0][1:]))


def _first_use(key: str, now) -> bool:
    """Record the key; False when it was recorded already (by this or any process)."""
    table = connection.ops.quote_name(OutcomeBatch._meta.db_table)
    key_column = connection.ops.quote_name("key")
    created_at = OutcomeBatch._meta.get_field("created_at").get_db_prep_save(now, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            # Our table's and column's names; the values are parameters.
            f"INSERT INTO {table} ({key_column}, created_at) VALUES (%s, %s) "  # noqa: S608
            f"ON CONFLICT ({key_column}) DO NOTHING",
            [key, created_at],
        )
        return cursor.rowcount == 1


def _upsert(buckets: list[tuple[tuple, list[int]]], *, hours: int) -> None:
    """Add each bucket's counts to its row, creating the row when there is none."""
    if not buckets:
        return
    quote = connection.ops.quote_name
    table = quote(OutcomeBucket._meta.db_table)
    columns = ", ".join(quote(c) for c in (*KEY_COLUMNS, *COUNTERS))
    conflict = (
        f"ON CONFLICT ({', '.join(quote(c) for c in KEY_COLUMNS)}) DO UPDATE SET "
        + ", ".join(f"{quote(c)} = {table}.{quote(c)} + EXCLUDED.{quote(c)}" for c in COUNTERS)
    )
    if connection.vendor == "postgresql":
        # One array per column, unnested into rows: 15 parameters whatever the number of
        # rows, so neither the driver nor the planner sees a statement growing with the batch.
        types = ("uuid", "bigint", "text", "text", "timestamptz", "smallint")
        arrays = [list(column) for column in zip(*(key for key, _ in buckets), strict=True)]
        arrays.append([hours] * len(buckets))
        arrays += [list(column) for column in zip(*(counts for _, counts in buckets), strict=True)]
        unnest = ", ".join(f"%s::{t}[]" for t in (*types, *["bigint"] * len(COUNTERS)))
        statement = f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({unnest}) {conflict}"  # noqa: S608 E501  (our names; values are parameters)
        with connection.cursor() as cursor:
            cursor.execute(statement, arrays)
        return
    fields = [OutcomeBucket._meta.get_field(name.removesuffix("_id")) for name in KEY_COLUMNS]
    placeholders = "(" + ", ".join(["%s"] * (len(KEY_COLUMNS) + len(COUNTERS))) + ")"
    # SQLite bounds the parameters of one statement.
    per_statement = connection.ops.bulk_batch_size([*KEY_COLUMNS, *COUNTERS], buckets)
    for start in range(0, len(buckets), per_statement):
        chunk = buckets[start : start + per_statement]
        params = []
        for key, counts in chunk:
            values = (*key, hours)
            params += [
                field.get_db_prep_save(v, connection)
                for field, v in zip(fields, values, strict=True)
            ]
            params += counts
        statement = (
            f"INSERT INTO {table} ({columns}) "  # noqa: S608  (our names; values are parameters)
            f"VALUES {', '.join([placeholders] * len(chunk))} {conflict}"
        )
        with connection.cursor() as cursor:
            cursor.execute(statement, params)


def _metric_totals(buckets, names: dict) -> dict[tuple[str, str], list[int]]:
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(COUNTERS))
    for key, counts in buckets:
        total = totals[names.get(key[0], str(key[0])), key[3] or "none"]
        for position, count in enumerate(counts):
            total[position] += count
    return totals


@dataclass(frozen=True)
class Pruned:
    rolled_up: int  # hourly buckets rolled into daily ones
    deleted: int  # buckets past the retention
    keys: int  # Idempotency-Keys forgotten


@transaction.atomic
def outcomes_prune(*, now: datetime.datetime | None = None) -> Pruned:
    """Roll hourly buckets older than OUTCOMES_HOURLY_DAYS into daily ones, delete buckets older
    than OUTCOMES_RETENTION_DAYS, forget keys older than OUTCOMES_IDEMPOTENCY_HOURS.

    No POST adds to an hour this old (OUTCOMES_MAX_AGE_HOURS is shorter, checked at start-up),
    so the hours rolled up are final.
    """
    now = now or timezone.now()
    retained = now - datetime.timedelta(days=settings.OUTCOMES_RETENTION_DAYS)
    deleted, _ = OutcomeBucket.objects.filter(period_start__lt=retained).delete()
    old_hours = OutcomeBucket.objects.filter(
        hours=HOURLY, period_start__lt=now - datetime.timedelta(days=settings.OUTCOMES_HOURLY_DAYS)
    )
    days = (
        old_hours.annotate(day=TruncDay("period_start", tzinfo=datetime.UTC))
        .values("assistant_id", "revision", "label", "variant", "day")
        .annotate(**sums())
        .order_by("assistant_id", "revision", "label", "variant", "day")
    )
    daily = [
        (
            (day["assistant_id"], day["revision"], day["label"], day["variant"], day["day"]),
            [day[name] for name in COUNTERS],
        )
        for day in map(summed, days)
    ]
    _upsert(daily, hours=DAILY)
    rolled_up, _ = old_hours.delete()
    forgotten, _ = OutcomeBatch.objects.filter(
        created_at__lt=now - datetime.timedelta(hours=settings.OUTCOMES_IDEMPOTENCY_HOURS)
    ).delete()
    return Pruned(rolled_up=rolled_up, deleted=deleted, keys=forgotten)
