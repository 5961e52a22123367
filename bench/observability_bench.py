"""What the request log and the metrics cost a cache hit, in one interleaved run.

    .venv/bin/python bench/observability_bench.py            # writes its section of RESULTS.md
    .venv/bin/python bench/observability_bench.py --quick    # seconds; checks that it works

Three servers of the app (gunicorn, 2 workers each) answer the same cache hit:
- `off`: LOG_LEVEL=WARNING, METRICS_ENABLED=0 (no request line, nothing counted),
- `console`: the default, a console request line per request, metrics off,
- `json+metrics`: the container's default, LOG_FORMAT=json and METRICS_ENABLED=1.
wrk drives each in turn, round after round (as read_bench.py does); medians over rounds.
"""

import os
import statistics
import sys
import time
from pathlib import Path

from common import (
    bench_arguments,
    interleaved_rounds,
    run_wrk,
    running_services,
    scratch,
    start_gunicorn,
    this_command,
    write_section,
)
from read_bench import load_config

from tests.live import call
from tests.throwaway_servers import free_port

SETTINGS = {
    "off": {"LOG_LEVEL": "WARNING", "METRICS_ENABLED": "0"},
    "console": {"LOG_FORMAT": "console", "METRICS_ENABLED": "0"},
    "json+metrics": {"LOG_FORMAT": "json", "METRICS_ENABLED": "1"},
}
SECTION = "## Read path: cost of logs and metrics"


def write_results(results: dict, tool_counts, output: Path, meta: str) -> None:
    def med(case, n):
        return statistics.median(r["rps"] for r in results[(case, n)])

    lines = [meta, "", "| tools | " + " | ".join(SETTINGS) + " | json+metrics / off |"]
    lines.append("|---:|" + "---:|" * (len(SETTINGS) + 1))
    for n in tool_counts:
        cells = " | ".join(f"{med(case, n):.0f}" for case in SETTINGS)
        lines.append(f"| {n} | {cells} | {med('json+metrics', n) / med('off', n):.2f} |")
    write_section(SECTION, lines, output / "RESULTS.md")
    print("\n".join(lines))


def main() -> int:
    args = bench_arguments(__doc__.splitlines()[0], rounds=5, seconds=4.0).parse_args()
    tool_counts = [1, 100]
    if args.quick:
        args.rounds, args.seconds, tool_counts = 1, 1.0, [1]

    with running_services():
        metrics_dir = scratch("metrics")
        ids, key = load_config(tool_counts)
        ports = {}
        for case, env in SETTINGS.items():
            ports[case] = free_port()
            env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir / case)}
            start_gunicorn("config_backend.wsgi", ports[case], env)
        urls = {}
        for n in tool_counts:
            path = f"/api/v1/assistants/{ids[n]}/config/"
            for case, port in ports.items():
                url = f"http://127.0.0.1:{port}{path}"
                for _ in range(2):
                    status, headers, _ = call("GET", url, key=key)
                assert status == 200 and headers["X-Config-Cache"] == "hit", case
                urls[(case, n)] = url

        started = time.monotonic()
        results = interleaved_rounds(
            args.rounds,
            [(case, n) for n in tool_counts for case in SETTINGS],
            lambda case: run_wrk(
                urls[case], seconds=args.seconds, connections=args.connections, key=key
            ),
        )
        meta = (
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores: a cache hit with an "
            f"API key, req/s, gunicorn with 2 sync workers per server, wrk 1 thread × "
            f"{args.connections} connections, {args.seconds:g} s per case, {args.rounds} "
            f"interleaved rounds ({time.monotonic() - started:.0f} s), medians. `off`: no request "
            "line (LOG_LEVEL=WARNING), metrics off; `console`: the default request line; "
            "`json+metrics`: LOG_FORMAT=json and METRICS_ENABLED=1, the container's default. "
            f"Command: {this_command()}."
        )
        write_results(results, tool_counts, args.output, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
