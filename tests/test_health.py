"""/healthz (the process is up) and /readyz (database and cache, each reported)."""

import pytest
from django.db import OperationalError

from core.ops import health

pytestmark = pytest.mark.django_db


class BrokenConnection:
    def cursor(self):
        raise OperationalError("connection refused")


@pytest.fixture
def database_down(monkeypatch):
    monkeypatch.setattr(health, "connection", BrokenConnection())


@pytest.fixture
def cache_down(unreachable_redis):
    pass


def test_healthz_answers_without_touching_anything(
    client, django_assert_num_queries, database_down, cache_down
):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_needs_no_credentials_and_is_not_cached(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]


def test_readyz_reports_database_and_cache(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok"}


def test_readyz_is_503_when_the_database_is_down(client, database_down):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "down", "cache": "ok"}


def test_readyz_reports_a_dead_cache_as_degraded(client, cache_down):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "degraded", "database": "ok", "cache": "degraded"}


def test_probes_only_answer_get_and_head(client):
    assert client.head("/readyz").status_code == 200
    assert client.post("/healthz").status_code == 405
