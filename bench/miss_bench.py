"""Concurrent misses after an edit: builds per edit and latency, without and with the build lock.

    .venv/bin/python bench/miss_bench.py            # 10 edits × 32 concurrent readers
    .venv/bin/python bench/miss_bench.py --quick    # seconds; checks that it works
    .venv/bin/python bench/miss_bench.py --pool both   # misses and writes, pool on vs off

Starts its own PostgreSQL and Redis (or uses DATABASE_URL / REDIS_URL), loads one assistant with
`--tools` tools, and two app servers on them, gunicorn gthread (2 workers × 16 threads, so
that every reader's request is in flight at once): `before` with CONFIG_BUILD_WAIT_MS=0 (no
build lock: every miss builds, as before misses were built once) and `after` with the default.
For each edit (a PATCH of the assistant's instructions through the server), `--readers`
threads GET the assistant's config from that server at the same moment; each answer with
`X-Config-Cache: miss` built the entry. Reports builds per edit and the latency of those first
reads, and checks that every answer holds the edit. Loopback only; bounded in time.

`--pool both`: instead, the production server (`config_backend.serve`, 2 workers) twice, with
the database pool (DATABASE_POOL=1, the default) and without (DATABASE_POOL=0), both with
CONFIG_CACHE_ENTRIES=0 so that every read is a miss built from PostgreSQL. wrk drives, round
after round and alternating which server goes first, reads of the config (misses) and PATCHes of
the assistant (writes) against each; reports their p50/p99 and requests/s (medians over rounds)
and the PostgreSQL connections each opened meanwhile (PostgreSQL's `connection authorized` log
lines), writes the "Misses and writes: with and without the database pool" section of
RESULTS.md and miss_pool_bench.png.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

import common
from common import (
    ROOT,
    create_keys,
    edit_instructions,
    load_assistants,
    postgres_log,
    run_wrk,
    running_services,
    serve_command,
    setup_django,
    start_gunicorn,
    start_server,
    start_services,
    stop,
    stop_services,
    table_head,
    this_command,
    write_section,
)

from tests.live import call
from tests.throwaway_servers import free_port

SERVERS = {"before": {"CONFIG_BUILD_WAIT_MS": "0"}, "after": {}}
GTHREAD = "--worker-class gthread --threads 16"


def load_config(tools: int) -> tuple[str, str, str]:
    """One assistant linked to `tools` tools; returns its id, a read key and a write key."""
    assistant_id = load_assistants({"bench": tools})["bench"]
    keys = create_keys("read", "write")
    return assistant_id, keys["read"], keys["write"]


def concurrent_reads(url: str, key: str, readers: int) -> list[tuple[int, dict, bytes, float]]:
    """`readers` GETs of `url` released at once: (status, headers, body, seconds) each."""
    barrier = threading.Barrier(readers)
    answers: list = [None] * readers

    def read(index):
        barrier.wait()
        started = time.monotonic()
        status, headers, body = call("GET", url, key=key, timeout=30)
        answers[index] = (status, headers, body, time.monotonic() - started)

    threads = [threading.Thread(target=read, args=(index,)) for index in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def measure(base: str, assistant_id: str, read: str, write: str, edits: int, readers: int):
    """Builds per edit and the latencies of the reads right after each edit."""
    url = f"{base}/api/v1/assistants/{assistant_id}/config/"
    builds, latencies = [], []
    for edit in range(edits):
        instructions = f"edit {edit} at {time.time()}"
        edit_instructions(base, assistant_id, write, instructions)
        answers = concurrent_reads(url, read, readers)
        assert all(answer[0] == 200 for answer in answers), [answer[0] for answer in answers]
        assert all(json.loads(a[2])["instructions"] == instructions for a in answers), "stale"
        builds.append(sum(answer[1]["X-Config-Cache"] == "miss" for answer in answers))
        latencies += [answer[3] * 1000 for answer in answers]
        slowest = max(answer[3] for answer in answers)
        print(f"  edit {edit}: {builds[-1]} builds, slowest {slowest:.2f} s", file=sys.stderr)
        time.sleep(0.2)  # let the workers settle between edits
    return builds, latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def server_notes(ports: dict) -> str:
    """What each server's log says that explains extra builds: waits past the bound, breaker
    trips (a Redis answer slower than the 0.25 s socket timeout on a loaded machine)."""
    notes = []
    for name, port in ports.items():
        text = "".join(
            log.read_text(errors="replace")
            for workdir in common._workdirs
            for log in workdir.glob(f"*{port}*.log")
        )
        notes.append(
            f"{name}: {text.count('Waited ')} waits past the bound, "
            f"{text.count('Cache unreachable')} breaker trips"
        )
    return "; ".join(notes)


def write_results(rows: dict, output: Path, meta: str, notes: str) -> None:
    lines = table_head(
        meta, "| server | builds per edit: median | mean | max | p50 ms | p99 ms | max ms |"
    )
    for name, (builds, latencies) in rows.items():
        lines.append(
            f"| {name} | {statistics.median(builds):g} | {statistics.mean(builds):.1f} "
            f"| {max(builds)} | {statistics.median(latencies):.0f} "
            f"| {percentile(latencies, 0.99):.0f} | {max(latencies):.0f} |"
        )
    lines += [
        "",
        f"Builds per edit, in order: {', '.join(f'{k} {v[0]}' for k, v in rows.items())}.",
    ]
    lines += [f"Server logs: {notes}."]
    write_section("## Misses", lines, output / "RESULTS.md")
    print("\n".join(lines))


POOLS = {"pool on": {"DATABASE_POOL": "1"}, "pool off": {"DATABASE_POOL": "0"}}
# Every read a miss; request lines and metrics off so that the server's own work is the query.
POOL_SERVER = {"CONFIG_CACHE_ENTRIES": "0", "LOG_LEVEL": "WARNING", "METRICS_ENABLED": "0"}
POOL_CASES = ("miss", "write")
POOL_HEADING = "## Misses and writes: with and without the database pool"
POOL_CHART = "miss_pool_bench.png"
# Each write changes the instructions (a real UPDATE, a new revision).
WRITE_SCRIPT = """
local n = 0
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  -- wrk.headers (the key from -H) are sent only when no headers are passed here
  return wrk.format("PATCH", "/api/v1/assistants/%s/", nil, '{"instructions": "edit ' .. n .. '"}')
end
"""


def connections_opened() -> int:
    """Connections PostgreSQL has accepted so far (started with log_connections=on)."""
    return postgres_log().read_text(errors="replace").count("connection authorized")


def pool_round(base: str, assistant_id: str, keys: dict, seconds: float, connections: int, script):
    """One wrk run per case against `base`: its figures and the connections opened during it."""
    figures = {}
    for case in POOL_CASES:
        before = connections_opened()
        if case == "miss":
            url = f"{base}/api/v1/assistants/{assistant_id}/config/"
            result = run_wrk(url, key=keys["read"], seconds=seconds, connections=connections)
        else:
            result = run_wrk(
                base, key=keys["write"], seconds=seconds, connections=connections, script=script
            )
        time.sleep(0.2)  # a connection's log line is written as it is authorized; margin
        result["opened"] = connections_opened() - before
        figures[case] = result
    return figures


def pool_results(results: dict, meta: str, output: Path) -> list[str]:
    """The table (medians over rounds; connections summed) and the chart."""

    def med(name, case, field):
        return statistics.median(r[field] for r in results[name][case])

    def total(name, case, field):
        return sum(r[field] for r in results[name][case])

    lines = [
        meta,
        "",
        "| case | server | req/s | p50 ms | p99 ms | requests | PostgreSQL connections opened "
        "| per 1,000 requests | non-2xx |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in POOL_CASES:
        for name in POOLS:
            requests, opened = total(name, case, "requests"), total(name, case, "opened")
            lines.append(
                f"| {case} | {name} | {med(name, case, 'rps'):.0f} | {med(name, case, 'p50'):.1f} "
                f"| {med(name, case, 'p99'):.1f} | {requests} | {opened} "
                f"| {1000 * opened / max(1, requests):.1f} | {total(name, case, 'errors')} |"
            )
    lines += [""] + [
        f"Req/s per round, {case}: "
        + "; ".join(
            name + " " + ", ".join(f"{r['rps']:.0f}" for r in results[name][case]) for name in POOLS
        )
        + "."
        for case in POOL_CASES
    ]
    lines += ["", "| case | pool on / off: req/s | p50 | p99 |", "|---|---:|---:|---:|"]
    for case in POOL_CASES:
        on, off = "pool on", "pool off"
        lines.append(
            f"| {case} | {med(on, case, 'rps') / med(off, case, 'rps'):.2f} "
            f"| {med(on, case, 'p50') / med(off, case, 'p50'):.2f} "
            f"| {med(on, case, 'p99') / med(off, case, 'p99'):.2f} |"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(12, 4))
    width, positions = 0.38, range(len(POOL_CASES))
    for offset, name in zip((-width / 2, width / 2), POOLS, strict=True):
        shifted = [p + offset for p in positions]
        p50 = [med(name, case, "p50") for case in POOL_CASES]
        p99 = [med(name, case, "p99") for case in POOL_CASES]
        bars = axes[0].bar(shifted, p99, width, alpha=0.35, label=f"{name} p99")
        axes[0].bar(shifted, p50, width, color=bars[0].get_facecolor()[:3], label=f"{name} p50")
        axes[1].bar(shifted, [med(name, case, "rps") for case in POOL_CASES], width, label=name)
        per_thousand = [
            1000 * total(name, case, "opened") / max(1, total(name, case, "requests"))
            for case in POOL_CASES
        ]
        axes[2].bar(shifted, per_thousand, width, label=name)
    titles = (
        "latency, ms (p50 solid, p99 pale)",
        "requests / second",
        "connections opened / 1,000 requests",
    )
    for axis, title in zip(axes, titles, strict=True):
        axis.set_xticks(list(positions), POOL_CASES)
        axis.set_title(title, fontsize=10)
        axis.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    figure.suptitle("Misses and writes, production server (2 workers), database pool on vs off")
    figure.tight_layout()
    figure.savefig(output / POOL_CHART, dpi=100)
    return lines + ["", f"![Misses and writes with and without the pool]({POOL_CHART})"]


def pool_main(args) -> int:
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk (or run scripts/install-system-deps)")
        return 2
    servers = []
    try:
        env = start_services(postgres_settings={"log_connections": "on"})
        setup_django(env)
        assistant_id, read, write = load_config(args.tools)
        from django.db import connection

        connection.close()  # this script's own connections are not the servers'
        if getattr(connection, "pool", None):
            connection.close_pool()
        keys = {"read": read, "write": write}
        bases = {}
        for name, pool in POOLS.items():
            port = free_port()
            servers.append(start_server(serve_command(port), port, {**POOL_SERVER, **pool}))
            bases[name] = f"http://127.0.0.1:{port}"
        script = common._workdirs[-1] / "write.lua"
        script.write_text(WRITE_SCRIPT % assistant_id)
        warm_up = {}
        for name, base in bases.items():  # each worker's first requests; the pool's growth
            warm_up[name] = pool_round(base, assistant_id, keys, 1, args.connections, script)
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        results = {name: {case: [] for case in POOL_CASES} for name in POOLS}
        for round_number in range(args.rounds):
            order = list(POOLS) if round_number % 2 == 0 else list(reversed(POOLS))
            for name in order:
                figures = pool_round(
                    bases[name], assistant_id, keys, args.seconds, args.connections, script
                )
                for case, result in figures.items():
                    results[name][case].append(result)
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
        load_after = os.getloadavg()[0]
        warmed = ", ".join(
            f"{name} {sum(r['opened'] for r in rounds.values())}"
            for name, rounds in warm_up.items()
        )
        meta = (
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores (shared; machine "
            f"load average {load_before:.1f} at the start, {load_after:.1f} at the end): the "
            "production server (config_backend.serve, 2 workers) twice on one PostgreSQL and "
            "Redis, `pool on`: DATABASE_POOL=1 (the default: min 2, max 10 per worker) and "
            "`pool off`: DATABASE_POOL=0, both with CONFIG_CACHE_ENTRIES=0 (every read a miss "
            f"built from PostgreSQL: one assistant with {args.tools} tools) and LOG_LEVEL=WARNING, "
            f"METRICS_ENABLED=0. wrk 1 thread × {args.connections} connections, "
            f"{args.seconds:g} s per case: `miss`: GET of the config; `write`: PATCH of the "
            f"assistant's instructions. {args.rounds} rounds ({time.monotonic() - started:.0f} s), "
            "alternating which server goes first; latency and req/s: medians over rounds; "
            "connections: PostgreSQL's `connection authorized` log lines during the runs, summed "
            f"(a one-second warm-up of each case first opened: {warmed}). Command: "
            f"{this_command()}."
        )
        args.output.mkdir(parents=True, exist_ok=True)
        lines = pool_results(results, meta, args.output)
    finally:
        stop(servers)
        stop_services()
    print("\n".join(lines))
    write_section(POOL_HEADING, lines, args.output / "RESULTS.md")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run that checks it works")
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--readers", type=int, default=32)
    parser.add_argument("--tools", type=int, help="tools of the assistant (200; 10 with --pool)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench")
    parser.add_argument(
        "--pool", choices=["both"], help="misses and writes with the database pool on vs off"
    )
    parser.add_argument("--rounds", type=int, default=5, help="with --pool")
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run, with --pool")
    parser.add_argument("--connections", type=int, default=8, help="wrk's, with --pool")
    args = parser.parse_args()
    if args.tools is None:
        args.tools = 10 if args.pool else 200
    if args.pool:
        if args.quick:
            args.rounds, args.seconds = 1, 1.0
        return pool_main(args)
    if args.quick:
        args.edits, args.readers, args.tools = 2, 8, 20

    with running_services():
        assistant_id, read, write = load_config(args.tools)
        ports = {name: free_port() for name in SERVERS}
        bases = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for name, env in SERVERS.items():
            start_gunicorn(
                "config_backend.wsgi", ports[name], {**env, "GUNICORN_CMD_ARGS": GTHREAD}
            )
        rows = {}
        for name, base in bases.items():
            call("GET", f"{base}/api/v1/assistants/{assistant_id}/config/", key=read)  # warm
            rows[name] = measure(base, assistant_id, read, write, args.edits, args.readers)
            print(f"{name} done", file=sys.stderr)
        meta = (
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores: one assistant with "
            f"{args.tools} tools; {args.edits} edits (PATCH of its instructions), after each "
            f"{args.readers} concurrent GETs of its config; gunicorn gthread, 2 workers × 16 "
            "threads per server. `before`: CONFIG_BUILD_WAIT_MS=0 (no build lock: every miss "
            "builds); `after`: the default (one build, the others wait for it). A build is an "
            "answer with `X-Config-Cache: miss`; latency over every read after every edit; every "
            f"answer held the edit. Command: {this_command()}."
        )
        write_results(rows, args.output, meta, server_notes(ports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
