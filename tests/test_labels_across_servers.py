"""Two app servers share one Redis: a label move through one is seen by the very next label
read on the other, whether the read names the label or its key is pinned to it."""

import json

import pytest

from assistants.models import Assistant
from core.models import APIKey, Revision
from tests.live import call, live_database_url, server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_servers():
    env = {"DATABASE_URL": live_database_url()}
    with server(env=env, workers=2) as first, server(env=env, workers=2) as second:
        yield first, second


def newest_revision() -> int:
    return Revision.objects.order_by("-number").values_list("number", flat=True).first()


def instructions_on(base_url, key, path) -> tuple[str, str]:
    status, headers, body = call("GET", f"{base_url}{path}", key=key)
    assert status == 200, body
    return json.loads(body)["instructions"], headers["X-Config-Cache"]


def test_a_label_move_is_seen_by_the_next_read_on_the_other_server(two_servers):
    first, second = two_servers
    secretary = Assistant.objects.create(name="Secretary", model="gpt-4o-mini", instructions="v1")
    v1 = newest_revision()
    secretary.instructions = "v2"
    secretary.save()
    v2 = newest_revision()
    _, mover = APIKey.objects.create_key(name="deployer", scope="write", protected=True)
    _, reader = APIKey.objects.create_key(name="runtime", scope="read")
    _, pinned = APIKey.objects.create_key(name="pinned", scope="read", label="production")
    by_name = f"/api/v1/assistants/{secretary.id}/config/?label=production"
    plain = f"/api/v1/assistants/{secretary.id}/config/"

    label_url = f"{first}/api/v1/labels/production/"
    assert call("PUT", label_url, key=mover, body={"revision": v1})[0] == 201
    for _ in range(3):  # every worker of the second server has read (and cached) it
        instructions_on(second, reader, by_name)
        instructions_on(second, pinned, plain)
    assert instructions_on(second, reader, by_name) == ("v1", "hit")
    assert instructions_on(second, pinned, plain)[0] == "v1"

    assert call("PUT", label_url, key=mover, body={"revision": v2})[0] == 200

    assert instructions_on(second, reader, by_name)[0] == "v2"
    assert instructions_on(second, pinned, plain)[0] == "v2"
