"""Who may do what: API-key scopes, staff sessions, and requests without credentials."""

import datetime
import time

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from core import store
from core.models import APIKey
from tests.factories import assistant_payload, key_client, staff_client, tool_payload
from threads.models import UserAssistantThread
from tools.models import Tool

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(secretary, weather_tool):
    thread = UserAssistantThread.objects.create(
        user_id="42", assistant=secretary, thread_id="thread_1"
    )
    return {"assistant": secretary, "tool": weather_tool, "thread": thread}


def read_urls(objects) -> list[str]:
    a, t, th = objects["assistant"].id, objects["tool"].id, objects["thread"].id
    return [
        "/api/v1/assistants/",
        f"/api/v1/assistants/{a}/",
        f"/api/v1/assistants/{a}/tools/",
        f"/api/v1/assistants/{a}/config/",
        "/api/v1/config/",
        "/api/v1/tools/",
        f"/api/v1/tools/{t}/",
        "/api/v1/threads/",
        f"/api/v1/threads/{th}/",
    ]


def config_writes(objects) -> list[tuple[str, str, dict | None, int]]:
    """(method, url, body, expected status when allowed)."""
    a, t = objects["assistant"].id, objects["tool"].id
    return [
        ("post", "/api/v1/assistants/", assistant_payload(name="New"), 201),
        ("patch", f"/api/v1/assistants/{a}/", {"instructions": "Be brief."}, 200),
        ("put", f"/api/v1/assistants/{a}/", assistant_payload(name="Secretary"), 200),
        ("post", "/api/v1/tools/", tool_payload(), 201),
        ("patch", f"/api/v1/tools/{t}/", {"description": "Weather."}, 200),
        ("put", f"/api/v1/tools/{t}/", tool_payload(name="get_weather", tool_type="weather"), 200),
        ("post", f"/api/v1/assistants/{a}/tools/{t}/", {}, 201),
        ("delete", f"/api/v1/assistants/{a}/tools/{t}/", None, 204),
    ]


def thread_writes(objects) -> list[tuple[str, str, dict | None, int]]:
    a, th = objects["assistant"].id, objects["thread"].id
    return [
        ("post", "/api/v1/threads/", {"user_id": "7", "assistant": str(a), "thread_id": "t"}, 201),
        ("patch", f"/api/v1/threads/{th}/", {"thread_id": "thread_2"}, 200),
        ("delete", f"/api/v1/threads/{th}/", None, 204),
    ]


def send(client, method, url, body):
    return getattr(client, method)(url, body, format="json")


def test_every_endpoint_needs_credentials(objects):
    client = APIClient()
    requests = [("get", url, None) for url in read_urls(objects)]
    requests += [w[:3] for w in config_writes(objects) + thread_writes(objects)]
    for method, url, body in requests:
        response = send(client, method, url, body)
        assert response.status_code == 401, (method, url)
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'
        assert "detail" in response.json()


@pytest.mark.parametrize("scope", ["read", "runtime", "write"])
def test_every_scope_reads_everything(objects, scope):
    client = key_client(scope)
    for url in read_urls(objects):
        assert client.get(url).status_code == 200, url


def test_only_the_write_scope_writes_config(objects):
    for scope in ["read", "runtime"]:
        client = key_client(scope)
        for method, url, body, _ in config_writes(objects):
            assert send(client, method, url, body).status_code == 403, (scope, method, url)
    client = key_client("write")
    for method, url, body, expected in config_writes(objects):
        assert send(client, method, url, body).status_code == expected, (method, url)


def test_only_the_runtime_scope_writes_threads(objects):
    for scope in ["read", "write"]:
        client = key_client(scope)
        for method, url, body, _ in thread_writes(objects):
            assert send(client, method, url, body).status_code == 403, (scope, method, url)
    client = key_client("runtime")
    for method, url, body, expected in thread_writes(objects):
        assert send(client, method, url, body).status_code == expected, (method, url)


def test_a_wrong_scope_names_the_problem_in_the_error_shape(objects):
    response = key_client("read").post("/api/v1/assistants/", assistant_payload(), format="json")
    assert response.status_code == 403
    assert set(response.json()) == {"detail"}


def test_an_unknown_key_is_401(objects):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer abcdefgh.notarealkeyatall000000000000000")
    assert client.get("/api/v1/assistants/").status_code == 401


def test_a_right_prefix_with_a_wrong_secret_is_401(objects):
    good = key_client("read").raw_key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + good[:-1] + ("x" if good[-1] != "x" else "y"))
    assert client.get("/api/v1/assistants/").status_code == 401


def test_a_revoked_key_is_401(objects):
    client = key_client("write")
    APIKey.objects.update(revoked=True)
    assert client.get("/api/v1/assistants/").status_code == 401


def test_an_expired_key_is_401(objects):
    client = key_client("read", expiry_date=timezone.now() - datetime.timedelta(minutes=1))
    assert client.get("/api/v1/assistants/").status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Bearer a b", "bearer \x00abc.def", "Bearer .", "Bearer nodot"],
)
def test_a_malformed_bearer_header_is_401(objects, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get("/api/v1/assistants/").status_code == 401


def test_another_auth_scheme_counts_as_no_credentials(objects):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic dXNlcjpwdw==")
    assert client.get("/api/v1/assistants/").status_code == 401


def test_keys_are_stored_as_a_fast_hash_only(objects):
    client = key_client("read")
    stored = APIKey.objects.get()
    assert client.raw_key not in (stored.id, stored.hashed_key)
    assert stored.hashed_key.startswith("sha512$$")


def test_last_used_is_written_once_however_many_requests(objects, django_assert_num_queries):
    client = key_client("read")
    assert APIKey.objects.get().last_used_at is None

    client.get("/api/v1/tools/")
    first = APIKey.objects.get().last_used_at
    assert first is not None and timezone.now() - first < datetime.timedelta(seconds=5)

    # Later requests: the key is checked from its cached record, no query, no write.
    with django_assert_num_queries(2):  # count, page
        client.get("/api/v1/tools/")
    assert APIKey.objects.get().last_used_at == first


def test_last_used_is_written_again_in_the_next_hour(objects, monkeypatch):
    client = key_client("read")
    client.get("/api/v1/tools/")
    first = APIKey.objects.get().last_used_at

    an_hour_later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: an_hour_later)
    client.get("/api/v1/tools/")

    assert APIKey.objects.get().last_used_at > first


def test_a_process_without_the_cached_record_does_not_write_last_used_again(
    objects, django_assert_num_queries
):
    client = key_client("read")
    client.get("/api/v1/tools/")
    first = APIKey.objects.get().last_used_at
    store.cache_clear()  # as if another process, or an emptied Redis, served the next request

    # key revision, key, re-seeding the emptied mirror (savepoint, SELECT … FOR UPDATE,
    # release), count, page: and no UPDATE
    with django_assert_num_queries(7) as queries:
        client.get("/api/v1/tools/")
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]

    assert APIKey.objects.get().last_used_at == first


def test_a_staff_user_reads_with_view_permission(objects):
    client = staff_client("assistants.view_assistant")
    assert client.get("/api/v1/assistants/").status_code == 200
    assert client.get(f"/api/v1/assistants/{objects['assistant'].id}/config/").status_code == 200
    assert client.get("/api/v1/tools/").status_code == 403
    assert client.get("/api/v1/threads/").status_code == 403


def test_a_staff_user_writes_only_with_the_model_permission(objects):
    viewer = staff_client("assistants.view_assistant")
    body = assistant_payload(name="By staff")
    assert viewer.post("/api/v1/assistants/", body, format="json").status_code == 403
    adder = staff_client("assistants.view_assistant", "assistants.add_assistant")
    assert adder.post("/api/v1/assistants/", body, format="json").status_code == 201
    assert (
        adder.patch(
            f"/api/v1/assistants/{objects['assistant'].id}/", {"model": "x"}, format="json"
        ).status_code
        == 403
    )


def test_a_superuser_may_do_everything(objects):
    client = staff_client(superuser=True)
    for method, url, body, expected in config_writes(objects) + thread_writes(objects):
        assert send(client, method, url, body).status_code == expected, (method, url)


def test_a_logged_in_user_who_is_not_staff_is_refused(objects):
    user = User.objects.create_user(username="plain", password="pw")
    client = APIClient()
    client.force_login(user)
    assert client.get("/api/v1/assistants/").status_code == 403


def test_staff_session_writes_need_the_csrf_token(objects):
    user = User.objects.create_superuser(username="admin", password="pw")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/api/v1/tools/", tool_payload(), format="json")
    assert response.status_code == 403
    assert Tool.objects.filter(name="get_time").count() == 0


def test_staff_see_the_browsable_api(objects):
    client = staff_client(superuser=True)
    response = client.get("/api/v1/assistants/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"Secretary" in response.content
