"""Rollout benchmark: a per-user label hit against a live hit, the client's per-user resolution,
and how 100,000 user ids spread over the buckets, in one run.

    .venv/bin/python bench/rollout_bench.py            # full run, writes bench/RESULTS.md + PNG
    .venv/bin/python bench/rollout_bench.py --quick    # seconds; checks that it works

Starts its own PostgreSQL and Redis (or uses DATABASE_URL / REDIS_URL), loads one assistant with
10 tools, makes a second revision (its instructions changed), and puts the label `production` at
the first with a rollout of the second to 50 % of users. The production server (`make serve`:
Granian, ASGI, 2 workers) serves, case after case, round after round:
- `live hit`: GET /api/v1/assistants/{id}/config/ with a read key (a cache hit);
- `label hit`: the same with `?label=production` (no user: the base);
- `per-user hit`: the same with `&user_id=` a different user per request (1,000 in turn, half
  on each variant): every answer is checked to be a 200 hit, and both variants to be served.
Then, in this process: a ConfigClient of the label resolves `assistant(name, user_id=…)` for
100,000 users (µs per call, against `assistant(name)`), and the bucket rule
(config_client.rollout) puts 100,000 ids on the candidate at 1 %, 10 % and 50 %.
"""

import os
import re
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
    scratch,
    start_production_server,
    this_command,
    write_section,
)

from tests.live import call
from tests.throwaway_servers import free_port

LABEL = "production"
CASES = ["live hit", "label hit", "per-user hit"]
USERS = 1000
DISTRIBUTION = [1, 10, 50]
IDS = 100_000

# Every answer must be a 200 hit; a per-user run rotates the user id and counts the variants.
CHECK_SCRIPT = """
local threads = {}
local counter = 0
function setup(thread) table.insert(threads, thread) end
function init(args) hits = 0; other = 0; candidate = 0; n = 0; users = tonumber(args[1] or "0") end
function request()
  if users == 0 then return wrk.format() end
  n = n + 1
  return wrk.format(nil, wrk.path .. "&user_id=user-" .. (n % users))
end
function response(status, headers, body)
  local cache = headers["X-Config-Cache"] or headers["x-config-cache"]
  local variant = headers["X-Config-Variant"] or headers["x-config-variant"]
  if status == 200 and cache == "hit" then hits = hits + 1 else other = other + 1 end
  if variant == "candidate" then candidate = candidate + 1 end
end
function done(summary, latency, requests)
  local h, o, c = 0, 0, 0
  for _, thread in ipairs(threads) do
    h = h + thread:get("hits"); o = o + thread:get("other"); c = c + thread:get("candidate")
  end
  io.write(string.format("CHECK hits=%d other=%d candidate=%d\\n", h, o, c))
end
"""


def load_rollout() -> tuple[str, str, dict]:
    """The assistant, a read key, and the label's rollout (base: its first revision;
    candidate: the second, to 50 %)."""
    from django.db import transaction

    from assistants.models import Assistant
    from config_backend.history.labels import LabelChange, change_label
    from config_backend.history.selectors import newest_history_revision

    assistant_id = load_assistants({"bench-10": 10})["bench-10"]
    base = newest_history_revision()
    with transaction.atomic():
        assistant = Assistant.objects.get(id=assistant_id)
        assistant.instructions = "The candidate's instructions. " * 20
        assistant.save()
    rollout = {"revision": newest_history_revision(), "percent": 50, "users": []}
    label = change_label(LABEL, LabelChange("rollout", base, rollout), author="bench")
    return assistant_id, create_keys("read")["read"], label.rollout


def checked(url: str, key: str, seconds: float, connections: int, script: Path, users: int):
    """A wrk run that fails unless every answer was a 200 hit (and, per user, both variants
    were served)."""
    run = run_wrk(url, seconds=seconds, connections=connections, key=key, script=script)
    found = re.search(r"CHECK hits=(\d+) other=(\d+) candidate=(\d+)", run["output"])
    hits, other, candidate = map(int, found.groups())
    if other or not hits or run["socket_errors"]:
        raise SystemExit(f"{url}: {hits} hits, {other} other, {run['socket_errors']}")
    if users and not 0.4 < candidate / hits < 0.6:
        raise SystemExit(f"{url}: {candidate} of {hits} answers on the candidate, not about half")
    return run


def client_resolution(base_url: str, key: str, calls: int) -> dict:
    """µs per call of the client's per-user and plain lookups, over `calls` users."""
    from config_client import ConfigClient

    client = ConfigClient(base_url, key, label=LABEL, listen=False, poll_interval=3600)
    client.start()
    try:
        users = [f"user-{n}" for n in range(calls)]
        assert {client.variant(user) for user in users[:200]} == {"base", "candidate"}
        timings = {}
        for name, call_one in (
            ("assistant(name, user_id=U)", lambda u: client.assistant("bench-10", user_id=u)),
            ("variant(U)", client.variant),
            ("assistant(name)", lambda u: client.assistant("bench-10")),
        ):
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                for user in users:
                    call_one(user)
                runs.append((time.perf_counter() - started) / calls * 1e6)
            timings[name] = statistics.median(runs)
        return timings
    finally:
        client.stop()


def distribution() -> dict[int, float]:
    from config_client.rollout import bucket

    rollout_id = "bench0rollout0id"
    buckets = [bucket(LABEL, rollout_id, f"user-{n}") for n in range(IDS)]
    return {p: 100 * sum(b < p * 100 for b in buckets) / IDS for p in DISTRIBUTION}


def main() -> int:
    args = bench_arguments(__doc__.splitlines()[0], rounds=7, seconds=3.0).parse_args()
    calls = 100_000
    if args.quick:
        args.rounds, args.seconds, calls = 1, 1.0, 5_000

    with running_services():
        assistant_id, key, rollout = load_rollout()
        port = free_port()
        start_production_server(port)
        base_url = f"http://127.0.0.1:{port}"
        path = f"/api/v1/assistants/{assistant_id}/config/"
        urls = {
            "live hit": f"{base_url}{path}",
            "label hit": f"{base_url}{path}?label={LABEL}",
            "per-user hit": f"{base_url}{path}?label={LABEL}",
        }
        for case, url in urls.items():  # warm: the first answers build and store the entries
            for user in ("user-1", "user-2", "user-3", "user-4", "user-5", "user-6"):
                full = url + (f"&user_id={user}" if case == "per-user hit" else "")
                status, headers, _ = call("GET", full, key=key)
                assert status == 200, (case, status)
        scripts = {}
        for case in CASES:
            users = USERS if case == "per-user hit" else 0
            script = scratch("wrk") / f"{case.replace(' ', '-')}.lua"
            script.write_text(CHECK_SCRIPT.replace('tonumber(args[1] or "0")', str(users)))
            scripts[case] = (script, users)

        results: dict = {case: [] for case in CASES}
        started = time.monotonic()
        load_before = os.getloadavg()[0]
        for round_number in range(args.rounds):
            for case in CASES:
                script, users = scripts[case]
                run = checked(urls[case], key, args.seconds, args.connections, script, users)
                results[case].append(run)
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
        elapsed, load_after = time.monotonic() - started, os.getloadavg()[0]
        timings = client_resolution(base_url, key, calls)
        shares = distribution()

    def med(case, field="rps"):
        return statistics.median(run[field] for run in results[case])

    ratio = med("per-user hit") / med("live hit")
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores (wrk, the server, Redis "
        "and PostgreSQL share them): one assistant's cached config (10 tools) through the label "
        f"`{LABEL}` under a rollout to 50 % of users, `make serve` (Granian ASGI, 2 workers), "
        f"wrk 1 thread × {args.connections} connections, {args.seconds:g} s per case, "
        f"{args.rounds} interleaved rounds ({elapsed:.0f} s), medians over rounds; every answer "
        "checked to be a 200 hit, and the per-user run to serve both variants (about half each). "
        f"Load average (1 min) {load_before:.1f} at the start, {load_after:.1f} at the end. "
        f"Command: {this_command()}.",
        "",
        "| case | req/s (median) | min–max | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for case in CASES:
        rps = [run["rps"] for run in results[case]]
        lines.append(
            f"| {case} | {med(case):.0f} | {min(rps):.0f}–{max(rps):.0f} "
            f"| {med(case, 'p50'):.2f} | {med(case, 'p99'):.2f} |"
        )
    lines += [
        "",
        "| ratio (medians) | measured | target |",
        "|---|---:|---:|",
        f"| per-user label hit / live hit | {ratio:.2f} | ≥ 0.95 |",
        f"| label hit (no user) / live hit | {med('label hit') / med('live hit'):.2f} |  |",
        "",
        f"The client (`ConfigClient(label=…)`, in process), median of 5 passes over {calls:,} "
        "users:",
        "",
        "| call | µs per call |",
        "|---|---:|",
        *(f"| `client.{name}` | {us:.2f} |" for name, us in timings.items()),
        "",
        f"{IDS:,} user ids (`user-0` …) on the candidate, by the bucket rule:",
        "",
        "| percent | on the candidate | off by (points) | target |",
        "|---:|---:|---:|---:|",
        *(
            f"| {p} % | {share:.2f} % | {abs(share - p):.2f} | ≤ 0.5 |"
            for p, share in shares.items()
        ),
        "",
        "![rollout bench](rollout_bench.png)",
    ]
    write_section("## Rollouts: per-user reads", lines, args.output / "RESULTS.md")
    print("\n".join(lines))
    chart(results, med, shares, args.output / "rollout_bench.png")
    return 0


def chart(results, med, shares, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart")
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(CASES, [med(case) for case in CASES], color=["#777", "#49a", "#e83"])
    for index, case in enumerate(CASES):
        left.plot([index] * len(results[case]), [r["rps"] for r in results[case]], "k.", ms=4)
    left.set_ylabel("requests / second")
    left.set_title("Cached reads (make serve, 2 workers)")
    right.bar([f"{p} %" for p in shares], list(shares.values()), color="#e83", label="measured")
    right.plot([f"{p} %" for p in shares], list(shares), "k_", ms=30, label="target")
    right.set_ylabel("% of 100,000 ids on the candidate")
    right.set_title("Bucket rule")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
