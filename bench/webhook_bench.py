"""Webhooks: deliveries per second of one `run_webhooks` worker to a fast receiver, what the
outbox row adds to a config write, and the time from a change's commit to its delivery.

    .venv/bin/python bench/webhook_bench.py            # full run, writes bench/RESULTS.md
    .venv/bin/python bench/webhook_bench.py --quick    # seconds; checks that it works

Throw-away PostgreSQL and Redis; the receiver is a real HTTP server on loopback in this
process (tests/webhook_receivers.py) answering 200 at once; the worker is `manage.py
run_webhooks` in its own process with its defaults (8 endpoints at once, polling every 0.25 s
when idle). Writes are `assistant_update` calls, one transaction each, alternating with and without
a subscribed webhook so machine noise hits both alike.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, setup_django, start_services, stop_services, write_section

SECTION = "## Webhooks (bench/webhook_bench.py)"


def worker(env: dict, log: Path) -> subprocess.Popen:
    """`run_webhooks` started, once it says it is sending (its output: `log`)."""
    log.write_bytes(b"")
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_webhooks"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while b"Sending webhooks" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"run_webhooks did not start: {log.read_text()}")
        time.sleep(0.1)
    return proc


def write_cost(writes: int) -> tuple[float, float, int, int]:
    """Median ms of one config write without, then with, one subscribed webhook (alternating
    write by write, so machine noise hits both alike), and the queries of each."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from assistants.services import assistant_create, assistant_update
    from tests.factories import make_webhook
    from webhooks.models import Webhook

    assistant = assistant_create(name="Benched", model="m")
    webhook = make_webhook("http://127.0.0.1:9/unused", events=["revision"])
    timings = {False: [], True: []}
    queries = {}
    for index in range(writes * 2):
        with_webhook = bool(index % 2)
        Webhook.objects.filter(pk=webhook.pk).update(is_active=with_webhook)
        reset_queries()  # the log keeps 9,000 queries: counted from an empty one
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            assistant_update(assistant=assistant, instructions=f"write {index}")
            timings[with_webhook].append((time.perf_counter() - started) * 1000)
        queries[with_webhook] = len(captured.captured_queries)
    webhook.delete()  # with the deliveries the writes made
    return (
        statistics.median(timings[False]),
        statistics.median(timings[True]),
        queries[False],
        queries[True],
    )


def throughput(env: dict, log: Path, deliveries: int, endpoints: int) -> float:
    """Deliveries per second one worker sends, from a backlog of `deliveries`."""
    from core.models import Revision
    from tests.factories import make_webhook
    from tests.webhook_receivers import Receiver
    from webhooks.models import Delivery, Webhook

    Webhook.objects.all().delete()
    revision = Revision.objects.order_by("-number").first()
    receivers = [Receiver().__enter__() for _ in range(endpoints)]
    try:
        webhooks = [make_webhook(receiver.url, events=["revision"]) for receiver in receivers]
        proc = worker(env, log)
        Delivery.objects.bulk_create(
            Delivery(webhook=webhooks[index % endpoints], event="revision", revision=revision)
            for index in range(deliveries)
        )
        started = time.time()
        for receiver in receivers:
            receiver.wait_for_count(deliveries // endpoints, timeout=600)
        last = max(request.at for receiver in receivers for request in receiver.received)
        proc.terminate()
        proc.wait()
        return deliveries / (last - started)
    finally:
        for receiver in receivers:
            receiver.__exit__(None, None, None)


def latency(env: dict, log: Path, changes: int) -> list[float]:
    """Milliseconds from each change's commit to its delivery's arrival, changes 50 ms apart."""
    from assistants.services import assistant_create, assistant_update
    from core.models import Revision
    from tests.factories import make_webhook
    from tests.webhook_receivers import Receiver
    from webhooks.models import Webhook

    Webhook.objects.all().delete()
    assistant = assistant_create(name="Latency", model="m")
    committed = {}  # revision number -> commit time
    with Receiver() as receiver:
        make_webhook(receiver.url, events=["revision"])
        proc = worker(env, log)
        for index in range(changes):
            assistant_update(assistant=assistant, instructions=f"latency {index}")
            at = time.time()
            committed[Revision.objects.order_by("-number").first().number] = at
            time.sleep(0.05)
        receiver.wait_for_count(changes, timeout=120)
        proc.terminate()
        proc.wait()
    return [
        (request.at - committed[request.payload["data"]["revision"]]) * 1000
        for request in receiver.received
    ]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "bench")
    args = parser.parse_args()
    writes, backlog, changes = (20, 200, 20) if args.quick else (1000, 5000, 400)
    env = start_services()
    env["WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"
    try:
        setup_django(env)
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"webhook-bench-{os.getpid()}.log"
        without, with_webhook, queries_without, queries_with = write_cost(writes)
        one = throughput(env, log, backlog, endpoints=1)
        four = throughput(env, log, backlog, endpoints=4)
        delays = latency(env, log, changes)
    finally:
        stop_services()
    lines = [
        f"One worker (`run_webhooks`, defaults), a receiver on loopback answering 200 at once; "
        f"PostgreSQL; {os.cpu_count()} cores shared with the rest of the machine.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| deliveries/s, 1 endpoint ({backlog} queued) | {one:.0f} |",
        f"| deliveries/s, 4 endpoints ({backlog} queued) | {four:.0f} |",
        f"| config write, no active webhook (median of {writes}) | {without:.2f} ms, "
        f"{queries_without} queries |",
        f"| config write, one subscribed webhook (median of {writes}) | {with_webhook:.2f} ms, "
        f"{queries_with} queries |",
        f"| ratio (the outbox row's cost) | {with_webhook / without:.2f} |",
        f"| commit → delivery p50 ({changes} changes, 50 ms apart) | "
        f"{percentile(delays, 0.5):.0f} ms |",
        f"| commit → delivery p99 | {percentile(delays, 0.99):.0f} ms |",
    ]
    write_section(SECTION, lines, args.output / "RESULTS.md")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
