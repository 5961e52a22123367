"""The WSGI fast path: same bytes and headers as Django's answer, security headers included,
change notifications published, and the local-memory check."""

import threading

import pytest
from django.core.checks import run_checks

from core.models import APIKey
from core.store import CHANGES_CHANNEL, committed_counter, store
from tests.live import call, live_database_url, server
from tools.services import tool_create

pytestmark = pytest.mark.django_db(transaction=True)

SECURITY_HEADERS = [
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
    "X-Frame-Options",
]


@pytest.mark.slow
def test_a_hit_answers_like_django_with_its_security_headers(secretary):
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
    with server(env={"DATABASE_URL": live_database_url()}, workers=1) as base_url:
        url = f"{base_url}/api/v1/assistants/{secretary.id}/config/"
        miss_status, miss_headers, miss_body = call("GET", url, key=key)
        hit_status, hit_headers, hit_body = call("GET", url, key=key)
        not_modified, headers_304, body_304 = call(
            "GET", url, key=key, headers={"If-None-Match": hit_headers["ETag"]}
        )

    assert miss_status == hit_status == 200
    assert hit_body == miss_body
    # The second answer came from the WSGI fast path: the cache's, before DRF (which adds Allow).
    assert miss_headers["X-Config-Cache"] == "miss" and hit_headers["X-Config-Cache"] == "hit"
    assert "Allow" in miss_headers and "Allow" not in hit_headers
    for name in ["Content-Type", "ETag", "X-Config-Revision", "Cache-Control", *SECURITY_HEADERS]:
        assert hit_headers[name] == miss_headers[name], name
    assert not_modified == 304 and body_304 == b""
    assert headers_304["ETag"] == hit_headers["ETag"]
    assert headers_304["X-Content-Type-Options"] == "nosniff"


@pytest.mark.slow
def test_hsts_is_sent_on_the_fast_path_behind_tls(secretary):
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
    env = {"DATABASE_URL": live_database_url(), "HTTPS": "1"}
    tls = {"X-Forwarded-Proto": "https"}
    with server(env=env, workers=1) as base_url:
        url = f"{base_url}/api/v1/assistants/{secretary.id}/config/"
        call("GET", url, key=key, headers=tls)
        status, headers, _ = call("GET", url, key=key, headers=tls)
        plain_status, plain_headers, _ = call("GET", url, key=key)

    assert status == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert plain_status == 301  # plain HTTP is redirected by Django, never served fast
    assert plain_headers["Location"].startswith("https://")


def test_each_committed_change_is_published_on_the_changes_channel(secretary):
    pubsub = store().client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANGES_CHANNEL)
    messages = []
    ready = threading.Event()

    def listen():
        ready.set()
        for _ in range(20):
            message = pubsub.get_message(timeout=0.25)
            if message:
                messages.append(int(message["data"]))
                return

    listener = threading.Thread(target=listen)
    listener.start()
    ready.wait()
    tool = tool_create(name="get_time", tool_type="time", input_schema={"type": "object"})
    listener.join()
    pubsub.close()

    assert tool.pk and messages == [committed_counter()]


def test_a_local_memory_cache_with_several_workers_is_warned_about(settings, monkeypatch):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    assert [m.id for m in run_checks()] == ["config_backend.W001"]
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--workers=3 --bind 0.0.0.0:8000")
    assert [m.id for m in run_checks()] == ["config_backend.W001"]
    monkeypatch.delenv("GUNICORN_CMD_ARGS")
    assert run_checks() == []
