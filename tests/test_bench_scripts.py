"""The benchmark and soak scripts work (short runs; their numbers live in bench/RESULTS.md)."""

import os
import subprocess
import sys

import pytest

from tests.live import ROOT

pytestmark = pytest.mark.slow


def run_script(*argv, timeout=300) -> subprocess.CompletedProcess:
    # Their own PostgreSQL and Redis, not the test run's.
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_read_benchmark_measures_every_case_and_writes_its_results(tmp_path):
    result = run_script("bench/read_bench.py", "--quick", "--output", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    results = (tmp_path / "RESULTS.md").read_text()
    for case in ("| hit |", "| hit-gzip |", "| miss |", "| ceiling |", "| memory |"):
        assert case in results
    assert "| tools | hit / ceiling | hit / memory | miss / hit |" in results
    assert (tmp_path / "read_bench.png").stat().st_size > 10_000


def test_the_read_benchmark_compares_two_checkouts_in_one_run(tmp_path):
    # This checkout against itself: each side its own database, Redis and servers.
    result = run_script(
        "bench/read_bench.py", "--compare", str(ROOT), "--quick", "--output", str(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    results = (tmp_path / "RESULTS.md").read_text()
    assert "## Read path: before and after" in results
    for case in ("| hit |", "| hit-gzip |", "| label hit |", "| miss |", "| hit, make serve |"):
        assert results.count(case) == 2  # 1 and 10 tools
    assert (tmp_path / "read_compare.png").stat().st_size > 10_000


def test_the_soak_finds_no_stale_read_and_no_error():
    result = run_script("bench/soak.py", "--seconds", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.splitlines()[0]
    assert " 0 stale, 0 5xx, 0 other non-200" in summary
    assert " 0 writes" not in summary


def test_the_snippet_benchmark_finds_the_miss_queries_flat_and_writes_its_results(tmp_path):
    result = run_script("bench/snippet_bench.py", "--quick", "--output", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr  # 1: the query counts differ
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| **ratio tree / plain** |" in results
    assert "| 50 | 4 |" in results  # revision, assistant, links, the active snippets
    assert (tmp_path / "snippet_bench.png").stat().st_size > 10_000


def test_the_miss_benchmark_counts_one_build_per_edit_with_the_lock(tmp_path):
    result = run_script("bench/miss_bench.py", "--quick", "--output", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| server | builds per edit: median | mean | max |" in results
    assert "| after | 1 |" in results  # the median: a loaded machine may add a stray build


def test_the_push_benchmark_measures_idle_subscribers_and_event_latency(tmp_path):
    result = run_script("bench/sse_idle_bench.py", "--quick", "--output", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| no subscriber |" in results and "| 50 idle subscribers |" in results
    assert "Commit → event (5 changes" in results
    assert (tmp_path / "sse_idle_bench.png").stat().st_size > 10_000


def test_the_overload_benchmark_fires_its_burst_and_writes_its_results(tmp_path):
    output = tmp_path / "RESULTS.md"
    result = run_script("bench/overload_bench.py", "--quick", "--output", str(output))
    assert result.returncode == 0, result.stdout + result.stderr
    results = output.read_text()
    assert "## Bogus-key burst" in results
    assert "| bogus-key requests | 401: " in results
    assert "| PostgreSQL connections opened during the burst |" in results


def test_the_pool_benchmark_opens_no_connection_per_request_with_the_pool_and_one_without(
    tmp_path,
):
    result = run_script("bench/miss_bench.py", "--pool", "both", "--quick", "--output", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    results = (tmp_path / "RESULTS.md").read_text()
    assert "## Misses and writes: with and without the database pool" in results
    rows = {}
    for line in results.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 9 and cells[0] in {"miss", "write"}:
            rows[cells[0], cells[1]] = dict(requests=int(cells[5]), opened=int(cells[6]))
            assert cells[8] == "0", line  # every answer a 2xx
    assert len(rows) == 4, results
    for case in ("miss", "write"):
        with_pool, without = rows[case, "pool on"], rows[case, "pool off"]
        assert with_pool["requests"] > 0 and without["requests"] > 0
        # The pools, grown in the warm-up, lend the connections they hold (at most they grow
        # from their minimum, 2, to their maximum, 10, in each of 2 workers); without them,
        # every request that reaches the database opens its own (measured: 1.0–1.3 each).
        assert with_pool["opened"] <= 2 * (10 - 2), rows
        assert without["opened"] >= without["requests"] // 2, rows
    assert (tmp_path / "miss_pool_bench.png").stat().st_size > 10_000


def test_the_webhook_benchmark_measures_throughput_write_cost_and_latency(tmp_path):
    result = run_script("bench/webhook_bench.py", "--quick", "--output", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    results = (tmp_path / "RESULTS.md").read_text()
    for row in ("| deliveries/s, 1 endpoint", "| ratio (the outbox row's cost) |", "p99 |"):
        assert row in results


def test_the_server_benchmark_compares_a_logged_hit_with_fastapi_and_bare_callables(tmp_path):
    result = run_script("bench/server_bench.py", "--logged", "--quick", "--output", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    results = (tmp_path / "RESULTS.md").read_text()
    assert "## Servers: a logged hit" in results
    assert "| logged hit / bare WSGI, Granian WSGI |" in results
    assert "| logged hit / the same without line and metrics |" in results
    assert (tmp_path / "server_logged_bench.png").stat().st_size > 10_000


def test_the_render_benchmark_measures_the_endpoint_and_the_client(tmp_path):
    result = run_script("bench/render_bench.py", "--quick", "--output", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    results = (tmp_path / "RESULTS.md").read_text()
    for case in ("| render small |", "| render large |", "| config GET (hit) |"):
        assert case in results
    assert "| template | µs per render | renders/s (one core) |" in results
    assert (tmp_path / "render_bench.png").stat().st_size > 10_000
