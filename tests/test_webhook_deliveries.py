"""Webhook deliveries sent by the worker (run in this process) to real receivers on loopback:
signed, retried, failed, disabled on 410, refused at send time, resent from the admin, and
written in the transaction of the change they report."""

import re

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from assistants.models import Assistant
from assistants.services import assistant_create, assistant_update
from config_backend.history.labels import label_move
from core.models import LabelMove, Revision
from tests.factories import make_webhook, staff_user
from tests.webhook_receivers import Answer, Receiver, self_signed_certificate
from webhooks.models import Attempt, Delivery, Webhook
from webhooks.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.WEBHOOK_RETRY_DELAYS = [0, 0]


def send_due() -> None:
    """Run a worker until nothing is due (retry delays are 0 here: retries come at once)."""
    Worker(poll_seconds=0.05).run(until_idle=True)


def change(name: str = "Helper") -> Revision:
    """One committed change set; its revision."""
    assistant_create(name=name, model="gpt-4o-mini")
    return Revision.objects.order_by("-number").first()


def test_a_delivery_carries_the_revision_event_signed_as_standard_webhooks_verify_it():
    with Receiver() as receiver:
        webhook = make_webhook(receiver.url)
        revision = change()
        send_due()

        [request] = receiver.received
    payload = request.verified(webhook.secret)  # raises unless the signature is right
    assert payload == {
        "type": "revision",
        "data": {"revision": revision.number, "assistants": revision.assistants},
    }
    assert webhook.secret.startswith("whsec_")
    assert request.headers["webhook-id"] == Delivery.objects.get().message_id


def test_a_signature_made_with_another_secret_does_not_verify():
    from standardwebhooks.webhooks import WebhookVerificationError

    with Receiver() as receiver:
        make_webhook(receiver.url)
        other = make_webhook("http://127.0.0.1:9/other", events=["label"])
        change()
        send_due()
    with pytest.raises(WebhookVerificationError):
        receiver.received[0].verified(other.secret)


def test_a_label_move_is_delivered_as_the_label_event(secretary):
    with Receiver() as receiver:
        webhook = make_webhook(receiver.url, events=["label"])
        number = Revision.objects.order_by("-number").first().number
        label_move(name="candidate", revision=number, author="test")
        send_due()
    [request] = receiver.received
    assert request.verified(webhook.secret) == {
        "type": "label",
        "data": {"label": "candidate", "revision": number, "rollout": None},
    }


def test_only_the_subscribed_events_are_delivered(secretary):
    with Receiver() as revisions, Receiver() as labels:
        make_webhook(revisions.url, events=["revision"])
        make_webhook(labels.url, events=["label", "label_request"])
        label_move(name="candidate", revision="live", author="test")
        change()
        send_due()
    assert [r.payload["type"] for r in revisions.received] == ["revision"]
    assert [r.payload["type"] for r in labels.received] == ["label"]


def test_a_receiver_failing_twice_gets_the_third_attempt_with_the_same_message():
    answers = [Answer(500), Answer(503), Answer(204)]
    with Receiver(lambda n: answers[n]) as receiver:
        make_webhook(receiver.url)
        change()
        send_due()
    assert len(receiver.received) == 3
    assert len(set(receiver.message_ids())) == 1  # one message, three attempts
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.DELIVERED
    attempts = list(delivery.attempts.order_by("id").values_list("status_code", flat=True))
    assert attempts == [500, 503, 204]


def test_a_delivery_is_failed_after_the_last_retry(settings):
    settings.WEBHOOK_RETRY_DELAYS = [0]
    with Receiver(lambda n: Answer(500, body=b"x" * 5000)) as receiver:
        make_webhook(receiver.url)
        change()
        send_due()
    assert len(receiver.received) == 2  # the first attempt and one retry
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.FAILED
    # Each attempt keeps its status, duration and the first KB of the answer.
    for attempt in delivery.attempts.all():
        assert attempt.status_code == 500
        assert attempt.response_body == "x" * 1024
        assert attempt.duration_ms >= 0


def test_410_gone_fails_the_delivery_and_disables_the_endpoint():
    with Receiver(lambda n: Answer(410)) as receiver:
        webhook = make_webhook(receiver.url)
        change("One")
        send_due()
        change("Two")  # no delivery is made for an inactive webhook
        send_due()
    assert len(receiver.received) == 1
    webhook.refresh_from_db()
    assert not webhook.is_active
    assert "410" in webhook.disabled_reason
    assert list(Delivery.objects.values_list("status", flat=True)) == ["failed"]


def test_a_redirect_is_not_followed():
    with Receiver() as elsewhere:
        redirect = Answer(307, headers={"Location": elsewhere.url})
        with Receiver(lambda n: redirect) as receiver:
            make_webhook(receiver.url)
            change()
            send_due()
    assert len(receiver.received) == 3  # every attempt answered with the redirect
    assert elsewhere.received == []
    assert set(Attempt.objects.values_list("status_code", flat=True)) == {307}
    assert Delivery.objects.get().status == Delivery.Status.FAILED


def test_a_destination_no_longer_allowed_is_refused_at_send_time(settings):
    with Receiver() as receiver:
        make_webhook(receiver.url)
        change()
        settings.WEBHOOK_ALLOWED_HOSTS = []  # as if DNS now pointed the host at loopback
        send_due()
    assert receiver.received == []
    errors = set(Attempt.objects.values_list("error", flat=True))
    assert len(errors) == 1 and "127.0.0.1" in errors.pop()


def test_https_goes_to_the_checked_address_with_the_certificate_checked_for_the_host(
    tmp_path, settings, monkeypatch
):
    cert, key = self_signed_certificate(tmp_path, "localhost")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the sender trusts this one authority
    settings.WEBHOOK_ALLOWED_HOSTS = ["localhost"]
    with Receiver(tls=(cert, key)) as receiver:
        webhook = make_webhook(receiver.url)
        change()
        send_due()
    [request] = receiver.received
    assert request.verified(webhook.secret)["type"] == "revision"
    assert request.headers["host"] == receiver.url.split("/")[2]  # localhost:PORT


def test_https_to_a_certificate_for_another_host_is_refused(tmp_path, settings, monkeypatch):
    cert, key = self_signed_certificate(tmp_path, "elsewhere.example")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    settings.WEBHOOK_ALLOWED_HOSTS = ["localhost"]
    settings.WEBHOOK_RETRY_DELAYS = []
    with Receiver(tls=(cert, key)) as receiver:
        make_webhook(receiver.url)
        change()
        send_due()
    assert receiver.received == []
    [attempt] = Attempt.objects.all()
    assert attempt.status_code is None and "certificate" in attempt.error.lower()


def test_a_rolled_back_change_sends_nothing():
    with Receiver() as receiver:
        make_webhook(receiver.url)
        with pytest.raises(RuntimeError), transaction.atomic():
            assistant_create(name="Rolled back", model="m")
            raise RuntimeError("the change fails after its revision was written")
        assert Delivery.objects.count() == 0
        committed = change("Committed")
        send_due()
    assert [r.payload["data"]["revision"] for r in receiver.received] == [committed.number]


def test_a_rolled_back_label_move_sends_nothing(secretary):
    with Receiver() as receiver:
        make_webhook(receiver.url, events=["label"])
        with pytest.raises(RuntimeError), transaction.atomic():
            label_move(name="candidate", revision="live", author="test")
            raise RuntimeError("rolled back")
        assert LabelMove.objects.count() == 0
        send_due()
    assert receiver.received == []


def test_a_change_set_of_several_changes_is_one_delivery_with_its_final_revision():
    with Receiver() as receiver:
        make_webhook(receiver.url, events=["revision"])
        with transaction.atomic():
            first = assistant_create(name="First", model="m")
            assistant_update(assistant=first, instructions="Changed in the same transaction.")
            second = assistant_create(name="Second", model="m")
        send_due()
    [request] = receiver.received
    revision = Revision.objects.get()
    assert request.payload["data"] == {
        "revision": revision.number,
        "assistants": sorted([str(first.pk), str(second.pk)]),
    }


def test_an_inactive_webhook_gets_no_deliveries():
    with Receiver() as receiver:
        make_webhook(receiver.url, is_active=False)
        change()
        send_due()
    assert receiver.received == []
    assert Delivery.objects.count() == 0


def test_the_admin_resends_a_delivered_one_and_shows_its_attempts():
    with Receiver() as receiver:
        webhook = make_webhook(receiver.url)
        change()
        send_due()
        delivery = Delivery.objects.get()
        admin = Client()
        admin.force_login(staff_user("webhooks.view_delivery", "webhooks.change_delivery"))
        response = admin.post(
            reverse("admin:webhooks_delivery_changelist"),
            {"action": "resend_selected", "_selected_action": [delivery.pk]},
        )
        assert response.status_code == 302
        send_due()
    assert receiver.message_ids() == [delivery.message_id] * 2
    page = admin.get(reverse("admin:webhooks_delivery_change", args=[delivery.pk]))
    assert len(re.findall(r'field-status_code">\s*<p>200</p>', page.content.decode())) == 2
    superuser = Client()
    superuser.force_login(staff_user(superuser=True))
    webhook_page = superuser.get(reverse("admin:webhooks_webhook_change", args=[webhook.pk]))
    assert webhook_page.content.decode().count("<td>200</td>") == 2
    assert webhook.secret not in webhook_page.content.decode()


def test_a_user_who_may_only_view_deliveries_cannot_resend_even_by_forging_the_post():
    with Receiver() as receiver:
        make_webhook(receiver.url)
        change()
        send_due()
        delivery = Delivery.objects.get()
        viewer = Client()
        viewer.force_login(staff_user("webhooks.view_delivery"))
        page = viewer.get(reverse("admin:webhooks_delivery_changelist")).content.decode()
        assert 'value="resend_selected"' not in page
        viewer.post(
            reverse("admin:webhooks_delivery_changelist"),
            {"action": "resend_selected", "_selected_action": [delivery.pk]},
        )
        send_due()
    assert len(receiver.received) == 1
    assert Delivery.objects.get().status == Delivery.Status.DELIVERED


def test_deleting_a_webhook_deletes_its_deliveries():
    with Receiver() as receiver:
        webhook = make_webhook(receiver.url)
        change()
        Webhook.objects.filter(pk=webhook.pk).delete()
        send_due()
    assert receiver.received == []
    assert Assistant.objects.count() == 1
