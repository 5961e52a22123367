"""What a POST of outcomes may hold (docs/contract.md "Releases"; docs/outcomes.md): pure
functions over the decoded body, each problem named by its place (`outcomes/3/runs`).

The references (assistants, revisions) are checked by outcomes.services against the database.
"""

import datetime
import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from core.models import validate_label_name
from outcomes.models import COUNTERS, Variant

MAX_ROWS = 1_000
# Per row and counter: far above a real hour of one config (a million runs of a million
# tokens), far below what would overflow a bucket's 64-bit sums over a year of posts.
MAX_COUNT = 1_000_000_000_000
# How far ahead of the server's clock an hour may start: clocks drift, but not by an hour.
MAX_AHEAD = datetime.timedelta(hours=1)
VARIANTS = frozenset(Variant.values)  # Enum.values builds its list anew at each call
ROW_FIELDS = ("assistant", "revision", "label", "variant", "period_start", *COUNTERS)


@dataclass(frozen=True)
class OutcomeRow:
    index: int  # its place in the request's list
    assistant_id: uuid.UUID
    revision: int
    label: str  # "" for a live read (null in the API)
    variant: str  # "" for no rollout (null in the API)
    period_start: datetime.datetime  # the hour, in UTC
    counts: tuple[int, ...]  # in the order of COUNTERS

    @property
    def bucket(self) -> tuple:
        return (self.assistant_id, self.revision, self.label, self.variant, self.period_start)


def hour_of(moment: datetime.datetime) -> datetime.datetime:
    """The start of the UTC hour holding `moment`: the hourly bucket it adds to."""
    return moment.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)


def outcome_rows(
    body, *, now: datetime.datetime, max_age: datetime.timedelta
) -> tuple[list[OutcomeRow], dict[str, list[str]]]:
    """The rows of a POST body and, by place, what is wrong with it ({} when nothing is)."""
    if not isinstance(body, dict):
        return [], {"non_field_errors": ['Expected an object {"outcomes": [rows]}.']}
    problems: dict[str, list[str]] = {
        key: [_("Unknown field.")] for key in sorted(set(body) - {"outcomes"})
    }
    rows = body.get("outcomes")
    if not isinstance(rows, list):
        problems["outcomes"] = [_("Expected a list of rows.")]
        return [], problems
    if len(rows) > MAX_ROWS:
        problems["outcomes"] = [
            _("At most {limit} rows in one request; got {count}.").format(
                limit=f"{MAX_ROWS:,}", count=f"{len(rows):,}"
            )
        ]
        return [], problems
    parsed = []
    for index, row in enumerate(rows):
        place = f"outcomes/{index}"
        row_problems: dict[str, list[str]] = {}
        value = _row(index, row, now=now, max_age=max_age, problems=row_problems)
        problems.update(
            {f"{place}/{name}" if name else place: m for name, m in row_problems.items()}
        )
        if value is not None:
            parsed.append(value)
    return parsed, problems


def _row(index, row, *, now, max_age, problems) -> OutcomeRow | None:
    if not isinstance(row, dict):
        problems[""] = [_("Expected an object.")]
        return None
    for name in sorted(set(row) - set(ROW_FIELDS)):
        problems[name] = [_("Unknown field.")]
    assistant = _assistant(row.get("assistant"), problems)
    revision = _count(row, "revision", problems, required=True, maximum=2**62)
    label = _label(row.get("label"), problems)
    variant = row.get("variant")
    if variant is not None and variant not in VARIANTS:
        problems["variant"] = [_("Must be base, candidate or null.")]
    period_start = _period_start(
        row.get("period_start"), now=now, max_age=max_age, problems=problems
    )
    counts = tuple(_count(row, name, problems) for name in COUNTERS)
    if problems:
        return None
    return OutcomeRow(index, assistant, revision, label, variant or "", period_start, counts)


def _assistant(value, problems) -> uuid.UUID | None:
    if value is None:
        problems["assistant"] = [_("This field is required: the assistant's id.")]
        return None
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        problems["assistant"] = [_("Must be an assistant's id (a UUID).")]
        return None


def _count(row, name, problems, *, required=False, maximum=MAX_COUNT) -> int:
    if name not in row:
        if required:
            problems[name] = [_("This field is required.")]
        return 0
    value = row[name]
    # bool is an int in Python, and 1.0 is a float in JSON: neither is a count.
    if not isinstance(value, int) or isinstance(value, bool):
        problems[name] = [_("Must be an integer.")]
        return 0
    if not 0 <= value <= maximum:
        problems[name] = [_("Must be from 0 to {maximum}.").format(maximum=f"{maximum:,}")]
        return 0
    return value


def _label(value, problems) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        problems["label"] = [_("Must be a label's name, or null for a live read.")]
        return ""
    try:
        validate_label_name(value)
    except ValidationError as exc:
        problems["label"] = exc.messages
    return value


def _period_start(value, *, now, max_age, problems) -> datetime.datetime | None:
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None or moment.tzinfo is None:
        problems["period_start"] = [
            _("Must be an ISO 8601 date and time with its offset, e.g. 2030-01-07T10:00:00Z.")
        ]
        return None
    if moment > now + MAX_AHEAD:
        problems["period_start"] = [_("Must not be more than an hour ahead of the server's clock.")]
    elif moment < now - max_age:
        hours = int(max_age.total_seconds() // 3600)
        problems["period_start"] = [
            _("Must be at most {hours} hours old (OUTCOMES_MAX_AGE_HOURS).").format(hours=hours)
        ]
    return hour_of(moment)
