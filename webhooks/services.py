"""Writes to webhooks and their deliveries (the admin and the API both call these)."""

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from core.services import model_update
from webhooks.models import Delivery, Webhook

# What webhook_update may change (the secret never changes: make a new webhook instead).
WEBHOOK_FIELDS = ("url", "events", "is_active")


@transaction.atomic
def webhook_create(**fields) -> Webhook:
    """A new webhook with a new secret (its only showing is the caller's answer)."""
    webhook = Webhook(**fields)
    webhook.full_clean()
    webhook.save()
    return webhook


@transaction.atomic
def webhook_update(*, webhook: Webhook, **fields) -> Webhook:
    """Change the given fields; re-activating clears why the sender had deactivated it."""
    webhook, _ = model_update(instance=webhook, fields=WEBHOOK_FIELDS, data=fields)
    if webhook.is_active and webhook.disabled_reason:
        webhook.disabled_reason = ""
        webhook.save(update_fields=["disabled_reason"])
    return webhook


@transaction.atomic
def webhook_delete(*, webhook: Webhook) -> None:
    """Delete it with its deliveries and their attempts."""
    webhook.delete()


def delivery_resend(*, deliveries: QuerySet[Delivery]) -> int:
    """Send these deliveries again from the first retry on, however they ended; not those a
    worker is sending now. Returns how many."""
    now = timezone.now()
    sending = Q(status=Delivery.Status.PENDING, locked_until__gte=now)
    return deliveries.exclude(sending).update(
        status=Delivery.Status.PENDING,
        tries=0,
        next_attempt_at=now,
        locked_until=None,
        lease="",
        finished_at=None,
    )
