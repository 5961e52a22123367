"""Concurrent misses after an edit: builds per edit and latency, without and with the build lock.

    .venv/bin/python bench/miss_bench.py            # 10 edits × 32 concurrent readers
    .venv/bin/python bench/miss_bench.py --quick    # seconds; checks that it works

Starts its own PostgreSQL and Redis (or uses DATABASE_URL / REDIS_URL), loads one assistant with
`--tools` tools, and two app servers on them, gunicorn gthread (2 workers × 16 threads, so
that every reader's request is in flight at once): `before` with CONFIG_BUILD_WAIT_MS=0 (no
build lock: every miss builds, as before misses were built once) and `after` with the default.
For each edit (a PATCH of the assistant's instructions through the server), `--readers`
threads GET the assistant's config from that server at the same moment; each answer with
`X-Config-Cache: miss` built the entry. Reports builds per edit and the latency of those first
reads, and checks that every answer holds the edit. Loopback only; bounded in time.
"""

import argparse
import json
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path

import common
from common import ROOT, setup_django, start_gunicorn, start_services, stop, stop_services

from tests.live import call
from tests.throwaway_servers import free_port

SERVERS = {"before": {"CONFIG_BUILD_WAIT_MS": "0"}, "after": {}}
GTHREAD = "--worker-class gthread --threads 16"


def load_config(tools: int) -> tuple[str, str, str]:
    """One assistant linked to `tools` tools; returns its id, a read key and a write key."""
    from django.db import transaction

    from assistants.models import Assistant
    from config_backend.transfer.changes import record_state_changes
    from config_backend.transfer.state import load_state
    from core.models import APIKey
    from tools.models import AssistantToolLink, Tool

    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    }
    with transaction.atomic():
        before = load_state(include_threads=False)
        assistant = Assistant.objects.create(
            name="bench", model="gpt-4o-mini", instructions="You help. " * 20
        )
        created = Tool.objects.bulk_create(
            Tool(
                name=f"tool_{i}",
                tool_type="weather",
                description=f"Tool {i} of {tools}.",
                input_schema=schema,
            )
            for i in range(tools)
        )
        AssistantToolLink.objects.bulk_create(
            AssistantToolLink(assistant=assistant, tool=tool) for tool in created
        )
        # As an import records its bulk writes: one revision of the history, the mirrors raised.
        record_state_changes(before, load_state(include_threads=False))
    _, read = APIKey.objects.create_key(name="bench-read", scope="read")
    _, write = APIKey.objects.create_key(name="bench-write", scope="write")
    return str(assistant.id), read, write


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
        status, _, _ = call(
            "PATCH",
            f"{base}/api/v1/assistants/{assistant_id}/",
            key=write,
            body={"instructions": instructions},
        )
        assert status == 200, status
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
    lines = [
        "## Misses",
        "",
        meta,
        "",
        "| server | builds per edit: median | mean | max | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
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
    text = "\n".join(lines) + "\n"
    results_file = output / "RESULTS.md"
    previous = results_file.read_text() if results_file.exists() else "# Benchmark results\n"
    if "\n## Misses\n" in previous:  # replace only this section
        previous = re.sub(r"\n## Misses\n.*?(?=\n## |\Z)", "", previous, flags=re.S)
    results_file.write_text(previous.rstrip() + "\n\n" + text)
    print(text)


def command_options(argv: list[str]) -> str:
    """The options this run was given, less where it wrote (for the results' command line)."""
    kept = []
    for index, arg in enumerate(argv):
        if arg == "--output" or arg.startswith("--output=") or argv[index - 1] == "--output":
            continue
        kept.append(arg)
    return "".join(f" {arg}" for arg in kept)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run that checks it works")
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--readers", type=int, default=32)
    parser.add_argument("--tools", type=int, default=200)
    parser.add_argument("--output", type=Path, default=ROOT / "bench")
    args = parser.parse_args()
    if args.quick:
        args.edits, args.readers, args.tools = 2, 8, 20

    servers = []
    try:
        setup_django(start_services())
        assistant_id, read, write = load_config(args.tools)
        ports = {name: free_port() for name in SERVERS}
        bases = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for name, env in SERVERS.items():
            servers.append(
                start_gunicorn(
                    "config_backend.wsgi", ports[name], {**env, "GUNICORN_CMD_ARGS": GTHREAD}
                )
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
            "answer held the edit. Command: "
            f"`.venv/bin/python bench/miss_bench.py{command_options(sys.argv[1:])}`."
        )
        args.output.mkdir(parents=True, exist_ok=True)
        write_results(rows, args.output, meta, server_notes(ports))
    finally:
        stop(servers)
        stop_services()
    return 0


if __name__ == "__main__":
    sys.exit(main())
