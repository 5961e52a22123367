"""Reads at scale while staff edit: 200 assistants, 2,000 tools (10 links each), readers spread
over every assistant's config, with and without one unrelated assistant edited twice a second.

    .venv/bin/python bench/edit_bench.py            # full run, writes bench/RESULTS.md + PNG
    .venv/bin/python bench/edit_bench.py --quick    # seconds; checks that it works

Also reports how many assistants' ETags one edit changes, and, for 1,000 assistants, the Redis
dataset's memory and one worker's resident memory once every config is cached, and the queries
of a miss at 1 and at 100 tools. The production server (`make serve`: config_backend.serve) with
2 workers; wrk drives the reads, rounds interleaved so machine noise hits both cases alike.
Loopback only; every run is bounded in time.
"""

import argparse
import json
import os
import statistics
import subprocess
import threading
from pathlib import Path

from common import (
    ROOT,
    create_keys,
    edit_instructions,
    load_assistants,
    run_wrk,
    running_services,
    scratch,
    start_production_server,
    stop,
    write_section,
)

from tests.live import call
from tests.throwaway_servers import free_port

RESULTS = ROOT / "bench" / "RESULTS.md"
CHART = ROOT / "bench" / "edit_bench.png"
SECTION = "## Reads while staff edit (bench/edit_bench.py)"


def load(assistants: int, tools_each: int, first: int = 0) -> tuple[list[str], str, str]:
    """`assistants` assistants, each linked to its own `tools_each` tools; returns their ids,
    a read and a write key."""
    names = [f"assistant-{i:04d}" for i in range(first, first + assistants)]
    ids = load_assistants(dict.fromkeys(names, tools_each), instructions="Help. " * 40)
    keys = create_keys("read", "write")
    return [ids[name] for name in names], keys["read"], keys["write"]


def start_quiet_server(port: int) -> subprocess.Popen:
    """`make serve`'s server on 127.0.0.1:port, logging warnings only, metrics off."""
    return start_production_server(port, {"LOG_LEVEL": "WARNING", "METRICS_ENABLED": "0"})


WRK_SCRIPT = """
local ids = {%s}
local i = 0
request = function()
  i = (i %% #ids) + 1
  return wrk.format("GET", "/api/v1/assistants/" .. ids[i] .. "/config/")
end
"""


def spread_wrk(base: str, key: str, ids: list[str], seconds: int, workdir: Path) -> float:
    """req/s of reads spread over the configs of `ids` (2 wrk threads, 16 connections)."""
    script = workdir / "spread.lua"
    script.write_text(WRK_SCRIPT % ", ".join(f'"{pk}"' for pk in ids))
    run = run_wrk(base, seconds=seconds, threads=2, key=key, script=script)
    if run["errors"] or run["socket_errors"]:
        raise RuntimeError(f"wrk saw errors:\n{run['output']}")
    return run["rps"]


def edit_twice_a_second(base: str, key: str, assistant_id: str, stop_flag: threading.Event):
    count = 0
    while not stop_flag.wait(0.5):
        count += 1
        edit_instructions(base, assistant_id, key, f"Edit {count}.")
    return count


def edit_in_background(base, key, assistant_id, stop_flag, counter: dict) -> None:
    counter["n"] = edit_twice_a_second(base, key, assistant_id, stop_flag)


def etags(base: str, key: str, ids: list[str]) -> dict:
    return {
        pk: call("GET", f"{base}/api/v1/assistants/{pk}/config/", key=key)[1]["ETag"] for pk in ids
    }


def memory_at_scale(base: str, key: str, ids: list[str], pid: int) -> dict:
    """Every config cached; Redis dataset bytes and the workers' resident memory."""
    import redis

    for pk in ids:
        call("GET", f"{base}/api/v1/assistants/{pk}/config/", key=key)
    info = redis.Redis.from_url(os.environ["REDIS_URL"]).info("memory")
    children = subprocess.run(
        ["ps", "-o", "rss=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout.split()
    return {
        "redis_dataset_bytes": info["used_memory_dataset"],
        "worker_rss_kib": max(int(rss) for rss in children) if children else None,
    }


def miss_queries(tools: int) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from assistants.models import Assistant
    from assistants.selectors import assistant_config_build, assistant_for_config

    assistant = Assistant.objects.filter(name__startswith="assistant-").first()
    with CaptureQueriesContext(connection) as queries:
        assistant_config_build(
            assistant=assistant_for_config(assistant_id=assistant.id), revision=1
        )
    return len(queries)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds, rounds = (2, 1) if args.quick else (8, 3)
    with running_services():
        workdir = scratch("wrk")
        ids, read, write = load(20 if args.quick else 200, 10)
        port = free_port()
        proc = start_quiet_server(port)
        base = f"http://127.0.0.1:{port}"
        results = {"quiet": [], "editing": [], "edits": 0}
        spread_wrk(base, read, ids, 2, workdir)  # warm every entry
        edited = ids[-1]
        readers = ids[:-1]
        for _ in range(rounds):
            results["quiet"].append(spread_wrk(base, read, readers, seconds, workdir))
            stop_flag = threading.Event()
            counter = {}
            editor = threading.Thread(
                target=edit_in_background, args=(base, write, edited, stop_flag, counter)
            )
            editor.start()
            try:
                results["editing"].append(spread_wrk(base, read, readers, seconds, workdir))
            finally:
                stop_flag.set()
                editor.join()
            results["edits"] += counter.get("n", 0)
        before = etags(base, read, ids)
        call("PATCH", f"{base}/api/v1/assistants/{edited}/", key=write, body={"model": "m2"})
        after = etags(base, read, ids)
        results["etags_changed_by_one_edit"] = sum(before[pk] != after[pk] for pk in ids)
        stop([proc])
        scale = {}
        if not args.quick:
            more, _, _ = load(800, 10, first=len(ids))
            proc = start_quiet_server(port)
            scale = memory_at_scale(base, read, ids + more, proc.pid)
            stop([proc])
        scale["miss_queries_10_tools"] = miss_queries(10)
    quiet, editing = statistics.median(results["quiet"]), statistics.median(results["editing"])
    summary = {
        "quiet_rps": round(quiet),
        "editing_rps": round(editing),
        "ratio": round(editing / quiet, 2),
        "edits": results["edits"],
        "rounds": rounds,
        "etags_changed_by_one_edit": results["etags_changed_by_one_edit"],
        **scale,
    }
    print(json.dumps(summary, indent=2))
    if not args.quick:
        write_results(summary, results)


def write_results(summary: dict, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3))
    axis.bar(["no edits", "1 edit / 0.5 s"], [summary["quiet_rps"], summary["editing_rps"]])
    axis.set_ylabel("config reads/s (median)")
    axis.set_title("200 assistants, reads spread over all")
    figure.tight_layout()
    figure.savefig(CHART, dpi=100)
    mib = summary.get("redis_dataset_bytes", 0) / 2**20
    rss = (summary.get("worker_rss_kib") or 0) / 1024
    body = f"""\
`.venv/bin/python bench/edit_bench.py`: 200 assistants, 2,000 tools (10 links each), wrk (2
threads, 16 connections) spreading reads over 199 assistants' configs, the production server
(`make serve`) with 2 workers; {summary["rounds"]} interleaved rounds of 8 s each, median.

| case | reads/s |
|---|---|
| nobody edits | {summary["quiet_rps"]} |
| one unrelated assistant edited twice a second ({summary["edits"]} edits) \
| {summary["editing_rps"]} |
| **ratio** | **{summary["ratio"]}** (target ≥ 0.8) |

One edit changed the ETag of {summary["etags_changed_by_one_edit"]} of the 200 assistants
(target: exactly 1, the edited one; the bundle's changes too).

At 1,000 assistants (10,000 tools), every config cached: Redis dataset {mib:.1f} MiB, one
worker's resident memory {rss:.0f} MiB. Building a config costs \
{summary["miss_queries_10_tools"]} queries (the same at any tool count:
tests/test_api_query_counts.py).

![reads while editing](edit_bench.png)"""
    write_section(SECTION, body.splitlines(), RESULTS)


if __name__ == "__main__":
    main()
