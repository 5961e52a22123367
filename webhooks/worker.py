"""The worker of `manage.py run_webhooks`: claims due deliveries with a lease, sends them,
records every attempt (docs/webhooks.md has the choice of a loop of our own over a task
library, and the measurements).

- Claiming: one short transaction sets `locked_until` (now + the lease) and a fresh `lease`
  token on due, unleased deliveries. On PostgreSQL the candidates are read with
  `SELECT … FOR UPDATE SKIP LOCKED`, so concurrent workers take different rows without waiting;
  on SQLite (no SKIP LOCKED) the claim is one `UPDATE … WHERE id IN (due) AND unleased`, which
  SQLite runs under its single write lock. Either way the UPDATE's own condition (unleased) is
  what makes a claim exclusive: two workers never hold one delivery at once.
- Sending: a claimed delivery is sent only while its lease has at least the send timeout left
  (checked before each send), so a delivery is never sent by two workers at once. The result
  is recorded only under the same token.
- A killed worker: its deliveries stay claimed until their lease ends (LEASE_SECONDS), then any
  worker takes them again: sent again within LEASE_SECONDS + a poll, at least once.
- Endpoints: each claim skips endpoints that already have a delivery in flight, and a worker
  sends one endpoint's deliveries in order on one thread; so a receiver that hangs holds one
  thread for the timeout, not the worker, and the other endpoints go on.
- Retries: after a failed attempt the delivery waits settings.WEBHOOK_RETRY_DELAYS[tries - 1];
  with none left it is failed. 410 Gone fails it and deactivates its webhook.
"""

import logging
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone

from webhooks.models import Attempt, Delivery, Webhook
from webhooks.outbox import event_body
from webhooks.sending import TIMEOUT_SECONDS, Outcome, send

logger = logging.getLogger(__name__)

LEASE_SECONDS = 20.0
POLL_SECONDS = 0.25
CONCURRENCY = 8
# Deliveries of one endpoint a claim takes at most (sent in order, while the lease lasts).
PER_ENDPOINT = 20
# A send starts only while the lease has this much more than the timeout left.
LEASE_MARGIN_SECONDS = 1.0


def _unleased(now) -> Q:
    return Q(locked_until__isnull=True) | Q(locked_until__lt=now)


def due_deliveries(now):
    """Pending deliveries whose time has come, of active endpoints with nothing in flight."""
    in_flight = Delivery.objects.filter(
        status=Delivery.Status.PENDING, locked_until__gte=now
    ).values("webhook_id")
    return (
        Delivery.objects.filter(
            status=Delivery.Status.PENDING, next_attempt_at__lte=now, webhook__is_active=True
        )
        .filter(_unleased(now))
        .exclude(webhook_id__in=in_flight)
        .order_by("next_attempt_at", "id")
    )


def claim(*, limit: int, lease_seconds: float) -> tuple[str, list[Delivery]]:
    """Lease up to `limit` due deliveries to this caller: (the lease token, the deliveries)."""
    now = timezone.now()
    token = uuid.uuid4().hex
    due = due_deliveries(now)
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            locked = due.select_for_update(skip_locked=True, of=("self",))
            ids = list(locked.values_list("id", flat=True)[:limit])
        else:  # SQLite: a subquery of the one UPDATE below (module docstring)
            ids = due.values("id")[:limit]
        Delivery.objects.filter(_unleased(now), id__in=ids, status=Delivery.Status.PENDING).update(
            locked_until=now + timedelta(seconds=lease_seconds), lease=token
        )
    claimed = (
        Delivery.objects.filter(lease=token, status=Delivery.Status.PENDING)
        .select_related("webhook", "revision", "label_move")
        .order_by("next_attempt_at", "id")
    )
    return token, list(claimed)


def release(deliveries: Iterable[Delivery], token: str) -> None:
    """Give back claimed deliveries unsent: they are due again at once."""
    ids = [delivery.id for delivery in deliveries]
    if ids:
        Delivery.objects.filter(id__in=ids, lease=token).update(locked_until=None, lease="")


def record(delivery: Delivery, token: str, outcome: Outcome, started_at) -> None:
    """Keep the attempt, and move the delivery on: delivered, retried later, or failed."""
    now = timezone.now()
    tries = delivery.tries + 1
    delays = settings.WEBHOOK_RETRY_DELAYS
    fields = {"tries": tries, "locked_until": None, "lease": ""}
    if outcome.delivered:
        fields.update(status=Delivery.Status.DELIVERED, finished_at=now)
    elif outcome.gone or tries > len(delays):
        fields.update(status=Delivery.Status.FAILED, finished_at=now)
    else:
        fields["next_attempt_at"] = now + timedelta(seconds=delays[tries - 1])
    with transaction.atomic():
        Attempt.objects.create(
            delivery_id=delivery.id,
            started_at=started_at,
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
            response_body=outcome.response_body,
            error=outcome.error,
        )
        kept = Delivery.objects.filter(id=delivery.id, lease=token).update(**fields)
        if outcome.gone:
            Webhook.objects.filter(id=delivery.webhook_id).update(
                is_active=False,
                disabled_reason=f"Answered 410 Gone at {now:%Y-%m-%d %H:%M:%S} UTC.",
            )
    if not kept:
        logger.warning(
            "Webhook delivery %s: its lease ended before the attempt was recorded; another "
            "worker may send it again.",
            delivery.message_id,
        )
    if not outcome.delivered:
        logger.warning(
            "Webhook delivery %s to webhook %s failed (attempt %s): %s",
            delivery.message_id,
            delivery.webhook_id,
            tries,
            outcome.status_code or outcome.error,
        )


class Worker:
    def __init__(
        self,
        *,
        concurrency: int = CONCURRENCY,
        lease_seconds: float = LEASE_SECONDS,
        poll_seconds: float = POLL_SECONDS,
        timeout: float = TIMEOUT_SECONDS,
    ):
        if lease_seconds < timeout + LEASE_MARGIN_SECONDS + 1:
            raise ValueError(
                f"The lease must be longer than the send timeout ({timeout:g} s) + "
                f"{LEASE_MARGIN_SECONDS + 1:g} s."
            )
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.timeout = timeout
        self.stop = threading.Event()

    def run(self, *, until_idle: bool = False) -> None:
        """Send until `stop` is set (or, `until_idle`, until nothing is due or in flight);
        a stop lets the sends in progress finish."""
        running: set[Future] = set()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook-send") as pool:
            while not self.stop.is_set():
                running = {future for future in running if not future.done()}
                groups = self._claim_groups(self.concurrency - len(running))
                for token, claimed_at, deliveries in groups:
                    running.add(pool.submit(self._send_group, token, claimed_at, deliveries))
                if groups:
                    continue
                if until_idle and not running:
                    return
                if running:
                    wait(running, timeout=self.poll_seconds, return_when=FIRST_COMPLETED)
                else:
                    self.stop.wait(self.poll_seconds)

    def _claim_groups(self, free: int) -> list[tuple[str, float, list[Delivery]]]:
        """Claimed deliveries by endpoint, for at most `free` endpoints."""
        if free <= 0:
            return []
        close_old_connections()
        try:
            claimed_at = time.monotonic()
            token, claimed = claim(limit=free * PER_ENDPOINT, lease_seconds=self.lease_seconds)
        except DatabaseError as exc:
            logger.warning("Webhooks: claiming deliveries failed (%s); trying again.", exc)
            self.stop.wait(self.poll_seconds)
            return []
        by_endpoint: dict = {}
        for delivery in claimed:
            by_endpoint.setdefault(delivery.webhook_id, []).append(delivery)
        groups = [group[:PER_ENDPOINT] for group in by_endpoint.values()]
        kept, extra = groups[:free], [d for group in groups[free:] for d in group]
        extra += [d for group in by_endpoint.values() for d in group[PER_ENDPOINT:]]
        release(extra, token)
        return [(token, claimed_at, group) for group in kept]

    def _send_group(self, token: str, claimed_at: float, deliveries: list[Delivery]) -> None:
        """One endpoint's deliveries, in order, while the lease lasts."""
        close_old_connections()
        latest_start = claimed_at + self.lease_seconds - self.timeout - LEASE_MARGIN_SECONDS
        try:
            for index, delivery in enumerate(deliveries):
                if time.monotonic() > latest_start or self.stop.is_set():
                    release(deliveries[index:], token)
                    return
                started_at = timezone.now()
                outcome = send(
                    url=delivery.webhook.url,
                    secret=delivery.webhook.secret,
                    message_id=delivery.message_id,
                    body=event_body(delivery),
                    timeout=self.timeout,
                )
                record(delivery, token, outcome, started_at)
                if outcome.gone:  # the endpoint is deactivated: the rest wait for it
                    release(deliveries[index + 1 :], token)
                    return
        except Exception:  # the worker outlives it; unrecorded deliveries go when leases end
            logger.exception("Webhooks: sending to webhook %s failed", deliveries[0].webhook_id)
        finally:
            # Pool threads outlive a group but not the worker: no connection is left behind.
            connection.close()
