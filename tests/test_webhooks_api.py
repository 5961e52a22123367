"""Webhooks in the API and the admin: write scope or staff, the secret shown once, the events
checked, and no destination on loopback, private, link-local or multicast addresses."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import key_client, make_webhook, staff_client, staff_user
from webhooks.models import Webhook

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://8.8.8.8/hooks/config"


def test_a_write_key_creates_a_webhook_and_sees_its_secret_once(writer):
    response = writer.post(
        "/api/v1/webhooks/", {"url": PUBLIC_URL, "events": ["revision"]}, format="json"
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["revision"] and created["is_active"] is True
    assert Webhook.objects.get().secret == created["secret"]

    listed = writer.get("/api/v1/webhooks/").json()["results"]
    shown = writer.get(f"/api/v1/webhooks/{created['id']}/").json()
    assert "secret" not in listed[0] and "secret" not in shown
    assert shown["url"] == PUBLIC_URL


def test_events_default_to_revision_and_label(writer):
    response = writer.post("/api/v1/webhooks/", {"url": PUBLIC_URL}, format="json")
    assert response.json()["events"] == ["revision", "label"]


@pytest.mark.parametrize(
    "events", [[], ["revisions"], ["label", "label"], "revision", [1]], ids=repr
)
def test_bad_events_are_a_400_naming_events_and_nothing_is_created(writer, events):
    response = writer.post(
        "/api/v1/webhooks/", {"url": PUBLIC_URL, "events": events}, format="json"
    )
    assert response.status_code == 400
    assert {key.split(".")[0] for key in response.json()} == {"events"}  # or "events.0"
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
        "http://224.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "ftp://8.8.8.8/hook",
        "file:///etc/passwd",
        "https://user:password@8.8.8.8/hook",
        "not a url",
        "http://no-such-host.invalid/hook",
    ],
)
def test_a_destination_the_sender_must_not_call_is_a_400_naming_url(writer, url):
    response = writer.post("/api/v1/webhooks/", {"url": url}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["url"]
    assert not Webhook.objects.exists()


def test_a_host_listed_in_webhook_allowed_hosts_may_be_on_loopback(writer, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    response = writer.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/h"}, format="json")
    assert response.status_code == 201


def test_a_change_to_a_refused_url_is_a_400_and_changes_nothing(writer):
    webhook = make_webhook(PUBLIC_URL)
    response = writer.patch(
        f"/api/v1/webhooks/{webhook.pk}/", {"url": "http://10.0.0.1/"}, format="json"
    )
    assert response.status_code == 400 and list(response.json()) == ["url"]
    webhook.refresh_from_db()
    assert webhook.url == PUBLIC_URL


def test_a_write_key_changes_and_deletes_a_webhook(writer):
    webhook = make_webhook(PUBLIC_URL)
    response = writer.patch(f"/api/v1/webhooks/{webhook.pk}/", {"events": ["label"]}, format="json")
    assert response.status_code == 200 and response.json()["events"] == ["label"]
    assert "secret" not in response.json()
    assert writer.delete(f"/api/v1/webhooks/{webhook.pk}/").status_code == 204
    assert not Webhook.objects.exists()


def test_reactivating_a_webhook_the_sender_disabled_clears_the_reason(writer):
    webhook = make_webhook(PUBLIC_URL)
    Webhook.objects.filter(pk=webhook.pk).update(is_active=False, disabled_reason="410 Gone")
    response = writer.patch(f"/api/v1/webhooks/{webhook.pk}/", {"is_active": True}, format="json")
    assert response.json()["is_active"] is True and response.json()["disabled_reason"] == ""


def test_an_unknown_field_is_a_400(writer):
    response = writer.post(
        "/api/v1/webhooks/", {"url": PUBLIC_URL, "secret": "whsec_mine"}, format="json"
    )
    assert response.status_code == 400 and list(response.json()) == ["secret"]


@pytest.mark.parametrize("scope", ["read", "runtime"])
def test_keys_without_the_write_scope_may_not_even_list_webhooks(scope):
    make_webhook(PUBLIC_URL)  # its URL may hold the receiver's token
    client = key_client(scope)
    response = client.get("/api/v1/webhooks/")
    assert response.status_code == 403
    assert "`write` scope needed" in response.json()["detail"]
    assert client.post("/api/v1/webhooks/", {"url": PUBLIC_URL}, format="json").status_code == 403


def test_staff_use_the_webhook_model_permissions():
    make_webhook(PUBLIC_URL)
    viewer = staff_client("webhooks.view_webhook")
    assert viewer.get("/api/v1/webhooks/").status_code == 200
    refused = viewer.post("/api/v1/webhooks/", {"url": PUBLIC_URL}, format="json")
    assert refused.status_code == 403
    assert "webhooks.add_webhook" in refused.json()["detail"]
    adder = staff_client("webhooks.add_webhook")
    assert adder.post("/api/v1/webhooks/", {"url": PUBLIC_URL}, format="json").status_code == 201


def test_the_admin_shows_a_new_webhooks_secret_once_in_the_answer_to_the_add_form():
    admin = Client()
    admin.force_login(staff_user("webhooks.add_webhook", "webhooks.change_webhook"))
    response = admin.post(
        reverse("admin:webhooks_webhook_add"),
        {"url": PUBLIC_URL, "events": ["revision", "label"], "is_active": "on"},
    )
    assert response.status_code == 200
    webhook = Webhook.objects.get()
    assert webhook.secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    page = admin.get(reverse("admin:webhooks_webhook_change", args=[webhook.pk]))
    assert webhook.secret not in page.content.decode()


def test_the_admin_refuses_a_private_destination_naming_the_url_field():
    admin = Client()
    admin.force_login(staff_user("webhooks.add_webhook"))
    response = admin.post(
        reverse("admin:webhooks_webhook_add"),
        {"url": "http://169.254.169.254/", "events": ["revision"], "is_active": "on"},
    )
    assert response.status_code == 200
    assert "link-local" in str(response.context["adminform"].form.errors["url"])
    assert not Webhook.objects.exists()
