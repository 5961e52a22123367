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
    for case in ("| hit |", "| miss |", "| ceiling |", "| memory |"):
        assert case in results
    assert "| tools | hit / ceiling | hit / memory | miss / hit |" in results
    assert (tmp_path / "read_bench.png").stat().st_size > 10_000


def test_the_soak_finds_no_stale_read_and_no_error():
    result = run_script("bench/soak.py", "--seconds", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.splitlines()[0]
    assert " 0 stale, 0 5xx, 0 other non-200" in summary
    assert " 0 writes" not in summary
