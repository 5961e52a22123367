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

import argparse
import gzip
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, setup_django, start_gunicorn, start_services, stop, stop_services

from tests.live import call
from tests.throwaway_servers import free_port

TOOL_COUNTS = [1, 10, 100, 1000]
CASES = ["hit", "hit-gzip", "label hit", "miss", "ceiling", "memory"]
GZIP = {"Accept-Encoding": "gzip"}
LABEL = "production"


def load_config(tool_counts) -> tuple[dict, str]:
    """One assistant per tool count, each linked to that many tools; returns ids and a key."""
    from django.db import transaction

    from assistants.models import Assistant
    from core.cache import bump_config_revision
    from core.models import APIKey
    from tools.models import AssistantToolLink, Tool

    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    }
    ids = {}
    with transaction.atomic():
        for n in tool_counts:
            assistant = Assistant.objects.create(
                name=f"bench-{n}", model="gpt-4o-mini", instructions="You help. " * 20
            )
            tools = Tool.objects.bulk_create(
                Tool(
                    name=f"tool_{n}_{i}",
                    tool_type="weather",
                    description=f"Tool {i} of {n}.",
                    input_schema=schema,
                )
                for i in range(n)
            )
            AssistantToolLink.objects.bulk_create(
                AssistantToolLink(assistant=assistant, tool=tool) for tool in tools
            )
            ids[n] = str(assistant.id)
        bump_config_revision()
    from config_backend.history.labels import label_move

    label_move(name=LABEL, revision="live", author="bench")
    _, key = APIKey.objects.create_key(name="bench", scope="read")
    return ids, key


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_wrk(
    url: str,
    key: str | None,
    seconds: float,
    connections: int,
    headers: dict | None = None,
    script: Path | None = None,
) -> dict:
    """One wrk run (`script`: a Lua file making its requests, e.g. writes)."""
    duration = f"{max(1, round(seconds))}s"  # wrk takes whole seconds
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", duration, "--latency", url]
    if script:
        command[1:1] = ["-s", str(script)]
    if key:
        command[1:1] = ["-H", f"Authorization: Bearer {key}"]
    for name, value in (headers or {}).items():
        command[1:1] = ["-H", f"{name}: {value}"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {}
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        latency[pct] = float(value) * _UNITS[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": latency["50"],
        "p99": latency["99"],
        "errors": int(errors.group(1)) if errors else 0,
    }


def write_results(results: dict, tool_counts, output: Path, meta: str) -> None:
    def med(case, n, field):
        return statistics.median(r[field] for r in results[(case, n)])

    lines = [
        "## Read path",
        "",
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
    text = "\n".join(lines) + "\n"
    results_file = output / "RESULTS.md"
    previous = results_file.read_text() if results_file.exists() else "# Benchmark results\n"
    # Replace only this section; keep the others (import, soak).
    if "\n## Read path\n" in previous:
        previous = re.sub(r"\n## Read path\n.*?(?=\n## |\Z)", "", previous, flags=re.S)
    head, _, rest = previous.partition("\n## ")
    results_file.write_text(head.rstrip() + "\n\n" + text + ("\n## " + rest if rest else ""))
    print(text)

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run that checks it works")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--output", type=Path, default=ROOT / "bench")
    args = parser.parse_args()
    tool_counts = TOOL_COUNTS
    if args.quick:
        args.rounds, args.seconds, tool_counts = 1, 1.0, [1, 10]
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk (or run scripts/install-system-deps)")
        return 2

    servers: list[subprocess.Popen] = []
    try:
        setup_django(start_services())
        ids, key = load_config(tool_counts)
        ports = {name: free_port() for name in ("app", "miss", "ceiling")}
        servers.append(start_gunicorn("config_backend.wsgi", ports["app"]))
        servers.append(
            start_gunicorn("config_backend.wsgi", ports["miss"], {"CONFIG_CACHE_ENTRIES": "0"})
        )
        servers.append(start_gunicorn("bench.ceiling_app", ports["ceiling"]))

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
                    result = run_wrk(url, case_key, seconds, args.connections, headers)
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
            f"`.venv/bin/python bench/read_bench.py{' --quick' if args.quick else ''}`."
        )
        args.output.mkdir(parents=True, exist_ok=True)
        write_results(results, tool_counts, args.output, meta)
    finally:
        stop(servers)
        stop_services()
    return 0


if __name__ == "__main__":
    sys.exit(main())
