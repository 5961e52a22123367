"""Webhook endpoints, their outbox of deliveries, and each delivery's attempts
(docs/contract.md "Webhooks"; docs/webhooks.md)."""

import base64
import secrets
import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from webhooks.destinations import URL_MAX_LENGTH, validate_destination

# The body of an attempt's answer kept for the admin, at most.
RESPONSE_BODY_KEPT = 1024


class Event(models.TextChoices):
    """What a webhook may subscribe to; each is the `type` of the body it receives."""

    REVISION = "revision"  # a committed change set (core.changes)
    LABEL = "label"  # a label created or moved (config_backend.history.labels)
    # a label change request made or decided (config_backend.history.approvals)
    LABEL_REQUEST = "label_request"


def default_events() -> list[str]:
    return [Event.REVISION, Event.LABEL]


def validate_events(value) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError(_("Choose at least one event."), code="invalid")
    unknown = [event for event in value if event not in Event.values]
    if unknown:
        raise ValidationError(
            _("Unknown events %(unknown)s; choose among %(known)s.")
            % {"unknown": unknown, "known": Event.values},
            code="invalid",
        )
    if len(set(value)) != len(value):
        raise ValidationError(_("An event is listed twice."), code="invalid")


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class Webhook(models.Model):
    """An endpoint: where to send which events, signed with its secret.

    The secret is kept as it is (the sender needs it to sign every delivery: an HMAC key cannot
    be stored as a hash) and shown once, when the webhook is created; the admin and the API
    never show it again, nor does anything log it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.CharField(
        _("URL"),
        max_length=URL_MAX_LENGTH,
        validators=[validate_destination],
        help_text=_(
            "An http:// or https:// URL on a public address (or a host listed in "
            "WEBHOOK_ALLOWED_HOSTS). Redirects are not followed."
        ),
    )
    events = models.JSONField(
        verbose_name=_("events"), default=default_events, validators=[validate_events]
    )
    is_active = models.BooleanField(
        verbose_name=_("is active"),
        default=True,
        help_text=_("Inactive: no deliveries are made for it, nor sent to it."),
    )
    secret = models.CharField(
        verbose_name=_("secret"), max_length=100, default=new_secret, editable=False
    )
    disabled_reason = models.CharField(
        verbose_name=_("disabled reason"),
        max_length=200,
        blank=True,
        editable=False,
        help_text=_("Why the sender deactivated it."),
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(verbose_name=_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")
        ordering = ["created_at"]

    def __str__(self):
        return self.url


class Delivery(models.Model):
    """One event for one webhook: the outbox row, written in the transaction of the change it
    reports, sent by `run_webhooks` until it succeeds or its retries run out.

    `locked_until` is the sending worker's lease: until then no other worker takes it; a worker
    killed while sending leaves it to be taken again when the lease ends (webhooks.worker).
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = models.BigAutoField(primary_key=True)
    webhook = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("webhook")
    )
    event = models.CharField(verbose_name=_("event"), max_length=20, choices=Event.choices)
    # `webhook-id`: the same on every attempt, so a receiver can drop what it already has.
    message_id = models.CharField(
        verbose_name=_("message id"), max_length=40, unique=True, default=new_message_id
    )
    revision = models.ForeignKey(
        "config_backend.Revision", null=True, on_delete=models.CASCADE, related_name="+"
    )
    label_move = models.ForeignKey(
        "config_backend.LabelMove", null=True, on_delete=models.CASCADE, related_name="+"
    )
    # What a label_request delivery reports, as it was when the request changed: a request
    # row changes again (approvals, its status), and each event tells one moment of it.
    data = models.JSONField(verbose_name=_("data"), null=True, blank=True)
    status = models.CharField(
        verbose_name=_("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    tries = models.PositiveIntegerField(
        verbose_name=_("tries"),
        default=0,
        help_text=_("Attempts since it was made or last resent."),
    )
    next_attempt_at = models.DateTimeField(verbose_name=_("next attempt at"), default=timezone.now)
    locked_until = models.DateTimeField(verbose_name=_("locked until"), null=True, blank=True)
    lease = models.CharField(verbose_name=_("lease"), max_length=32, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)
    finished_at = models.DateTimeField(verbose_name=_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due")]

    def __str__(self):
        return f"{self.event} {self.message_id}"


class Attempt(models.Model):
    """One try at sending a delivery: when, the answer's status (none: no answer), how long,
    and the start of the answer's body."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempts", verbose_name=_("delivery")
    )
    started_at = models.DateTimeField(verbose_name=_("started at"))
    status_code = models.PositiveSmallIntegerField(
        verbose_name=_("status code"), null=True, blank=True
    )
    duration_ms = models.PositiveIntegerField(verbose_name=_("duration ms"))
    response_body = models.TextField(verbose_name=_("response body"), blank=True)
    error = models.CharField(verbose_name=_("error"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("attempt")
        verbose_name_plural = _("attempts")
        ordering = ["-id"]

    def __str__(self):
        return f"attempt {self.id}: {self.status_code or self.error}"
