"""Push (GET /api/v1/config/events/): what idle subscribers cost the read path, and how soon an
event follows its commit.

    .venv/bin/python bench/sse_idle_bench.py            # full run, writes bench/RESULTS.md + PNG
    .venv/bin/python bench/sse_idle_bench.py --quick    # seconds; checks that it works

Starts its own PostgreSQL and Redis (or uses DATABASE_URL / REDIS_URL) and the production server
(`python -m config_backend.serve`: Granian, ASGI, 2 workers). Then:
- Read path: wrk on a cache hit (GET /api/v1/assistants/{id}/config/ with a key) with no
  subscriber, and with STREAMS (1,000) real subscriptions held open by a second process (each
  with its key, each past its `hello`), in rounds that alternate the order (ABBA), so machine
  noise hits both alike; the table reports the median over rounds and the ratio.
- Latency: one more subscriber (while the STREAMS are held), and CHANGES config changes made
  one after another through the API (PATCH); for each, the time from the PATCH's answer (the
  change has committed) to the `revision` event's arrival. Median and max.
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import (
    bench_arguments,
    create_keys,
    edit_instructions,
    load_assistants,
    run_wrk,
    running_services,
    start_production_server,
    write_section,
)
from stream_holder import hold_streams, release_streams

from tests.sse import EVENTS_PATH, EventStream
from tests.throwaway_servers import free_port

PY = sys.executable
HEADING = "## Push: idle subscribers and event latency"
SETTLE_SECONDS = 3.0


def load_config() -> tuple[str, str, str]:
    """One assistant with ten tools; returns its id, a read key and a write key."""
    keys = create_keys("read", "write")
    return load_assistants({"bench": 10})["bench"], keys["read"], keys["write"]


def cpu_ticks(pids: list[int]) -> int:
    """User + system CPU time of these processes so far, in clock ticks (/proc)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def wrk(url: str, key: str, seconds: float, connections: int, server: list[int]) -> dict:
    """req/s, and the server's CPU time per request (µs): the second does not depend on how
    much of the shared machine the server got meanwhile."""
    before = cpu_ticks(server)
    run = run_wrk(url, seconds=seconds, connections=connections, key=key)
    used = cpu_ticks(server) - before
    if run["errors"]:
        raise SystemExit(f"wrk saw errors:\n{run['output']}")
    if not run["requests"]:
        raise SystemExit(f"wrk completed no request:\n{run['output']}")
    return {
        "rps": run["rps"],
        "cpu_us": used / os.sysconf("SC_CLK_TCK") * 1e6 / run["requests"],
    }


# --- idle subscribers (a separate process, so that holding them costs this one nothing) -----


def hold_subscribers(port: int, key: str, count: int) -> subprocess.Popen:
    """`count` real subscriptions (key checked, each past its `hello`), left to settle: the
    cost measured is of idle subscribers, not of opening them."""
    holder = hold_streams(port, EVENTS_PATH, key, count, first=b"event: hello")
    time.sleep(SETTLE_SECONDS)
    return holder


# --- latency --------------------------------------------------------------------------------


def event_latencies(base_url: str, assistant_id: str, read: str, write: str, changes: int):
    """For each change, seconds from sending its PATCH to its `revision` event (an upper bound
    of commit → event: it includes the request's own work), and from the PATCH's answer (0 when
    the event came first: the answer leaves after the commit, as the event does)."""
    from_sent, from_answer = [], []
    with EventStream(base_url, read) as stream:
        stream.next_named("hello")
        for i in range(changes):
            sent = time.monotonic()
            edit_instructions(base_url, assistant_id, write, f"Change {i}.")
            answered = time.monotonic()
            event = stream.next_named("revision", timeout=10)
            assert event.json["assistants"] == [assistant_id], event.data
            from_sent.append(event.arrived - sent)
            from_answer.append(max(0.0, event.arrived - answered))
            time.sleep(0.05)
    return from_sent, from_answer


# --- results --------------------------------------------------------------------------------


def chart(without: list[float], held: list[float], streams: int, output: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(5, 4))
    labels = ["no subscriber", f"{streams:,} idle\nsubscribers"]
    ax.bar(labels, [statistics.median(without), statistics.median(held)], color="tab:blue")
    for x, runs in enumerate((without, held)):
        ax.plot([x] * len(runs), runs, "k.", alpha=0.6)
    ax.set_ylabel("cache-hit requests / second")
    ax.set_title("Read path with idle event streams\n(Granian ASGI, 2 workers; dots: rounds)")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    return True


def main() -> None:
    parser = bench_arguments(__doc__.splitlines()[0], rounds=6, seconds=6.0)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.streams, args.changes = 2, 1.0, 50, 5

    load_before = os.getloadavg()[0]
    with running_services():
        assistant_id, read, write = load_config()
        port = free_port()
        granian = start_production_server(port)
        base_url = f"http://127.0.0.1:{port}"
        url = f"{base_url}/api/v1/assistants/{assistant_id}/config/"
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(granian.pid)], capture_output=True, text=True
        ).stdout.split()
        server = [granian.pid, *map(int, children)]  # Granian and its workers

        def measure(seconds=args.seconds):
            return wrk(url, read, seconds, args.connections, server)

        measure(3)  # warm up: both workers, the cache entry
        without, held = [], []

        def measure_with_streams():
            holder = hold_subscribers(port, read, args.streams)
            try:
                held.append(measure())
            finally:
                release_streams(holder, SETTLE_SECONDS)

        for round_number in range(args.rounds):
            steps = [lambda: without.append(measure()), measure_with_streams]
            for step in steps if round_number % 2 == 0 else reversed(steps):
                step()
            print(
                f"round {round_number + 1}: {without[-1]['rps']:.0f} vs {held[-1]['rps']:.0f} "
                f"req/s, {without[-1]['cpu_us']:.0f} vs {held[-1]['cpu_us']:.0f} µs CPU/request"
            )

        holder = hold_subscribers(port, read, args.streams)
        try:
            from_sent, from_answer = event_latencies(
                base_url, assistant_id, read, write, args.changes
            )
        finally:
            release_streams(holder, SETTLE_SECONDS)

    load_after = os.getloadavg()[0]

    def median(runs, field):
        return statistics.median(run[field] for run in runs)

    def listed(runs, field):
        return ", ".join(f"{run[field]:.0f}" for run in runs)

    ratio = median(held, "rps") / median(without, "rps")
    cpu_ratio = median(held, "cpu_us") / median(without, "cpu_us")
    sent_ms = [delay * 1000 for delay in from_sent]
    answer_ms = [delay * 1000 for delay in from_answer]
    quoted = "bench/sse_idle_bench.py" + (" --quick" if args.quick else "")
    png = args.output / "sse_idle_bench.png"
    lines = [
        f"`.venv/bin/python {quoted}` (loopback, 2 cores shared with other work; production "
        "server `python -m config_backend.serve`: Granian ASGI, 2 workers; PostgreSQL + Redis; "
        f"wrk {args.connections} connections, {args.seconds:.0f} s per run, {args.rounds} rounds "
        f"alternating the order; {SETTLE_SECONDS:.0f} s pause after the subscribers open or "
        f"close; machine load average {load_before:.1f} at the start, {load_after:.1f} at the "
        "end).",
        "",
        "| cache hits (GET /api/v1/assistants/{id}/config/) | req/s, median (rounds) | "
        "server CPU µs per request, median (rounds) |",
        "|---|---:|---:|",
        f"| no subscriber | {median(without, 'rps'):.0f} ({listed(without, 'rps')}) | "
        f"{median(without, 'cpu_us'):.0f} ({listed(without, 'cpu_us')}) |",
        f"| {args.streams:,} idle subscribers | {median(held, 'rps'):.0f} "
        f"({listed(held, 'rps')}) | {median(held, 'cpu_us'):.0f} ({listed(held, 'cpu_us')}) |",
        "",
        f"With {args.streams:,} idle subscribers the read path keeps **{ratio:.2f}×** its "
        f"throughput (target ≥ 0.90×), at **{cpu_ratio:.2f}×** the server CPU time per "
        "request (the Granian process and its workers, from /proc: unlike req/s, it does not "
        "depend on how much of the shared machine the server got during the run). Each "
        "subscriber is a real subscription (key checked, past its `hello`) held by a separate "
        "process.",
        "",
        f"Commit → event ({args.changes} changes made one by one with PATCH through the API, "
        f"{args.streams:,} other subscribers held; the subscriber on the same server, whose "
        "hub is woken by the commit's Redis message): from sending the PATCH to the "
        f"`revision` event's arrival (an upper bound: it includes the PATCH's own work) "
        f"median **{statistics.median(sent_ms):.1f} ms**, max **{max(sent_ms):.1f} ms**; "
        f"from the PATCH's answer median {statistics.median(answer_ms):.1f} ms, max "
        f"{max(answer_ms):.1f} ms (0: the event arrived before the answer, which leaves after "
        "the commit as the event does).",
    ]
    if chart([r["rps"] for r in without], [r["rps"] for r in held], args.streams, png):
        lines += ["", f"![idle subscribers]({png.name})"]
    write_section(HEADING, lines, args.output / "RESULTS.md")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
