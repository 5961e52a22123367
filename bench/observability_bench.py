"""What the request log and the metrics cost a cache hit, in one interleaved run.

    .venv/bin/python bench/observability_bench.py            # writes its section of RESULTS.md
    .venv/bin/python bench/observability_bench.py --quick    # seconds; checks that it works

Three servers of the app (gunicorn, 2 workers each) answer the same cache hit:
- `off`: LOG_LEVEL=WARNING, METRICS_ENABLED=0 (no request line, nothing counted),
- `console`: the default, a console request line per request, metrics off,
- `json+metrics`: the container's default, LOG_FORMAT=json and METRICS_ENABLED=1.
wrk drives each in turn, round after round (as read_bench.py does); medians over rounds.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, setup_django, start_gunicorn, start_services, stop, stop_services
from read_bench import load_config, run_wrk

from tests.live import call
from tests.throwaway_servers import free_port

SETTINGS = {
    "off": {"LOG_LEVEL": "WARNING", "METRICS_ENABLED": "0"},
    "console": {"LOG_FORMAT": "console", "METRICS_ENABLED": "0"},
    "json+metrics": {"LOG_FORMAT": "json", "METRICS_ENABLED": "1"},
}
SECTION = "## Read path: cost of logs and metrics"


def write_section(results: dict, tool_counts, output: Path, meta: str) -> None:
    def med(case, n):
        return statistics.median(r["rps"] for r in results[(case, n)])

    lines = [SECTION, "", meta, "", "| tools | " + " | ".join(SETTINGS) + " | json+metrics / off |"]
    lines.append("|---:|" + "---:|" * (len(SETTINGS) + 1))
    for n in tool_counts:
        cells = " | ".join(f"{med(case, n):.0f}" for case in SETTINGS)
        lines.append(f"| {n} | {cells} | {med('json+metrics', n) / med('off', n):.2f} |")
    text = "\n".join(lines) + "\n"
    results_file = output / "RESULTS.md"
    previous = results_file.read_text() if results_file.exists() else "# Benchmark results\n"
    previous = re.sub(rf"\n{re.escape(SECTION)}\n.*?(?=\n## |\Z)", "", previous, flags=re.S)
    results_file.write_text(previous.rstrip() + "\n\n" + text)
    print(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run that checks it works")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--output", type=Path, default=ROOT / "bench")
    args = parser.parse_args()
    tool_counts = [1, 100]
    if args.quick:
        args.rounds, args.seconds, tool_counts = 1, 1.0, [1]
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk (or run scripts/install-system-deps)")
        return 2

    servers: list[subprocess.Popen] = []
    metrics_dir = Path(tempfile.mkdtemp(prefix="config-backend-bench-metrics-"))
    try:
        setup_django(start_services())
        ids, key = load_config(tool_counts)
        ports = {}
        for case, env in SETTINGS.items():
            ports[case] = free_port()
            env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir / case)}
            servers.append(start_gunicorn("config_backend.wsgi", ports[case], env))
        urls = {}
        for n in tool_counts:
            path = f"/api/v1/assistants/{ids[n]}/config/"
            for case, port in ports.items():
                url = f"http://127.0.0.1:{port}{path}"
                for _ in range(2):
                    status, headers, _ = call("GET", url, key=key)
                assert status == 200 and headers["X-Config-Cache"] == "hit", case
                urls[(case, n)] = url

        results: dict = {case: [] for case in urls}
        started = time.monotonic()
        for round_number in range(args.rounds):
            for n in tool_counts:
                for case in SETTINGS:
                    result = run_wrk(urls[(case, n)], key, args.seconds, args.connections)
                    if result["errors"]:
                        raise SystemExit(f"{case} at {n} tools: {result['errors']} errors")
                    results[(case, n)].append(result)
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
        meta = (
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores: a cache hit with an "
            f"API key, req/s, gunicorn with 2 sync workers per server, wrk 1 thread × "
            f"{args.connections} connections, {args.seconds:g} s per case, {args.rounds} "
            f"interleaved rounds ({time.monotonic() - started:.0f} s), medians. `off`: no request "
            "line (LOG_LEVEL=WARNING), metrics off; `console`: the default request line; "
            "`json+metrics`: LOG_FORMAT=json and METRICS_ENABLED=1, the container's default. "
            "Command: `.venv/bin/python bench/observability_bench.py"
            f"{' --quick' if args.quick else ''}`."
        )
        args.output.mkdir(parents=True, exist_ok=True)
        write_section(results, tool_counts, args.output, meta)
    finally:
        stop(servers)
        stop_services()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
