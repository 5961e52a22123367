"""Read-path benchmark: the config endpoint against the stack's ceiling, in one interleaved run.

    .venv/bin/python bench/read_bench.py            # full run, writes bench/RESULTS.md + PNG
    .venv/bin/python bench/read_bench.py --quick    # seconds; checks that it works

Starts its own PostgreSQL and Redis (or uses DATABASE_URL / REDIS_URL), loads one assistant per
tool count (1, 10, 100, 1000 tools), and serves, each under gunicorn with 2 workers:
- the app (cache hit: GET /api/v1/assistants/{id}/config/ with an API key; and `label hit`:
  the same with `?label=production`, a label pointing at the newest revision; and `hit-gzip`:
  the plain hit with `Accept-Encoding: gzip`, the gzip bytes stored with the entry),
- the app with CONFIG_CACHE_ENTRIES=0 (every request misses and builds from PostgreSQL),
- bench/ceiling_app.py: one Redis GET through django-redis (the ceiling), and from memory.
wrk drives each case in turn, round after round, so machine noise hits every case alike;
the table reports the median over rounds. Loopback only; every run is bounded in time.
"""

import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

from common import (
    bench_arguments,
    create_keys,
    load_assistants,
    run_wrk,
    running_services,
    start_gunicorn,
    this_command,
    write_section,
)

from tests.live import call
from tests.throwaway_servers import free_port

TOOL_COUNTS = [1, 10, 100, 1000]
CASES = ["hit", "hit-gzip", "label hit", "miss", "ceiling", "memory"]
GZIP = {"Accept-Encoding": "gzip"}
LABEL = "production"


def load_config(tool_counts) -> tuple[dict, str]:
    """One assistant per tool count, each linked to that many tools, and a label at the newest
    revision; returns {tool count: assistant id} and a read key."""
    from config_backend.history.labels import label_move

    ids = load_assistants({f"bench-{n}": n for n in tool_counts})
    label_move(name=LABEL, revision="live", author="bench")
    return {n: ids[f"bench-{n}"] for n in tool_counts}, create_keys("read")["read"]


def write_results(results: dict, tool_counts, output: Path, meta: str) -> None:
    def med(case, n, field):
        return statistics.median(r[field] for r in results[(case, n)])

    lines = [
        meta,
        "",
        "| tools | case | req/s | p50 ms | p99 ms |",
        "|---:|---|---:|---:|---:|",
    ]
    for n in tool_counts:
        for case in CASES:
            lines.append(
                f"| {n} | {case} | {med(case, n, 'rps'):.0f} | {med(case, n, 'p50'):.2f} "
                f"| {med(case, n, 'p99'):.2f} |"
            )
    lines += [
        "",
        "| tools | hit / ceiling | hit / memory | miss / hit | label hit / hit |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n in tool_counts:
        hit = med("hit", n, "rps")
        lines.append(
            f"| {n} | {hit / med('ceiling', n, 'rps'):.2f} | {hit / med('memory', n, 'rps'):.2f} "
            f"| {med('miss', n, 'rps') / hit:.3f} | {med('label hit', n, 'rps') / hit:.2f} |"
        )
    write_section("## Read path", lines, output / "RESULTS.md")
    print("\n".join(lines))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for case in CASES:
        ax.plot(tool_counts, [med(case, n, "rps") for n in tool_counts], marker="o", label=case)
    ax.set_xscale("log")
    ax.set_xlabel("tools per assistant")
    ax.set_ylabel("requests / second")
    ax.set_title("Config read throughput (gunicorn, 2 workers)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(output / "read_bench.png", dpi=100)


def main() -> int:
    args = bench_arguments(__doc__.splitlines()[0], rounds=5, seconds=4.0).parse_args()
    tool_counts = TOOL_COUNTS
    if args.quick:
        args.rounds, args.seconds, tool_counts = 1, 1.0, [1, 10]

    with running_services():
        ids, key = load_config(tool_counts)
        ports = {name: free_port() for name in ("app", "miss", "ceiling")}
        start_gunicorn("config_backend.wsgi", ports["app"])
        start_gunicorn("config_backend.wsgi", ports["miss"], {"CONFIG_CACHE_ENTRIES": "0"})
        start_gunicorn("bench.ceiling_app", ports["ceiling"])

        from django_redis import get_redis_connection

        urls = {}
        for n in tool_counts:
            path = f"/api/v1/assistants/{ids[n]}/config/"
            status, _, body = call("GET", f"http://127.0.0.1:{ports['app']}{path}", key=key)
            assert status == 200 and len(json.loads(body)["tools"]) == n
            get_redis_connection("default").set(f"bench:config:{n}", body)
            _, _, again = call("GET", f"http://127.0.0.1:{ports['app']}{path}", key=key)
            assert again == body, "a hit returns the bytes of the miss"
            _, gzip_headers, gzipped = call(
                "GET", f"http://127.0.0.1:{ports['app']}{path}", key=key, headers=GZIP
            )
            assert gzip_headers["X-Config-Cache"] == "hit", "all codings stored with the miss"
            assert gzip.decompress(gzipped) == body
            _, _, cold = call("GET", f"http://127.0.0.1:{ports['miss']}{path}", key=key)
            assert cold == body, "the uncached server builds the same bytes"
            _, _, ceiling = call("GET", f"http://127.0.0.1:{ports['ceiling']}/redis/{n}/")
            assert ceiling == body
            label_url = f"http://127.0.0.1:{ports['app']}{path}?label={LABEL}"
            status, _, labelled = call("GET", label_url, key=key)
            assert status == 200 and len(json.loads(labelled)["tools"]) == n
            assert call("GET", label_url, key=key)[2] == labelled, "a label hit returns the same"
            urls[("hit", n)] = (f"http://127.0.0.1:{ports['app']}{path}", key)
            urls[("hit-gzip", n)] = (f"http://127.0.0.1:{ports['app']}{path}", key)
            urls[("label hit", n)] = (label_url, key)
            urls[("miss", n)] = (f"http://127.0.0.1:{ports['miss']}{path}", key)
            urls[("ceiling", n)] = (f"http://127.0.0.1:{ports['ceiling']}/redis/{n}/", None)
            urls[("memory", n)] = (f"http://127.0.0.1:{ports['ceiling']}/memory/{n}/", None)

        results: dict = {case: [] for case in urls}
        started = time.monotonic()
        for round_number in range(args.rounds):
            for n in tool_counts:
                for case in CASES:
                    url, case_key = urls[(case, n)]
                    seconds = args.seconds if case != "miss" or n < 1000 else args.seconds / 2
                    headers = GZIP if case == "hit-gzip" else None
                    result = run_wrk(
                        url,
                        seconds=seconds,
                        connections=args.connections,
                        key=case_key,
                        headers=headers,
                    )
                    if result["errors"]:
                        raise SystemExit(f"{case} at {n} tools: {result['errors']} error responses")
                    results[(case, n)].append(result)
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
        meta = (
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores: gunicorn with 2 sync "
            f"workers per server, wrk 1 thread × {args.connections} connections, "
            f"{args.seconds:g} s per case, {args.rounds} interleaved rounds "
            f"({time.monotonic() - started:.0f} s), medians over rounds. "
            "`hit`: cached config with an API key; `hit-gzip`: the same with "
            "`Accept-Encoding: gzip` (stored compressed); `label hit`: the same read with "
            f"`?label={LABEL}` (a label at the newest revision); `miss`: CONFIG_CACHE_ENTRIES=0, "
            "built from PostgreSQL every time; `ceiling`: bare Django view, one Redis GET via "
            "django-redis; `memory`: the same view returning the bytes from memory. Command: "
            f"{this_command()}."
        )
        write_results(results, tool_counts, args.output, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
