"""Server benchmark: one cache hit under each candidate server, side by side, in one run.

    .venv/bin/python bench/server_bench.py            # full run: bench/RESULTS.md "Servers" + PNG
    .venv/bin/python bench/server_bench.py --quick    # seconds; checks that it works
    .venv/bin/python bench/server_bench.py --logged   # "Servers: a logged hit" + its PNG

Starts its own PostgreSQL and Redis (or uses DATABASE_URL / REDIS_URL), loads one assistant with
TOOLS tools and an API key, and serves, each with 2 worker processes on loopback:
- our app through its WSGI entry (ConfigFastPath) under gunicorn sync, gunicorn gthread (4
  threads per worker) and Granian WSGI; through its ASGI entry (AsyncConfigFastPath) under
  Granian ASGI (`python -m config_backend.serve`, what `make serve` runs) and uvicorn;
- the baselines of bench/baseline_apps.py, one Redis GET of the same bytes each: FastAPI
  (redis.asyncio) under uvicorn and Granian; a bare WSGI callable (redis-py) under gunicorn and
  Granian; a bare ASGI callable (redis.asyncio) under Granian and uvicorn.
The config entry is warmed first; wrk (Debian's) then drives each server in turn, round after
round in a shuffled order, so machine noise hits every case alike, and a Lua check counts every
response: each must be a 200 with `X-Config-Cache: hit` (the baselines send it too), or the run
fails. Then, for the production server, read throughput with IDLE_STREAMS idle subscribers of
the push endpoint (GET /api/v1/config/events/, each a real subscription past its first event)
held open by another process, against the same without, interleaved the same way.

`--logged` measures only what issue 20 compares a production hit with: `make serve` as
production runs it (LOG_FORMAT=json, METRICS_ENABLED=1: a request line and the counts per hit)
and without either (LOG_LEVEL=WARNING, METRICS_ENABLED=0), against FastAPI (uvicorn and
Granian) and the bare WSGI and ASGI callables under Granian, in one interleaved run.
Besides req/s it reports each server's CPU per hit (all its processes' user + system time over
the run, from /proc, divided by the hits): on a shared machine, other work moves the req/s of a
case far more than that. `--before REF` adds `make serve` as it was at git REF (a detached
worktree, removed at the end), logging and counting as production: one run, before and after.
"""

import atexit
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from common import (
    ROOT,
    bench_arguments,
    create_keys,
    load_assistants,
    process_tree_cpu,
    run_wrk,
    running_services,
    scratch,
    serve_command,
    start_server,
    table_head,
    this_command,
    write_section,
)
from stream_holder import hold_streams, release_streams

from tests.live import call
from tests.throwaway_servers import free_port

TOOLS = 10
WORKERS = 2
IDLE_STREAMS = 1000
EVENTS_PATH = "/api/v1/config/events/"
PY = sys.executable
OUR_WSGI, OUR_ASGI = "config_backend.wsgi:application", "config_backend.asgi:application"


def gunicorn(app: str, *extra: str):
    return lambda port: [
        *(PY, "-m", "gunicorn", app.replace(":application", ""), "--workers", str(WORKERS)),
        *("--bind", f"127.0.0.1:{port}", "--log-level", "warning", *extra),
    ]


def granian(app: str, interface: str):
    return lambda port: [
        *(PY, "-m", "granian", "--interface", interface, "--workers", str(WORKERS)),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        *(["--loop", "uvloop"] if interface != "wsgi" else []),
        app,
    ]


def uvicorn(app: str, *extra: str):
    return lambda port: [
        *(PY, "-m", "uvicorn", app, "--workers", str(WORKERS), "--host", "127.0.0.1"),
        *("--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log"),
        *("--log-level", "warning", *extra),
    ]


def make_serve(port):
    """What `make serve` runs, on loopback."""
    return serve_command(port, WORKERS)


# name: (what answers, server, command for a port). Ours first; `make serve` is the ASGI one
# under Granian. CASE_ENV: what a case's server gets besides the benchmark's environment.
CASES = {
    "ours-wsgi-gunicorn-sync": ("ours (WSGI)", "gunicorn sync", gunicorn(OUR_WSGI)),
    "ours-wsgi-gunicorn-gthread": (
        "ours (WSGI)",
        "gunicorn gthread ×4",
        gunicorn(OUR_WSGI, "-k", "gthread", "--threads", "4"),
    ),
    "ours-wsgi-granian": ("ours (WSGI)", "Granian WSGI", granian(OUR_WSGI, "wsgi")),
    "ours-asgi-granian": ("ours (ASGI)", "Granian ASGI = make serve", make_serve),
    # The same without its request line and metrics: what they cost a hit.
    "ours-asgi-granian-quiet": ("ours (ASGI), no line, no metrics", "Granian ASGI", make_serve),
    # --before REF: the same as "ours-asgi-granian", as it was at REF.
    "ours-before": ("ours before (ASGI)", "Granian ASGI = make serve", make_serve),
    "ours-asgi-uvicorn": ("ours (ASGI)", "uvicorn", uvicorn(OUR_ASGI, "--lifespan", "off")),
    "fastapi-uvicorn": ("FastAPI", "uvicorn", uvicorn("bench.baseline_apps:fastapi_app")),
    "fastapi-granian": (
        "FastAPI",
        "Granian ASGI",
        granian("bench.baseline_apps:fastapi_app", "asgi"),
    ),
    "bare-wsgi-gunicorn": ("bare WSGI", "gunicorn sync", gunicorn("bench.baseline_apps:bare_wsgi")),
    "bare-wsgi-granian": (
        "bare WSGI",
        "Granian WSGI",
        granian("bench.baseline_apps:bare_wsgi", "wsgi"),
    ),
    "bare-asgi-granian": (
        "bare ASGI",
        "Granian ASGI",
        granian("bench.baseline_apps:bare_asgi", "asginl"),
    ),
    "bare-asgi-uvicorn": (
        "bare ASGI",
        "uvicorn",
        uvicorn("bench.baseline_apps:bare_asgi", "--lifespan", "off"),
    ),
}
# Ours as the container runs it (LOG_FORMAT=json, set below) with /metrics on, as production.
CASE_ENV = {
    "ours-asgi-granian": {"METRICS_ENABLED": "1"},
    "ours-asgi-granian-quiet": {"LOG_LEVEL": "WARNING", "METRICS_ENABLED": "0"},
    "ours-before": {"METRICS_ENABLED": "1"},
}
# --logged: issue 20's comparison only.
LOGGED_CASES = [
    "ours-asgi-granian",
    "ours-asgi-granian-quiet",
    "fastapi-uvicorn",
    "fastapi-granian",
    "bare-wsgi-granian",
    "bare-asgi-granian",
]
FASTAPI = ("fastapi-uvicorn", "fastapi-granian")
# The ratios the server issue asks for: (numerator, denominator, target).
TARGETS = [
    ("ours-asgi-granian", "fastapi-uvicorn", 1.0),
    ("ours-asgi-granian", "fastapi-granian", 1.0),
    # Like for like: the FastAPI baselines write no line per request either.
    ("ours-asgi-granian-quiet", "fastapi-uvicorn", 1.0),
    ("ours-asgi-granian-quiet", "fastapi-granian", 1.0),
    ("ours-asgi-granian", "bare-asgi-granian", 0.9),
    ("ours-asgi-granian", "bare-wsgi-granian", 0.7),
]
# For context: each of our stacks against the bare callable under the same server.
SAME_SERVER = [
    ("ours-wsgi-gunicorn-sync", "bare-wsgi-gunicorn"),
    ("ours-wsgi-granian", "bare-wsgi-granian"),
    ("ours-asgi-uvicorn", "bare-asgi-uvicorn"),
]

# Counts every response in wrk's Lua: a 200 with X-Config-Cache: hit, or not.
CHECK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) hits = 0; other = 0 end
function response(status, headers, body)
  local cache = headers["X-Config-Cache"] or headers["x-config-cache"]
  if status == 200 and cache == "hit" then hits = hits + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local hits, other = 0, 0
  for _, thread in ipairs(threads) do
    hits = hits + thread:get("hits"); other = other + thread:get("other")
  end
  io.write(string.format("CHECK hits=%d other=%d\\n", hits, other))
end
"""


def checked_wrk(
    url: str, key: str, seconds: float, connections: int, script: Path, server=None
) -> dict:
    """One wrk run with CHECK_SCRIPT; fails unless every response was a 200 hit and no socket
    failed. With the `server` process: its CPU µs per hit (`cpu_us`) too."""
    cpu_before = process_tree_cpu(server.pid) if server else 0.0
    run = run_wrk(url, seconds=seconds, connections=connections, key=key, script=script)
    if server:
        run["cpu_us"] = (process_tree_cpu(server.pid) - cpu_before) / run["requests"] * 1e6
    hits, other = map(int, re.search(r"CHECK hits=(\d+) other=(\d+)", run["output"]).groups())
    if other or not hits or run["socket_errors"]:
        raise SystemExit(
            f"{url}: {hits} hits, {other} other answers, {run['socket_errors']}\n{run['output']}"
        )
    return {**run, "hits": hits}


# --- results -------------------------------------------------------------------------------


def med(runs: list[dict], field: str = "rps") -> float:
    return statistics.median(run[field] for run in runs)


def write_results(results: dict, idle: dict, meta: str, output: Path) -> None:
    lines = table_head(
        meta, "| app | server | req/s (median) | min–max | p50 ms | p99 ms |", text_columns=2
    )
    for name, (app, server, _) in CASES.items():
        if name not in results:
            continue
        runs = results[name]
        spread = f"{min(r['rps'] for r in runs):.0f}–{max(r['rps'] for r in runs):.0f}"
        lines.append(
            f"| {app} | {server} | {med(runs):.0f} | {spread} | {med(runs, 'p50'):.2f} "
            f"| {med(runs, 'p99'):.2f} |"
        )
    lines += ["", "| ratio (medians) | measured | target |", "|---|---:|---:|"]
    for top, bottom, target in TARGETS:
        ratio = med(results[top]) / med(results[bottom])
        label = f"{CASES[top][0]}, {CASES[top][1]} / {CASES[bottom][0]}, {CASES[bottom][1]}"
        lines.append(f"| {label} | {ratio:.2f} | ≥ {target:.1f} |")
    quiet = med(results["ours-asgi-granian-quiet"]) / med(results["bare-asgi-granian"])
    lines.append(
        f"| ours (ASGI), no line, no metrics / bare ASGI, both Granian ASGI | {quiet:.2f} | |"
    )
    for top, bottom in SAME_SERVER:
        ratio = med(results[top]) / med(results[bottom])
        lines.append(
            f"| {CASES[top][0]} / {CASES[bottom][0]}, both {CASES[top][1]} | {ratio:.2f} | |"
        )
    without, held = med(idle["without"]), med(idle["with"])
    lines += [
        "",
        f"Idle event streams ({idle['what']}), production server (Granian ASGI, 2 workers): "
        f"{without:.0f} req/s without, {held:.0f} req/s with {idle['count']:,} streams held "
        f"open, ratio **{held / without:.2f}** (target ≥ 0.90); every read a 200 hit.",
        "",
        "![servers](server_bench.png)",
    ]
    write_section("## Servers", lines, output / "RESULTS.md")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in CASES if name in results]
    colors = {"ours (WSGI)": "tab:blue", "ours (ASGI)": "tab:green"}
    colors["ours (ASGI), no line, no metrics"] = "tab:olive"
    fig, (ax, ax_idle) = plt.subplots(1, 2, figsize=(11, 5), gridspec_kw={"width_ratios": [3, 1]})
    ax.barh(
        [f"{CASES[n][0]} · {CASES[n][1]}" for n in names],
        [med(results[n]) for n in names],
        xerr=[
            [med(results[n]) - min(r["rps"] for r in results[n]) for n in names],
            [max(r["rps"] for r in results[n]) - med(results[n]) for n in names],
        ],
        color=[colors.get(CASES[n][0], "tab:gray") for n in names],
    )
    ax.invert_yaxis()
    ax.set_xlabel("requests / second (median, min–max)")
    ax.set_title(f"Cached config read, {WORKERS} workers per server")
    ax.grid(True, axis="x", alpha=0.3)
    ax_idle.bar(["without", f"{idle['count']:,} idle\nstreams"], [without, held], color="tab:green")
    ax_idle.set_title("make serve", fontsize=10)
    ax_idle.set_ylabel("requests / second (median)")
    ax_idle.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(output / "server_bench.png", dpi=100)


LOGGED_SECTION = "## Servers: a logged hit"


def write_logged(results: dict, meta: str, output: Path) -> None:
    """--logged: issue 20's ratios, a table and a chart of their own."""
    fastapi = max(FASTAPI, key=lambda name: med(results[name]))
    lines = [
        LOGGED_SECTION,
        "",
        meta,
        "",
        "| app | server | req/s (median) | min–max | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines[-2] = lines[-2].replace("p99 ms |", "p99 ms | server CPU µs per hit (median) |")
    lines[-1] += "---:|"
    names = [name for name in [*LOGGED_CASES, "ours-before"] if name in results]
    for name in names:
        app, server, _ = CASES[name]
        runs = results[name]
        spread = f"{min(r['rps'] for r in runs):.0f}–{max(r['rps'] for r in runs):.0f}"
        lines.append(
            f"| {app} | {server} | {med(runs):.0f} | {spread} | {med(runs, 'p50'):.2f} "
            f"| {med(runs, 'p99'):.2f} | {med(runs, 'cpu_us'):.0f} |"
        )
    best = f"FastAPI, {CASES[fastapi][1]} (the better of uvicorn and Granian)"

    def cpu(top: str, bottom: str) -> float:  # as a throughput: hits per CPU second, top / bottom
        return med(results[bottom], "cpu_us") / med(results[top], "cpu_us")

    def both(top: str, bottom: str) -> tuple[float, float]:  # req/s, then hits per CPU second
        return med(results[top]) / med(results[bottom]), cpu(top, bottom)

    ratios = [
        (f"logged hit / {best}", *both("ours-asgi-granian", fastapi)),
        ("logged hit / bare WSGI, Granian WSGI", *both("ours-asgi-granian", "bare-wsgi-granian")),
        ("logged hit / bare ASGI, Granian ASGI", *both("ours-asgi-granian", "bare-asgi-granian")),
        (
            "logged hit / the same without line and metrics",
            *both("ours-asgi-granian", "ours-asgi-granian-quiet"),
        ),
    ]
    if "ours-before" in results:
        ratios += [
            (
                "logged hit / the same before (`--before`)",
                *both("ours-asgi-granian", "ours-before"),
            ),
            (f"logged hit before / {best}", *both("ours-before", fastapi)),
            (
                "logged hit before / bare WSGI, Granian WSGI",
                *both("ours-before", "bare-wsgi-granian"),
            ),
        ]
    targets = {0: "≥ 1.0", 1: "≥ 0.7"}
    lines += [
        "",
        "| ratio (medians) | req/s | hits per CPU second | target |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {label} | {ratio:.2f} | {by_cpu:.2f} | {targets.get(index, '')} |"
        for index, (label, ratio, by_cpu) in enumerate(ratios)
    ]
    lines += ["", "![logged hit](server_logged_bench.png)"]
    text = "\n".join(lines) + "\n"
    results_file = output / "RESULTS.md"
    previous = results_file.read_text() if results_file.exists() else "# Benchmark results\n"
    heading = re.escape(LOGGED_SECTION)
    previous = re.sub(rf"\n{heading}\n.*?(?=\n## |\Z)", "", previous, flags=re.S)
    results_file.write_text(previous.rstrip() + "\n\n" + text)
    print(text)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_cpu) = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    colors = {"ours-asgi-granian": "tab:green", "ours-asgi-granian-quiet": "tab:olive"}
    colors["ours-before"] = "tab:red"
    labels = [f"{CASES[name][0]} · {CASES[name][1]}" for name in names]
    ax.barh(
        labels,
        [med(results[name]) for name in names],
        xerr=[
            [med(results[n]) - min(r["rps"] for r in results[n]) for n in names],
            [max(r["rps"] for r in results[n]) - med(results[n]) for n in names],
        ],
        color=[colors.get(name, "tab:gray") for name in names],
    )
    ax.invert_yaxis()
    ax.set_xlabel("requests / second (median, min–max)")
    ax.set_title(f"Cached config read, {WORKERS} workers; ours logs and counts each hit")
    ax.grid(True, axis="x", alpha=0.3)
    ax_cpu.barh(
        labels,
        [med(results[name], "cpu_us") for name in names],
        color=[colors.get(name, "tab:gray") for name in names],
    )
    ax_cpu.set_xlabel("server CPU µs per hit (median; less is better)")
    ax_cpu.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(output / "server_logged_bench.png", dpi=100)


def main() -> int:
    parser = bench_arguments(__doc__.splitlines()[0], rounds=9, seconds=2.0)
    parser.add_argument("--streams", type=int, default=IDLE_STREAMS)
    parser.add_argument("--logged", action="store_true", help="issue 20's comparison only")
    parser.add_argument("--before", metavar="REF", help="--logged: also make serve at git REF")
    args = parser.parse_args()
    cases = LOGGED_CASES if args.logged else [name for name in CASES if name != "ours-before"]
    if args.before and args.logged:
        cases = [*cases, "ours-before"]
    if args.quick:
        args.rounds, args.seconds, args.streams = 1, 1.0, 50

    with running_services():
        script = scratch("wrk") / "check.lua"
        script.write_text(CHECK_SCRIPT)
        os.environ.setdefault("LOG_FORMAT", "json")  # the container's default
        assistant_id = load_assistants({"bench": TOOLS})["bench"]
        key = create_keys("read")["read"]
        path = f"/api/v1/assistants/{assistant_id}/config/"
        ports = {name: free_port() for name in cases}
        servers, before = {}, None
        if "ours-before" in cases:
            before = checkout(args.before)
            atexit.register(
                subprocess.run, ["git", "worktree", "remove", "--force", str(before)], cwd=ROOT
            )
        for name in cases:
            command, env = CASES[name][2], CASE_ENV.get(name)
            where = {}
            if name == "ours-before":
                env = {**env, "PYTHONPATH": str(before / "client" / "src")}
                where = {"cwd": before}
            servers[name] = start_server(command(ports[name]), ports[name], env, path, **where)

        from django.urls import resolve
        from django_redis import get_redis_connection

        base = f"http://127.0.0.1:{ports['ours-asgi-granian']}"
        _, _, miss = call("GET", base + path, key=key)
        status, headers, body = call("GET", base + path, key=key)
        assert status == 200 and headers["X-Config-Cache"] == "hit" and body == miss
        get_redis_connection("default").set("bench:config", body)
        for name in cases:  # the same bytes everywhere
            _, _, answered = call("GET", f"http://127.0.0.1:{ports[name]}{path}", key=key)
            assert answered == body, name

        resolve(EVENTS_PATH)  # the push endpoint (assistants/events_api.py): 404 if it is gone
        stream_path, what = EVENTS_PATH, f"the push endpoint {EVENTS_PATH}"
        if not args.logged:
            idle_port = free_port()
            start_server(make_serve(idle_port), idle_port)
            idle_url = f"http://127.0.0.1:{idle_port}{path}"

        def wrk(url, seconds, server=None):
            return checked_wrk(url, key, seconds, args.connections, script, server)

        for name in cases:  # warm every worker's connections
            print(f"warming {name}", file=sys.stderr)
            wrk(f"http://127.0.0.1:{ports[name]}{path}", 1)
        if not args.logged:
            wrk(idle_url, 1)

        results: dict = {name: [] for name in cases}
        idle: dict = {"without": [], "with": [], "count": args.streams, "what": what}
        order = random.Random(42)
        started, load_before = time.monotonic(), os.getloadavg()[0]
        for round_number in range(args.rounds):
            names = list(cases)
            order.shuffle(names)
            for name in names:
                url = f"http://127.0.0.1:{ports[name]}{path}"
                results[name].append(wrk(url, args.seconds, servers[name]))
            if args.logged:
                print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
                continue
            idle["without"].append(wrk(idle_url, args.seconds))
            holder = hold_streams(idle_port, stream_path, key, args.streams)
            try:
                idle["with"].append(wrk(idle_url, args.seconds))
            finally:
                release_streams(holder)
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
        versions = {
            package: version(package)
            for package in ("granian", "uvicorn", "gunicorn", "fastapi", "uvloop", "redis")
        }
        meta = (
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores (wrk, the servers, "
            f"Redis and PostgreSQL share them): GET of one assistant's cached config ({TOOLS} "
            f"tools, {len(body):,} bytes) with a read key, {WORKERS} worker processes per "
            f"server, wrk 1 thread × {args.connections} connections, {args.seconds:g} s per "
            f"case, {args.rounds} interleaved rounds in shuffled order "
            f"({time.monotonic() - started:.0f} s), medians over rounds; every response "
            f"checked to be a 200 with `X-Config-Cache: hit`. Our app runs as production "
            f"does (LOG_FORMAT=json: a request line per hit; METRICS_ENABLED=1); the baselines "
            f"log and count nothing. Load average (1 min) {load_before:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end. Versions: {json.dumps(versions)}. Command: "
            f"{this_command()}."
        )
        args.output.mkdir(parents=True, exist_ok=True)
        if args.logged:
            write_logged(results, meta, args.output)
        else:
            write_results(results, idle, meta, args.output)
    return 0


def checkout(ref: str) -> Path:
    """A detached git worktree of this repository at `ref`, in a temporary directory."""
    where = Path(tempfile.mkdtemp(prefix="server-bench-before-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(where), ref], cwd=ROOT, check=True)
    shutil.rmtree(where / "bench" / "__pycache__", ignore_errors=True)
    return where


if __name__ == "__main__":
    sys.exit(main())
