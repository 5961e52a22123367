"""Outcomes: POSTs per second of 1,000-row batches on the production server, what one costs in
SQL (statements, PostgreSQL tuples per row, Redis commands), and the client's cost per
record_outcome call.

    .venv/bin/python bench/outcomes_bench.py            # full run: bench/RESULTS.md + PNG
    .venv/bin/python bench/outcomes_bench.py --quick    # seconds; checks that it works

Throw-away PostgreSQL and Redis; 100 assistants; `make serve`'s server (Granian, ASGI, 2
workers) on loopback. Each batch is 1,000 distinct buckets (100 assistants × 2 variants × 5
hours), with its own Idempotency-Key; every POST must answer 201 or the run fails. Batches are
posted from 1, 2, 4 and 8 threads, in interleaved rounds so machine noise hits each alike, and
every count sent is checked to have arrived in the buckets. The client is measured in this
process: ConfigClient.record_outcome into an existing bucket, from 1 thread and from 4.
"""

import argparse
import datetime
import os
import statistics
import threading
import time
import uuid
from pathlib import Path

from common import (
    ROOT,
    create_keys,
    load_assistants,
    running_services,
    serve_command,
    start_server,
    write_section,
)

from tests.live import call
from tests.throwaway_servers import free_port

SECTION = "## Outcomes (bench/outcomes_bench.py)"
CHART = ROOT / "bench" / "outcomes_bench.png"
ASSISTANTS = 100
THREADS = (1, 2, 4, 8)
RETRIES: list[int] = []  # 503s (no database connection free within 0.5 s) retried


def batch(assistant_ids: list[str], revision: int) -> dict:
    now = datetime.datetime.now(datetime.UTC)
    return {
        "outcomes": [
            {
                "assistant": assistant_id,
                "revision": revision,
                "label": "production",
                "variant": variant,
                "period_start": (now - datetime.timedelta(hours=hours)).isoformat(),
                "runs": 3,
                "errors": 1,
                "tool_calls": 2,
                "input_tokens": 900,
                "output_tokens": 200,
                "latency_ms": 2400,
                "feedback_up": 1,
            }
            for assistant_id in assistant_ids
            for variant in ("base", "candidate")
            for hours in range(5)
        ]
    }


def post_rate(url: str, key: str, body: dict, *, threads: int, posts: int) -> float:
    """POSTs per second of `posts` batches from `threads` threads at once."""
    barrier = threading.Barrier(threads + 1)
    failures = []

    def worker(count):
        barrier.wait()
        for _ in range(count):
            headers = {"Idempotency-Key": str(uuid.uuid4())}
            for _ in range(5):  # as the client does: a 503 is retried with the same key
                status, _, answer = call(
                    "POST", url, key=key, body=body, headers=headers, timeout=60
                )
                if status != 503:
                    break
                RETRIES.append(1)
            if status != 201:
                failures.append((status, answer[:200]))

    shares = [posts // threads + (index < posts % threads) for index in range(threads)]
    workers = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for thread in workers:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} POSTs failed, first: {failures[0]}")
    return posts / elapsed


def sql_cost(body: dict, env: dict) -> dict:
    """One batch through the service in this process: SQL statements, PostgreSQL tuples
    written per row, Redis commands."""
    import redis
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from outcomes.services import outcomes_add

    def tuples() -> int:
        time.sleep(1.2)  # PostgreSQL publishes a backend's counts within a second
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")
            cursor.execute(
                "SELECT tup_inserted + tup_updated FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
            return cursor.fetchone()[0]

    cache = redis.Redis.from_url(env["REDIS_URL"])
    commands_before = cache.info("stats")["total_commands_processed"]
    before = tuples()
    with CaptureQueriesContext(connection) as queries:
        outcomes_add(body=body, idempotency_key=str(uuid.uuid4()))
    written = tuples() - before
    # The second INFO is counted, the first is not (a command counts once it has run).
    commands = cache.info("stats")["total_commands_processed"] - commands_before - 1
    return {
        "statements": len(queries.captured_queries),
        "upserts": sum("ON CONFLICT" in q["sql"] for q in queries.captured_queries),
        "tuples_per_row": written / len(body["outcomes"]),
        "redis_commands": commands,
    }


def client_cost(base_url: str, key: str, calls: int) -> dict:
    """µs per ConfigClient.record_outcome into an existing bucket, 1 thread and 4 at once."""
    from config_client import ConfigClient

    client = ConfigClient(base_url, key, listen=False).start()
    name = client.bundle["assistants"][0]["name"]
    client.outcomes.flush_interval = 0.5
    client.record_outcome(name, runs=1)
    results = {}
    try:
        for threads in (1, 4):
            barrier = threading.Barrier(threads + 1)

            def worker(barrier=barrier):
                barrier.wait()
                for _ in range(calls):
                    client.record_outcome(
                        name, runs=1, errors=0, input_tokens=500, output_tokens=80, latency_ms=900
                    )

            workers = [threading.Thread(target=worker) for _ in range(threads)]
            for thread in workers:
                thread.start()
            barrier.wait()
            started = time.perf_counter()
            for thread in workers:
                thread.join()
            results[threads] = (time.perf_counter() - started) / (calls * threads) * 1e6
    finally:
        client.stop()
    # The machine's speed at that moment: a bare locked increment, the floor of any record.
    lock, counter = threading.Lock(), [0]
    started = time.perf_counter()
    for _ in range(calls):
        with lock:
            counter[0] += 1
    results["floor"] = (time.perf_counter() - started) / calls * 1e6
    results["dropped"] = client.outcomes_dropped
    results["sent"] = client.outcomes.sent
    return results


def chart(rates: dict[int, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.6))
    medians = [statistics.median(rates[t]) for t in THREADS]
    axes.bar([str(t) for t in THREADS], medians, color="#417690")
    for index, value in enumerate(medians):
        axes.text(index, value, f"{value:.1f}", ha="center", va="bottom")
    axes.set_xlabel("threads posting at once")
    axes.set_ylabel("POSTs/s (1,000 rows each)")
    axes.set_title("POST /api/v1/outcomes/ on `make serve` (2 workers, 2 cores)")
    figure.tight_layout()
    figure.savefig(CHART, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--posts", type=int, default=40, help="per round and thread count")
    parser.add_argument("--output", type=Path, default=ROOT / "bench")
    args = parser.parse_args()
    rounds, posts, calls = (1, 4, 20_000) if args.quick else (args.rounds, args.posts, 200_000)
    load_before = os.getloadavg()[0]
    with running_services() as env:
        from core.models import Revision
        from outcomes.models import OutcomeBucket

        ids = list(load_assistants({f"Assistant {i}": 0 for i in range(ASSISTANTS)}).values())
        revision = Revision.objects.order_by("-number").first().number
        keys = create_keys("runtime")
        body = batch([str(i) for i in ids], revision)
        cost = sql_cost(body, env)
        port = free_port()
        start_server(serve_command(port), port, env)
        base_url = f"http://127.0.0.1:{port}"
        url = f"{base_url}/api/v1/outcomes/"
        post_rate(url, keys["runtime"], body, threads=8, posts=16)  # warm both workers' pools
        RETRIES.clear()
        rates: dict[int, list[float]] = {threads: [] for threads in THREADS}
        for _ in range(rounds):
            for threads in THREADS:
                rates[threads].append(
                    post_rate(url, keys["runtime"], body, threads=threads, posts=posts)
                )
        batches = 1 + 16 + rounds * posts * len(THREADS)
        runs = sum(OutcomeBucket.objects.values_list("runs", flat=True))
        if runs != batches * 3 * len(body["outcomes"]):
            raise RuntimeError(f"runs in the buckets: {runs}, sent: {batches * 3000}")
        client = client_cost(base_url, keys["runtime"], calls)
    load_after = os.getloadavg()[0]
    chart(rates)
    best = max(THREADS, key=lambda t: statistics.median(rates[t]))
    lines = [
        f"`make serve` (Granian, ASGI, 2 workers) on loopback, PostgreSQL 15, Redis; "
        f"{ASSISTANTS} assistants; each POST 1,000 rows in 1,000 distinct hourly buckets; median "
        f"of {rounds} interleaved rounds of {posts} POSTs; 2 cores shared with the client "
        f"threads; load average {load_before:.1f} before the run, {load_after:.1f} after (other "
        "work shared the machine: absolute figures are low, compare within the run). "
        f"Every count sent was found in the buckets ({batches} batches). "
        f"{len(RETRIES)} POSTs answered 503 (no pooled connection within "
        "DATABASE_POOL_TIMEOUT_MS) and were retried with their key, as the client does.",
        "",
        "| threads posting | POSTs/s | rows/s |",
        "|---|---|---|",
        *(
            f"| {t} | {statistics.median(rates[t]):.1f} | "
            f"{statistics.median(rates[t]) * 1000:,.0f} |"
            for t in THREADS
        ),
        "",
        "| one 1,000-row POST | value |",
        "|---|---|",
        f"| SQL statements (all) | {cost['statements']} |",
        f"| of which upserts (the Idempotency-Key, the buckets) | {cost['upserts']} |",
        f"| PostgreSQL tuples written per row | {cost['tuples_per_row']:.2f} |",
        f"| Redis commands | {cost['redis_commands']} |",
        "",
        "| client | value |",
        "|---|---|",
        f"| `record_outcome` into an existing bucket, 1 thread | {client[1]:.2f} µs/call |",
        f"| the same, 4 threads at once (one lock) | {client[4]:.2f} µs/call |",
        f"| (the machine's floor then: a bare locked increment) | {client['floor']:.2f} µs |",
        f"| records sent / dropped | {client['sent']:,} / {client['dropped']} |",
        "",
        f"Best: {statistics.median(rates[best]):.1f} POSTs/s at {best} threads. "
        "![outcomes](outcomes_bench.png)",
    ]
    write_section(SECTION, lines, args.output / "RESULTS.md")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
