"""Reads of webhooks."""

from django.db.models import QuerySet

from webhooks.models import Webhook


def webhook_list() -> QuerySet[Webhook]:
    return Webhook.objects.order_by("created_at", "id")
