"""A transaction's changes are one change set: one revision, announced once at the commit, even
after rollbacks (core.changes; docs/contract.md "Revisions")."""

import time
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from assistants.models import Assistant
from assistants.services import assistant_create
from core import store
from core.models import Revision
from tests.factories import assistant_form, write_config_file
from tools.models import Tool

# The announce is made at a real commit.
pytestmark = pytest.mark.django_db(transaction=True)

END = "end of the test's writes"


@contextmanager
def announcements():
    """The messages published on the changes channel while inside: a list filled on exit.

    A subscriber of its own, on the real Redis; on exit it publishes END itself and reads up to
    it: Redis delivers a channel's messages in the order it received them, so every announce of
    the writes made inside has arrived by then."""
    pubsub = store.store().client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(store.CHANGES_CHANNEL)
    heard = []
    try:
        yield heard
        store.store().client.publish(store.CHANGES_CHANNEL, END)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1)  # None: nothing yet, or a confirmation
            if message is None:
                continue
            if message["data"].decode() == END:
                break
            heard.append(message["data"].decode())
        else:
            pytest.fail(f"the changes channel did not deliver {END!r} within 10 s")
    finally:
        pubsub.close()


def newest() -> Revision:
    return Revision.objects.order_by("-number").first()


def changed_names(revision: Revision) -> list[str]:
    return sorted(revision.changes.values_list("name", flat=True))


def tool(name: str) -> Tool:
    return Tool.objects.create(name=name, tool_type=Tool.Type.TIME, input_schema={"type": "object"})


def test_an_admin_save_with_several_inline_rows_is_announced_once(admin_client):
    planner = Assistant.objects.create(name="Planner", model="gpt-4o-mini")
    tools = [tool(f"tool_{i}") for i in range(4)]
    data = assistant_form(instructions="Plan with tools.", **{"tool_links-TOTAL_FORMS": "4"})
    for index, one in enumerate(tools):
        data[f"tool_links-{index}-assistant"] = str(planner.pk)
        data[f"tool_links-{index}-tool"] = str(one.pk)
        data[f"tool_links-{index}-is_active"] = "on"
    before = Revision.objects.count()

    with announcements() as heard:
        url = reverse("admin:assistants_assistant_change", args=[planner.pk])
        response = admin_client.post(url, data)
        assert response.status_code == 302, response.content

    assert Revision.objects.count() == before + 1
    revision = newest()
    assert len(changed_names(revision)) == 5  # the assistant and its four links
    assert heard == [str(revision.number)]


def test_an_import_of_many_rows_is_announced_once(tmp_path):
    document = {
        "format_version": 2,
        "assistants": [{"name": f"A{i}", "model": "m", "tools": ["t0", "t1"]} for i in range(20)],
        "tools": [{"name": f"t{i}", "tool_type": "time"} for i in range(2)],
    }
    path = write_config_file(tmp_path, document)

    with announcements() as heard:
        call_command("import_config", path, "--no-backup", stdout=StringIO(), stderr=StringIO())

    assert newest().changes.count() == 20 + 2 + 40
    assert heard == [str(newest().number)]


def test_a_change_after_a_rolled_back_transaction_opens_a_new_change_set():
    assistant_create(name="First", model="m")
    committed = store.committed_counter()
    before = Revision.objects.count()
    with announcements() as heard:
        with pytest.raises(RuntimeError), transaction.atomic():
            assistant_create(name="Rolled back", model="m")
            raise RuntimeError("rolled back")
        assistant_create(name="Second", model="m")

    revision = newest()
    assert revision.number == committed + 1 == store.committed_counter()
    assert changed_names(revision) == ["Second"]
    assert Revision.objects.count() == before + 1
    assert heard == [str(committed + 1)]


def test_a_savepoint_rolled_back_inside_a_change_set_takes_back_only_its_own_changes():
    committed = store.committed_counter()
    with announcements() as heard, transaction.atomic():
        assistant_create(name="Kept", model="m")
        with pytest.raises(RuntimeError), transaction.atomic():
            assistant_create(name="Rolled back", model="m")
            raise RuntimeError("rolled back")
        assistant_create(name="Also kept", model="m")

    revision = newest()
    assert revision.number == committed + 2 == store.committed_counter()
    assert changed_names(revision) == ["Also kept", "Kept"]
    assert heard == [str(committed + 2)]


def test_a_change_set_opened_in_a_rolled_back_savepoint_is_replaced_by_the_next_change():
    committed = store.committed_counter()
    before = Revision.objects.count()
    with announcements() as heard, transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            assistant_create(name="Rolled back", model="m")
            raise RuntimeError("rolled back")
        assistant_create(name="Kept", model="m")

    assert Revision.objects.count() == before + 1
    revision = newest()
    assert revision.number == committed + 1 == store.committed_counter()
    assert changed_names(revision) == ["Kept"]
    assert heard == [str(committed + 1)]


def test_a_rolled_back_change_set_costs_the_next_change_no_extra_query():
    def queries_of_a_create(name: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assistant_create(name=name, model="m")
        return len(queries)

    after_a_commit = queries_of_a_create("After a commit")
    with pytest.raises(RuntimeError), transaction.atomic():
        assistant_create(name="Rolled back", model="m")
        raise RuntimeError("rolled back")

    assert queries_of_a_create("After a rollback") == after_a_commit
