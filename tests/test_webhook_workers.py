"""`manage.py run_webhooks` in its own processes, against real receivers: at least once across
a SIGKILL, never twice at once with two workers, a hanging receiver holding up nobody else,
a burst of 1,000 changes, and the embedded default (SQLite)."""

import collections
import signal

import pytest

from assistants.services import assistant_create
from core.models import Revision
from tests.factories import make_webhook, manage
from tests.webhook_receivers import HANG, Answer, Receiver, webhook_worker
from webhooks.models import Delivery

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]


def changes(count: int, prefix: str = "Assistant") -> None:
    """`count` committed change sets (one revision each)."""
    for index in range(count):
        assistant_create(name=f"{prefix} {index}", model="m")


def all_message_ids() -> set[str]:
    return set(Delivery.objects.values_list("message_id", flat=True))


def test_a_worker_killed_mid_burst_loses_nothing_once_another_starts():
    with Receiver() as first, Receiver() as second:
        make_webhook(first.url)
        make_webhook(second.url)
        changes(150)
        expected = all_message_ids()
        assert len(expected) == 300
        with webhook_worker() as worker:
            first.wait_for_count(20)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        assert Delivery.objects.exclude(status=Delivery.Status.DELIVERED).exists(), (
            "the burst was over before the kill"
        )
        # With the default lease, what the killed worker held is sent again within 30 s.
        with webhook_worker():
            for receiver in (first, second):
                receiver.wait_for(lambda r: len(set(r.message_ids())) == 150, timeout=30)
    received = set(first.message_ids()) | set(second.message_ids())
    assert received == expected  # every delivery at least once, nothing else
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_two_workers_never_send_one_delivery_twice_in_a_healthy_run():
    receivers = [Receiver() for _ in range(3)]
    for receiver in receivers:
        receiver.__enter__()
        make_webhook(receiver.url)
    try:
        with webhook_worker(), webhook_worker():
            changes(100)
            for receiver in receivers:
                receiver.wait_for_count(100)
        counts = collections.Counter(
            message_id for receiver in receivers for message_id in receiver.message_ids()
        )
    finally:
        for receiver in receivers:
            receiver.__exit__(None, None, None)
    assert set(counts) == all_message_ids()
    assert [message_id for message_id, n in counts.items() if n > 1] == []


def test_a_receiver_that_hangs_does_not_stall_the_other_endpoints():
    with Receiver(lambda n: HANG) as hanging, Receiver() as healthy:
        make_webhook(hanging.url)
        make_webhook(healthy.url)
        changes(20)
        with webhook_worker():
            hanging.wait_for_count(1)
            healthy.wait_for_count(20)
            # All 20 arrived while the hanging receiver still held its first request (each
            # is held until the sender's 5 s timeout).
            assert hanging.closed_hangs == 0 and len(hanging.received) == 1
            hanging.wait_for(lambda r: r.closed_hangs >= 1, timeout=30)
    attempt = Delivery.objects.get(webhook__url=hanging.url, attempts__isnull=False).attempts.get()
    assert attempt.status_code is None and "within 5 s" in attempt.error


def test_a_burst_of_1000_changes_all_arrive():
    with Receiver() as receiver:
        make_webhook(receiver.url, events=["revision"])
        with webhook_worker():
            changes(1000)
            receiver.wait_for_count(1000, timeout=240)
    delivered = {request.payload["data"]["revision"] for request in receiver.received}
    assert delivered == set(Revision.objects.values_list("number", flat=True))
    assert len(delivered) == 1000


def test_the_worker_sends_on_the_embedded_default_sqlite(tmp_path):
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "",
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "WEBHOOK_RETRY_DELAYS": "0",
    }

    answers = [Answer(500), Answer(200), Answer(200), Answer(200)]
    with Receiver(lambda n: answers[n]) as receiver:
        manage("migrate", "--noinput", env=env)
        make_changes = (
            "from tests.factories import make_webhook, manage; "
            "from assistants.services import assistant_create; "
            f"make_webhook({receiver.url!r}); "
            "[assistant_create(name=f'A{i}', model='m') for i in range(3)]"
        )
        manage("shell", "-c", make_changes, env=env)
        manage("run_webhooks", "--until-idle", env=env)
    assert len(receiver.received) == 4  # three deliveries, the first one retried once
    assert len(set(receiver.message_ids())) == 3
