"""Outcome buckets: what the runtime reported of each config's runs, added up per hour
(docs/contract.md "Releases", the outcomes part; docs/outcomes.md).

A bucket is one row per (assistant, revision, label, variant, period_start, hours): `hours` is 1
for the hourly buckets the API adds to, 24 for the daily ones `prune_outcomes` rolls old hours
into. A null label (a live read) or variant is stored as "" so that the unique key treats it
as one value on PostgreSQL and SQLite alike (NULLS NOT DISTINCT exists on PostgreSQL 15 only);
the API shows "" as null.
"""

from django.db import models

from assistants.models import Assistant
from core.ops.metrics import OUTCOME_COUNTERS

# The counters a bucket adds up, in the order the API, the upsert and /metrics list them.
COUNTERS = OUTCOME_COUNTERS
HOURLY = 1
DAILY = 24


class Variant(models.TextChoices):
    """The strings of config_client.rollout (BASE, CANDIDATE); "" is no rollout (null)."""

    BASE = "base"
    CANDIDATE = "candidate"


class OutcomeBucket(models.Model):
    id = models.BigAutoField(primary_key=True)
    assistant = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="+")
    revision = models.BigIntegerField()
    label = models.CharField(max_length=32, blank=True, default="")
    variant = models.CharField(max_length=9, blank=True, default="", choices=Variant.choices)
    period_start = models.DateTimeField()
    hours = models.PositiveSmallIntegerField(default=HOURLY)
    runs = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    tool_calls = models.BigIntegerField(default=0)
    tool_errors = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    latency_ms = models.BigIntegerField(default=0, help_text="The sum over the runs.")
    feedback_up = models.BigIntegerField(default=0)
    feedback_down = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["period_start", "id"]
        constraints = [
            # The upsert's conflict target (outcomes.services): keep the column list in step.
            models.UniqueConstraint(
                fields=["assistant", "revision", "label", "variant", "period_start", "hours"],
                name="outcome_bucket_key",
            ),
        ]
        indexes = [
            # The label page and GET ?label=&since=; the assistant page reads by assistant.
            models.Index(fields=["label", "period_start"], name="outcome_label_period"),
            models.Index(fields=["assistant", "period_start"], name="outcome_assistant_period"),
            models.Index(fields=["hours", "period_start"], name="outcome_hours_period"),
        ]

    def __str__(self):
        return f"{self.assistant_id} r{self.revision} {self.label or 'live'} {self.period_start}"


class OutcomeBatch(models.Model):
    """An `Idempotency-Key` already applied: written in the batch's own transaction, so a
    repeat, on any server process, adds nothing. Kept at least OUTCOMES_IDEMPOTENCY_HOURS."""

    key = models.CharField(max_length=255, primary_key=True)
    created_at = models.DateTimeField(db_index=True)

    def __str__(self):
        return self.key
