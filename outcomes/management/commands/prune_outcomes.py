"""`manage.py prune_outcomes`: keeps the outcome buckets bounded (outcomes.services;
docs/outcomes.md). Run it daily (cron, a Kubernetes CronJob); running it twice changes
nothing more."""

from django.conf import settings
from django.core.management.base import BaseCommand

from outcomes.services import outcomes_prune


class Command(BaseCommand):
    help = (
        "Roll hourly outcome buckets older than OUTCOMES_HOURLY_DAYS into daily ones, delete "
        "buckets older than OUTCOMES_RETENTION_DAYS, and forget Idempotency-Keys older than "
        "OUTCOMES_IDEMPOTENCY_HOURS."
    )

    def handle(self, *args, **options):
        pruned = outcomes_prune()
        self.stdout.write(
            f"Rolled {pruned.rolled_up} hourly buckets older than "
            f"{settings.OUTCOMES_HOURLY_DAYS} days into daily ones; deleted {pruned.deleted} "
            f"buckets older than {settings.OUTCOMES_RETENTION_DAYS} days; forgot "
            f"{pruned.keys} Idempotency-Keys."
        )
