"""The transactional outbox: a delivery row per subscribed webhook, written in the transaction
of the change it reports (docs/webhooks.md).

A revision's rows are written when its change set opens (core.changes.change_set_opened), a
label move's by config_backend.history.labels.label_move, a label request's by
config_backend.history.approvals (its data: a snapshot, not a row), each inside the change's own
transaction: a change that rolls back takes its deliveries with it, one that commits has them
committed too, for the worker to find however long it is down.

A delivery refers to the row it reports rather than copying it: the body is built when it is
sent (`event_body`), from the committed row. A change set keeps updating its Revision row
(number, assistants) until it commits, and is only visible to the worker afterwards.
"""

import json

from django.dispatch import receiver

from core.changes import change_set_opened
from core.models import LabelMove, Revision
from webhooks.models import Delivery, Event, Webhook


def enqueue(event: str, **reported) -> int:
    """A pending delivery of `event` for each active webhook subscribed to it; `reported`: the
    row it reports (revision=, label_move=) or what it reports (data=). Returns how many."""
    subscribed = [
        webhook_id
        for webhook_id, events in Webhook.objects.filter(is_active=True).values_list("id", "events")
        if event in events
    ]
    Delivery.objects.bulk_create(
        Delivery(webhook_id=webhook_id, event=event, **reported) for webhook_id in subscribed
    )
    return len(subscribed)


@receiver(change_set_opened, dispatch_uid="webhooks_revision_outbox")
def revision_opened(sender, revision: Revision, **kwargs) -> None:
    enqueue(Event.REVISION, revision=revision)


def label_moved(move: LabelMove) -> None:
    """Called by label_move in its transaction."""
    enqueue(Event.LABEL, label_move=move)


def label_request_changed(data: dict) -> None:
    """Called by config_backend.history.approvals in the transaction that makes a label request
    or changes it (an approval, its status), with the request as the API shows it."""
    enqueue(Event.LABEL_REQUEST, data=data)


def event_data(delivery: Delivery) -> dict:
    """What the SSE stream's event of the same change carries (core.events)."""
    if delivery.event == Event.REVISION:
        revision = delivery.revision
        return {"revision": revision.number, "assistants": list(revision.assistants)}
    if delivery.event == Event.LABEL:
        return delivery.label_move.event_data()
    if delivery.event == Event.LABEL_REQUEST:
        return delivery.data
    raise ValueError(f"No data for a {delivery.event} delivery.")


def event_body(delivery: Delivery) -> bytes:
    """The JSON body of a delivery: {"type", "data"}."""
    body = {"type": delivery.event, "data": event_data(delivery)}
    return json.dumps(body, separators=(",", ":")).encode()
