"""Users' threads: register (201 new / 200 existing), list and filter, replace, forget."""

import datetime

import pytest
from django.utils import timezone

from tests.factories import key_client
from threads.models import UserAssistantThread

pytestmark = pytest.mark.django_db


@pytest.fixture
def runtime():
    return key_client("runtime")


def register(client, assistant, user_id="42", thread_id="thread_a"):
    return client.post(
        "/api/v1/threads/",
        {"user_id": user_id, "assistant": str(assistant.id), "thread_id": thread_id},
        format="json",
    )


def test_registering_a_new_pair_is_201(runtime, secretary):
    response = register(runtime, secretary)

    assert response.status_code == 201
    body = response.json()
    stored = UserAssistantThread.objects.get()
    assert body["id"] == str(stored.id)
    assert (body["user_id"], body["assistant"], body["thread_id"]) == (
        "42",
        str(secretary.id),
        "thread_a",
    )
    assert set(body) == {
        "id",
        "user_id",
        "assistant",
        "thread_id",
        "last_used",
        "created_at",
        "updated_at",
    }


def test_registering_an_existing_pair_is_200_with_the_stored_row(runtime, secretary):
    first = register(runtime, secretary, thread_id="thread_first").json()
    UserAssistantThread.objects.update(last_used=timezone.now() - datetime.timedelta(days=3))

    response = register(runtime, secretary, thread_id="thread_second")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == first["id"]
    assert body["thread_id"] == "thread_first"  # first writer wins
    stored = UserAssistantThread.objects.get()
    assert stored.thread_id == "thread_first"
    assert timezone.now() - stored.last_used < datetime.timedelta(seconds=5)
    assert body["last_used"] == stored.last_used.isoformat().replace("+00:00", "Z")


def test_the_same_user_may_have_a_thread_with_each_assistant(
    runtime, secretary, calendar_assistant
):
    assert register(runtime, secretary).status_code == 201
    assert register(runtime, calendar_assistant).status_code == 201
    assert register(runtime, secretary, user_id="43").status_code == 201
    assert UserAssistantThread.objects.count() == 3


@pytest.mark.parametrize(
    "body, field",
    [
        ({"assistant": None, "thread_id": "t", "user_id": "1"}, "assistant"),
        (
            {"assistant": "00000000-0000-0000-0000-000000000000", "thread_id": "t", "user_id": "1"},
            "assistant",
        ),
        ({"assistant": "nope", "thread_id": "t", "user_id": "1"}, "assistant"),
        ({"assistant": ""}, "assistant"),
        ({"user_id": "x" * 256}, "user_id"),
        ({"thread_id": ""}, "thread_id"),
        ({"thread_id": "t" * 256}, "thread_id"),
        ({"user_id": 5, "thread_id": {"a": 1}}, "thread_id"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_registrations_are_400_naming_the_field(runtime, secretary, body, field):
    full = {"user_id": "1", "assistant": str(secretary.id), "thread_id": "t", **body}
    response = runtime.post("/api/v1/threads/", full, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not UserAssistantThread.objects.exists()


def test_it_lists_threads_most_recent_first_and_filters(runtime, secretary, calendar_assistant):
    register(runtime, secretary, user_id="1")
    register(runtime, calendar_assistant, user_id="1")
    register(runtime, secretary, user_id="2")

    body = runtime.get("/api/v1/threads/").json()
    assert body["count"] == 3
    assert [(t["user_id"], t["assistant"]) for t in body["results"]][0] == (
        "2",
        str(secretary.id),
    )

    mine = runtime.get("/api/v1/threads/?user_id=1").json()["results"]
    assert {t["assistant"] for t in mine} == {str(secretary.id), str(calendar_assistant.id)}
    pair = runtime.get(f"/api/v1/threads/?user_id=1&assistant={secretary.id}").json()
    assert pair["count"] == 1
    assert runtime.get("/api/v1/threads/?user_id=nobody").json()["count"] == 0


def test_an_invalid_thread_filter_is_400(runtime):
    response = runtime.get("/api/v1/threads/?assistant=not-a-uuid")
    assert response.status_code == 400
    assert list(response.json()) == ["assistant"]


def test_patch_replaces_the_thread_id_and_touches_last_used(runtime, secretary):
    thread_id = register(runtime, secretary).json()["id"]
    UserAssistantThread.objects.update(last_used=timezone.now() - datetime.timedelta(days=3))

    response = runtime.patch(
        f"/api/v1/threads/{thread_id}/", {"thread_id": "thread_new"}, format="json"
    )

    assert response.status_code == 200
    stored = UserAssistantThread.objects.get()
    assert stored.thread_id == "thread_new"
    assert timezone.now() - stored.last_used < datetime.timedelta(seconds=5)
    assert response.json()["thread_id"] == "thread_new"


def test_patch_changes_nothing_else(runtime, secretary, calendar_assistant):
    thread_id = register(runtime, secretary).json()["id"]
    response = runtime.patch(
        f"/api/v1/threads/{thread_id}/",
        {"thread_id": "x", "assistant": str(calendar_assistant.id)},
        format="json",
    )
    assert response.status_code == 400
    assert UserAssistantThread.objects.get().thread_id == "thread_a"


def test_patch_needs_a_thread_id(runtime, secretary):
    thread_id = register(runtime, secretary).json()["id"]
    response = runtime.patch(f"/api/v1/threads/{thread_id}/", {}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["thread_id"]


def test_delete_forgets_the_thread(runtime, secretary):
    thread_id = register(runtime, secretary).json()["id"]

    assert runtime.delete(f"/api/v1/threads/{thread_id}/").status_code == 204
    assert not UserAssistantThread.objects.exists()
    assert runtime.delete(f"/api/v1/threads/{thread_id}/").status_code == 404
    # And the pair can be registered afresh.
    assert register(runtime, secretary).status_code == 201


def test_one_thread_can_be_read(runtime, secretary):
    thread_id = register(runtime, secretary).json()["id"]
    response = runtime.get(f"/api/v1/threads/{thread_id}/")
    assert response.status_code == 200
    assert response.json()["id"] == thread_id


def test_unknown_threads_are_404(runtime):
    missing = "00000000-0000-0000-0000-000000000000"
    assert runtime.get(f"/api/v1/threads/{missing}/").status_code == 404
    assert (
        runtime.patch(f"/api/v1/threads/{missing}/", {"thread_id": "x"}, format="json").status_code
        == 404
    )


def test_ids_are_kept_exactly_as_sent(runtime, secretary):
    assert register(runtime, secretary, user_id=" 42 ", thread_id="t ").status_code == 201
    assert register(runtime, secretary, user_id="42").status_code == 201
    assert (
        runtime.get("/api/v1/threads/?user_id=%2042%20").json()["results"][0]["thread_id"] == "t "
    )
