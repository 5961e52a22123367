import shutil

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from redis.backoff import NoBackoff
from redis.retry import Retry

from assistants.models import Assistant
from core.store import RedisStore, breaker
from core.store import base as store_base
from tests.factories import key_client
from tests.live import ROOT
from tests.throwaway_servers import free_port, spawn_redis
from tools.models import Tool


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    # The manifest storage needs `collectstatic`; pages rendered by the test client don't.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    breaker.reset()
    yield
    cache.clear()
    breaker.reset()


@pytest.fixture
def unreachable_redis(monkeypatch):
    """The config cache points at a port nobody listens on (as django-redis would: short
    timeouts, no retries)."""
    dead = redis.Redis(
        host="127.0.0.1",
        port=free_port(),
        socket_connect_timeout=0.25,
        socket_timeout=0.25,
        retry=Retry(NoBackoff(), 0),
    )
    monkeypatch.setattr(store_base, "_store", RedisStore(client=dead))


@pytest.fixture
def own_redis_cache(tmp_path, monkeypatch):
    """A Redis of this test's own as the config cache (the run's policy, volatile-lru), which it
    may fill up: its client."""
    port = free_port()
    proc = spawn_redis(tmp_path, port)
    client = redis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=0.25, socket_timeout=0.25
    )
    monkeypatch.setattr(store_base, "_store", RedisStore(client=client))
    yield client
    proc.kill()
    proc.wait()


@pytest.fixture
def secretary(db):
    return Assistant.objects.create(
        name="Secretary", is_secretary=True, model="gpt-4o-mini", instructions="Help the user."
    )


@pytest.fixture
def calendar_assistant(db):
    return Assistant.objects.create(name="Calendar assistant", model="gpt-4o-mini")


@pytest.fixture
def weather_tool(db):
    return Tool.objects.create(
        name="get_weather",
        tool_type=Tool.Type.WEATHER,
        description="Weather for a city.",
        input_schema={"type": "object", "properties": {"city": {"type": "string"}}},
    )


@pytest.fixture
def reader():
    """An API client holding a read key."""
    return key_client("read")


@pytest.fixture
def writer():
    """An API client holding a write key."""
    return key_client("write")


@pytest.fixture
def redis_commands(monkeypatch):
    """The round trips to Redis: a command's name, or a pipeline's as "PIPELINE(A,B,…)"."""
    sent = []
    client = store_base.store().client
    original = client.execute_command
    original_pipeline = redis.client.Pipeline.execute

    def counting(*args, **options):
        sent.append(args[0])
        return original(*args, **options)

    def counting_pipeline(pipe, *args, **options):
        sent.append(f"PIPELINE({','.join(str(c[0][0]) for c in pipe.command_stack)})")
        return original_pipeline(pipe, *args, **options)

    monkeypatch.setattr(client, "execute_command", counting)
    monkeypatch.setattr(redis.client.Pipeline, "execute", counting_pipeline)
    return sent


@pytest.fixture
def fresh_copy(tmp_path):
    """The project in an empty folder, so the embedded SQLite file starts from nothing."""
    ours = [app for app in settings.INSTALLED_APPS if (ROOT / app).is_dir()]  # the project's apps
    for part in ("manage.py", "demo", "locale", *ours):
        source = ROOT / part
        if not source.exists():
            continue
        if source.is_dir():
            shutil.copytree(source, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / part)
    return tmp_path
