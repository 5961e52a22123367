"""GET /metrics: Prometheus text, off by default (404), behind METRICS_TOKEN when set, and right
when several worker processes answer."""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from assistants.models import Assistant
from core.store import breaker, committed_counter
from tests.factories import key_client
from tests.live import call, live_database_url, server

DEMO = Path(__file__).resolve().parent.parent / "demo" / "config.json"


def samples(text: str) -> dict:
    """{(sample name, sorted label pairs): value} of an exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client=None, **headers) -> dict:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return samples(response.content.decode())


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_ENABLED = True
    settings.METRICS_TOKEN = ""


def test_metrics_are_off_by_default(db):
    assert Client().get("/metrics").status_code == 404


@pytest.mark.django_db
def test_a_token_protects_the_metrics_when_set(metrics_on, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Basic czNjcmV0").status_code == 401
    scrape(HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")


@pytest.mark.django_db
def test_config_reads_are_counted_by_endpoint_status_and_cache_outcome(metrics_on, secretary):
    before = scrape()
    client = key_client("read")
    url = f"/api/v1/assistants/{secretary.id}/config/"
    for _ in range(3):
        assert client.get(url).status_code == 200
    assert (
        client.get("/api/v1/assistants/00000000-0000-0000-0000-000000000000/config/").status_code
        == 404
    )
    after = scrape()

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("config_requests_total", endpoint="assistant-config", status="200") == 3
    assert delta("config_requests_total", endpoint="assistant-config", status="404") == 1
    assert delta("config_cache_misses_total") == 1  # the first read (a 404 is neither)
    assert delta("config_cache_hits_total") == 2
    assert delta("config_request_duration_seconds_count", endpoint="assistant-config") == 4


@pytest.mark.django_db
def test_the_revision_gauge_is_the_committed_revision(metrics_on):
    Assistant.objects.create(name="Counted", model="gpt-4o-mini")
    assert value(scrape(), "config_revision") == committed_counter() > 0


@pytest.mark.django_db
def test_the_breaker_gauge_shows_a_worker_skipping_the_cache(metrics_on):
    breaker.trip(OSError("refused"), "a test")
    assert value(scrape(), "config_cache_breaker_open") == 1
    breaker.reset()
    Client().get("/healthz")
    assert value(scrape(), "config_cache_breaker_open") == 0


@pytest.mark.django_db
def test_an_import_is_timed(metrics_on):
    before = value(scrape(), "config_import_duration_seconds_count")
    call_command("import_config", str(DEMO), "--no-backup", stdout=StringIO())
    assert value(scrape(), "config_import_duration_seconds_count") == before + 1


def requests_per_worker(directory: Path) -> dict[str, float]:
    """Config reads counted by each worker process, from its own file."""
    counted = {}
    for path in directory.glob("counter_*.db"):
        total = 0.0
        for key, count, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)
            if name == "config_requests_total" and labels.get("endpoint") == "assistant-config":
                total += count
        counted[path.stem.removeprefix("counter_")] = total
    return counted


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_workers_counts_add_up_exactly(tmp_path):
    assistant = Assistant.objects.create(name="Counted", model="gpt-4o-mini")
    key = key_client("read").raw_key
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_999999.db").write_bytes(b"left over from an earlier run")
    env = {
        "DATABASE_URL": live_database_url(),
        "METRICS_ENABLED": "1",
        "METRICS_TOKEN": "scrape-token",
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }
    url = f"/api/v1/assistants/{assistant.id}/config/"
    with server(env=env, workers=2) as base_url:
        assert not (directory / "counter_999999.db").exists(), "wiped at start"
        answers = []
        with ThreadPoolExecutor(8) as pool:
            # Concurrent, so both workers answer; more rounds if one has not yet.
            for _ in range(10):
                answers += pool.map(lambda _: call("GET", base_url + url, key=key), range(60))
                if len([n for n in requests_per_worker(directory).values() if n]) == 2:
                    break
        # Each worker writes its counts in batches, the last one BATCH_SECONDS after it began.
        for _ in range(100):
            per_worker = requests_per_worker(directory)
            if sum(per_worker.values()) == len(answers):
                break
            time.sleep(0.05)
        scrapes = [
            call("GET", base_url + "/metrics", headers={"Authorization": "Bearer scrape-token"})
            for _ in range(6)
        ]
        refused = call("GET", base_url + "/metrics")

    assert {status for status, _, _ in answers} == {200}
    assert refused[0] == 401
    assert len([n for n in per_worker.values() if n]) == 2, per_worker
    hits = sum(headers["X-Config-Cache"] == "hit" for _, headers, _ in answers)
    for status, _, body in scrapes:  # whichever worker answered, the same totals
        assert status == 200
        found = samples(body.decode())
        assert value(
            found, "config_requests_total", endpoint="assistant-config", status="200"
        ) == len(answers)
        assert value(found, "config_cache_hits_total") == hits
        assert value(found, "config_cache_misses_total") == len(answers) - hits
        assert value(
            found, "config_request_duration_seconds_count", endpoint="assistant-config"
        ) == len(answers)
    assert sum(per_worker.values()) == len(answers)
