"""Push at scale (GET /api/v1/config/events/): cache-hit throughput, threads and memory of the
production server with 0 to 10,000 idle subscribers, and how soon every one of 10,000
subscribers gets a change's `revision` event.

    .venv/bin/python bench/sse_scale_bench.py            # full run, writes bench/RESULTS.md + PNG
    .venv/bin/python bench/sse_scale_bench.py --quick    # a minute; checks that it works

Starts its own PostgreSQL and Redis (or uses DATABASE_URL / REDIS_URL) and the production server
(`python -m config_backend.serve`: Granian, ASGI, 2 workers, its open-files limit raised to the
hard limit). Needs a hard limit of open files above the largest count (`ulimit -Hn`): the server
and the holder each hold a socket per subscriber.
- Read path: for each subscriber count (SUBSCRIBERS), in rounds that alternate the order, a
  second process (bench/stream_holder.py) opens that many real subscriptions (one key, each
  past its `hello`), then wrk measures a cache hit (GET /api/v1/assistants/{id}/config/ with a
  key) while they are held; then they are released. Per count: req/s (median over rounds), the
  subscriptions connected, the threads of the server's processes, and their resident memory
  (VmRSS, summed) minus that with no subscriber, per subscriber.
- Latency: with the largest count held by a holder that reads every stream, CHANGES config
  changes made one after another through the API (PATCH); for each change and each subscriber,
  the time from the commit's announcement on Redis (published right after the commit; it is
  what wakes the hubs), from sending the PATCH (an upper bound of the commit) and from its
  answer (after the commit) to the `revision` event's arrival on that stream. p50, p99, max.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import (
    ROOT,
    serve_command,
    setup_django,
    start_server,
    start_services,
    stop,
    stop_services,
    write_section,
)
from sse_idle_bench import load_config, wrk
from stream_holder import hold_streams, release_streams

from config_backend.serve import raise_open_files_limit
from tests.live import call, descendants, thread_count
from tests.sse import EVENTS_PATH
from tests.throwaway_servers import free_port

HEADING = "## Push at scale: ten thousand subscribers"
SUBSCRIBERS = (0, 1000, 5000, 10000)
SETTLE_SECONDS = 3.0


def resident_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure_held(port, read, count, measure, server_pids) -> dict:
    """Hold `count` subscribers (none: 0), then measure reads, threads and memory."""
    holder = None
    if count:
        holder = hold_streams(port, EVENTS_PATH, read, count, first=b"event: hello")
    try:
        time.sleep(SETTLE_SECONDS)
        result = {
            "connected": holder.connected if holder else 0,
            "threads": sum(thread_count(pid) for pid in server_pids),
            "rss": resident_bytes(server_pids),
        }
        result.update(measure())
        return result
    finally:
        if holder is not None:
            release_streams(holder, SETTLE_SECONDS)


def latencies(port, base_url, assistant_id, read, write, count, changes) -> dict:
    """Seconds from each change (its PATCH sent; its commit announced; its PATCH answered) to
    its `revision` event on each of `count` streams."""
    import redis
    from django.conf import settings

    from core import store

    record = Path(tempfile.mkdtemp(prefix="sse-scale-")) / "arrivals.json"
    holder = hold_streams(port, EVENTS_PATH, read, count, first=b"event: hello", record=str(record))
    sent_at, announced_at, answered_at = {}, {}, {}

    def announced(message) -> None:
        if message["data"].isdigit():
            announced_at.setdefault(int(message["data"]), time.monotonic())

    pubsub = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"]).pubsub()
    pubsub.subscribe(**{store.CHANGES_CHANNEL: announced})
    listener = pubsub.run_in_thread(sleep_time=0.001, daemon=True)
    try:
        time.sleep(SETTLE_SECONDS)
        for i in range(changes):
            sent = time.monotonic()
            status, _, body = call(
                "PATCH",
                f"{base_url}/api/v1/assistants/{assistant_id}/",
                key=write,
                body={"instructions": f"Change {i} for {count} subscribers."},
            )
            assert status == 200, body
            answered = time.monotonic()
            # The assistant's config revision: the number of the change that last touched it.
            _, headers, _ = call(
                "GET", f"{base_url}/api/v1/assistants/{assistant_id}/config/", key=read
            )
            revision = int(headers["X-Config-Revision"])
            sent_at[revision], answered_at[revision] = sent, answered
            time.sleep(1.0)  # let every subscriber get it before the next
        time.sleep(2.0)
    finally:
        listener.stop()
        release_streams(holder, SETTLE_SECONDS)
    arrivals = {int(revision): times for revision, times in json.loads(record.read_text()).items()}
    result = {"from_sent": [], "from_announced": [], "from_answer": [], "missing": 0}
    for revision, sent in sent_at.items():
        times = arrivals.get(revision, [])
        result["missing"] += count - len(times)
        result["from_sent"] += [arrived - sent for arrived in times]
        announced_time = announced_at.get(revision, sent)
        result["from_announced"] += [max(0.0, arrived - announced_time) for arrived in times]
        result["from_answer"] += [max(0.0, arrived - answered_at[revision]) for arrived in times]
    return result


def chart(counts, rounds_rps, output: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    medians = [statistics.median(rounds_rps[count]) for count in counts]
    ax.plot(counts, medians, "o-", color="tab:blue", label="median")
    for count in counts:
        ax.plot([count] * len(rounds_rps[count]), rounds_rps[count], "k.", alpha=0.5)
    ax.axhline(0.9 * medians[0], color="tab:red", linestyle="--", label="0.9 × no subscriber")
    ax.set_xlabel("idle subscribers held (one instance, 2 workers)")
    ax.set_ylabel("cache-hit requests / second")
    ax.set_ylim(bottom=0)
    ax.set_title("Read throughput vs idle event streams\n(Granian ASGI; dots: rounds)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run that checks it works")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument(
        "--counts", help="subscriber counts, comma-separated (default: 0,1000,5000,10000)"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench", help="RESULTS.md's folder")
    args = parser.parse_args()
    counts = list(SUBSCRIBERS)
    if args.quick:
        counts, args.rounds, args.seconds, args.changes = [0, 200, 1000], 1, 2.0, 3
    if args.counts:
        counts = [int(count) for count in args.counts.split(",")]
    limit = raise_open_files_limit()  # this process's, inherited by the holders
    if limit < max(counts) + 100:
        raise SystemExit(f"open-files limit {limit} is below {max(counts)} subscribers")

    load_before = os.getloadavg()[0]
    env = start_services()
    servers = []
    try:
        setup_django(env)
        assistant_id, read, write = load_config()
        port = free_port()
        servers.append(start_server(serve_command(port), port, env))
        base_url = f"http://127.0.0.1:{port}"
        url = f"{base_url}/api/v1/assistants/{assistant_id}/config/"
        server_pids = descendants(servers[0].pid)

        def measure(seconds=args.seconds):
            return wrk(url, read, seconds, args.connections, server_pids)

        measure(3)  # warm up: both workers, the cache entry, the key record
        runs = {count: [] for count in counts}
        progress = Path(tempfile.mkdtemp(prefix="sse-scale-")) / "runs.json"
        print(f"measurements so far: {progress}", flush=True)
        for round_number in range(args.rounds):
            order = counts if round_number % 2 == 0 else list(reversed(counts))
            for count in order:
                runs[count].append(measure_held(port, read, count, measure, server_pids))
                progress.write_text(json.dumps(runs))  # kept should a later step fail
                last = runs[count][-1]
                print(
                    f"round {round_number + 1}: {count:>6} subscribers: {last['rps']:.0f} req/s, "
                    f"{last['threads']} threads, {last['rss'] / 2**20:.0f} MiB",
                    flush=True,
                )
        latency = latencies(port, base_url, assistant_id, read, write, max(counts), args.changes)
    finally:
        stop(servers)
        stop_services()
    load_after = os.getloadavg()[0]

    idle_rps = statistics.median(run["rps"] for run in runs[0])
    idle_cpu = statistics.median(run["cpu_us"] for run in runs[0])
    fresh_rss = runs[0][0]["rss"]  # round 1 runs 0 first, on a fresh server
    rows = []
    for count in counts:
        rps = statistics.median(run["rps"] for run in runs[count])
        cpu = statistics.median(run["cpu_us"] for run in runs[count])
        first_rss = runs[count][0]["rss"]  # round 1: held on a server that held fewer before
        per = f"{(first_rss - fresh_rss) / count / 1024:.1f}" if count else "–"
        listed = ", ".join(f"{run['rps']:.0f}" for run in runs[count])
        rows.append(
            f"| {count:,} | {min(run['connected'] for run in runs[count]):,} | {rps:.0f} "
            f"({listed}) | **{rps / idle_rps:.2f}** | {cpu:.0f} ({cpu / idle_cpu:.2f}×) | "
            f"{max(run['threads'] for run in runs[count])} | {first_rss / 2**20:.0f} | {per} |"
        )
    sent_ms = [s * 1000 for s in latency["from_sent"]]
    announced_ms = [s * 1000 for s in latency["from_announced"]]
    answer_ms = [s * 1000 for s in latency["from_answer"]]
    quoted = "bench/sse_scale_bench.py" + (" --quick" if args.quick else "")
    png = args.output / "sse_scale_bench.png"
    biggest = max(counts)
    lines = [
        f"`.venv/bin/python {quoted}` (loopback, 2 cores shared with other work; production "
        "server `python -m config_backend.serve`: Granian ASGI, 2 workers; PostgreSQL + Redis on "
        f"the same machine; subscribers held by bench/stream_holder.py in a second process; wrk "
        f"{args.connections} connections, {args.seconds:.0f} s per run, {args.rounds} rounds "
        f"alternating the order; {SETTLE_SECONDS:.0f} s pause after the subscribers open or "
        f"close; machine load average {load_before:.1f} at the start, {load_after:.1f} at the "
        "end).",
        "",
        "| idle subscribers | connected | cache-hit req/s, median (rounds) | vs none | "
        "server CPU µs per hit, median (vs none) | threads (server + workers), most seen | "
        "resident MiB (server + workers), round 1 | KiB per subscriber |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Resident memory is the sum of VmRSS over the server's processes in round 1, which "
        "opens the counts in increasing order on a fresh server; per subscriber: its growth "
        "over the fresh server's with none, divided by the count. The server CPU time per hit "
        "(from /proc, the Granian process and its workers) does not depend on how much of the "
        "shared machine the server got during a run, unlike req/s.",
        "",
        f"Commit → `revision` event on **every one of {biggest:,} subscribers** "
        f"({args.changes} changes made one by one with PATCH through the API, 1 s apart; the "
        "holder reads every stream, on the same 2 cores): from the commit's announcement (the "
        "Redis message published right after the commit, which wakes every hub; seen by this "
        f"script) p50 **{percentile(announced_ms, 0.5):.0f} ms**, p99 "
        f"**{percentile(announced_ms, 0.99):.0f} ms**, max {max(announced_ms):.0f} ms; from "
        "sending the PATCH (an upper bound: it includes the PATCH's own work) p50 "
        f"{percentile(sent_ms, 0.5):.0f} ms, p99 {percentile(sent_ms, 0.99):.0f} ms, max "
        f"{max(sent_ms):.0f} ms; from the PATCH's answer (after the commit) p50 "
        f"{percentile(answer_ms, 0.5):.0f} ms, p99 {percentile(answer_ms, 0.99):.0f} ms; "
        f"events not received: {latency['missing']}.",
    ]
    if chart(counts, {count: [run["rps"] for run in runs[count]] for count in counts}, png):
        lines += ["", f"![throughput vs subscribers]({png.name})"]
    write_section(HEADING, lines, args.output / "RESULTS.md")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
