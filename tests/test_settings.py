"""Settings come from the environment, fail loudly on bad values, and are safe by default."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_django(code: str, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "HTTPS", "ALLOWED_HOSTS"}}
    base.update(DJANGO_SETTINGS_MODULE="config_backend.settings")
    base.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "maybe"),
        ("HTTPS", "2"),
        ("DATABASE_URL", "mysql://x@y/z"),
        ("DATABASE_URL", "localhost:5432"),
        ("REDIS_URL", "http://localhost:6379"),
        ("DB_CONN_MAX_AGE", "sixty"),
        ("DATABASE_POOL_MAX_SIZE", "0"),
        ("DATABASE_POOL_TIMEOUT_MS", "soon"),
        ("MAX_DJANGO_REQUESTS_PER_WORKER", "0"),
        ("LABEL_APPROVALS", "-1"),
        ("LABEL_APPROVALS", "two"),
        ("LABEL_REQUEST_TTL", "0"),
    ],
)
def test_a_bad_value_fails_loudly_naming_the_variable(variable, value):
    result = run_django("", **{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr.splitlines()[-1]


def test_debug_is_off_by_default():
    result = run_django("from django.conf import settings; print(settings.DEBUG)")
    assert result.stdout.strip() == "False"


def test_production_needs_a_secret_key():
    result = run_django("", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_unset_urls_mean_the_embedded_sqlite_and_local_memory_cache():
    result = run_django(
        "from django.conf import settings; "
        "print(settings.DATABASES['default']['ENGINE'], settings.CACHES['default']['BACKEND'])",
        DATABASE_URL="",
        REDIS_URL="",
    )
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "django.core.cache.backends.locmem.LocMemCache",
    ]


def test_the_urls_select_postgresql_and_redis():
    result = run_django(
        "from django.conf import settings; "
        "print(settings.DATABASES['default']['ENGINE'], settings.CACHES['default']['BACKEND'])"
    )
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "django_redis.cache.RedisCache",
    ]


def test_postgresql_connections_are_pooled_and_the_embedded_sqlite_is_left_alone():
    show = (
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d['CONN_MAX_AGE'], sorted(d.get('OPTIONS', {}).get('pool', {}).items()))"
    )
    pooled = run_django(show, DATABASE_POOL_MAX_SIZE="7", DATABASE_POOL_TIMEOUT_MS="250")
    assert pooled.stdout.split(" ", 1) == [
        "0",
        "[('max_size', 7), ('min_size', 2), ('name', 'config-backend'), "
        "('reconnect_timeout', 0.2), ('timeout', 0.25)]\n",
    ], pooled.stderr
    unpooled = run_django(show, DATABASE_POOL="0")
    assert unpooled.stdout.split() == ["60", "[]"], unpooled.stderr
    sqlite = run_django(show, DATABASE_URL="")
    assert sqlite.stdout.split() == ["0", "[]"], sqlite.stderr


def test_the_production_shape_passes_the_deploy_checks():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **os.environ,
            "DEBUG": "0",
            "HTTPS": "1",
            "ALLOWED_HOSTS": "config.example.com",
            "SECRET_KEY": "k" + os.urandom(40).hex(),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


PASSWORD = "pa55-w0rd"
MISTYPED_URLS = {
    "a mistyped scheme": ("DATABASE_URL", f"postgress://app:{PASSWORD}@db:5432/config"),
    "no scheme": ("DATABASE_URL", f"app:{PASSWORD}@db:5432/config"),
    "a port that is no number": ("DATABASE_URL", f"postgres://app:{PASSWORD}@db:54x2/config"),
    "a password holding @": ("REDIS_URL", f"redis://app:{PASSWORD}@x@cache:99999/0"),
    "a bad IPv6 host": ("REDIS_URL", f"redis://:{PASSWORD}@[::1/0"),
    "a URL among sentinels": ("REDIS_SENTINELS", f"redis://:{PASSWORD}@s1:26379/0,s2:26379"),
}


@pytest.mark.parametrize(("variable", "value"), MISTYPED_URLS.values(), ids=MISTYPED_URLS.keys())
def test_a_mistyped_url_stops_the_start_naming_it_without_its_password(variable, value):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert PASSWORD not in said, said
    last_line = result.stderr.splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: " + variable)
    assert ":***@" in last_line


@pytest.mark.parametrize("value", ["15,abc", "-1", "nan", "10,1e9"])
def test_bad_webhook_retry_delays_stop_the_start_naming_the_variable(value):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "WEBHOOK_RETRY_DELAYS": value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    last_line = result.stderr.splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: WEBHOOK_RETRY")
