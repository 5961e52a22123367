"""Snippets on the read path: a hit with a 20-snippet include tree against one without, and a
miss with 0, 10 and 50 included snippets.

    .venv/bin/python bench/snippet_bench.py            # writes bench/RESULTS.md + PNG
    .venv/bin/python bench/snippet_bench.py --quick    # seconds; checks that it works

Starts its own PostgreSQL and Redis (or uses DATABASE_URL / REDIS_URL) and the production
server (`make serve`'s, 2 workers). Two assistants whose resolved configs are the same size:
`plain` (its instructions written out) and `tree` (the same text, from an include tree of 20
snippets: a root including 4, each including 3, and 3 more included directly). wrk reads each
one's config (a cache hit) in turn, round after round, so machine noise hits both alike; the
table gives the medians and the ratio. Then, in this process, a miss (the entry deleted, the
request served by Django) of assistants including 0, 10 and 50 snippets: the SQL queries each
costs (the contract: a fixed number however many) and its median time. Loopback only.
"""

import os
import statistics
import sys
import time
from pathlib import Path

from common import (
    bench_arguments,
    create_keys,
    run_wrk,
    running_services,
    start_production_server,
    this_command,
    write_section,
)

from tests.live import call
from tests.throwaway_servers import free_port

HEADING = "## Snippets (bench/snippet_bench.py)"
CHART = "snippet_bench.png"
MISS_SNIPPETS = [0, 10, 50]
PARAGRAPH = "Keep answers short and polite; say what you did and what is left to do. " * 3


def tree_snippets() -> tuple[dict[str, str], str]:
    """The 20 snippets of the tree ({name: text}) and the instructions including it."""
    snippets = {}
    branches = []
    for i in range(4):
        leaves = [f"leaf-{i}-{j}" for j in range(3)]
        for leaf in leaves:
            snippets[leaf] = f"[{leaf}] {PARAGRAPH}"
        snippets[f"branch-{i}"] = f"[branch {i}] " + " ".join(
            f"{{{{> {leaf} }}}}" for leaf in leaves
        )
        branches.append(f"branch-{i}")
    snippets["root"] = "[root] " + " ".join(f"{{{{> {branch} }}}}" for branch in branches)
    direct = [f"direct-{i}" for i in range(3)]
    for name in direct:
        snippets[name] = f"[{name}] {PARAGRAPH}"
    instructions = "Hello {{ user_name }}. {{> root }} " + " ".join(
        f"{{{{> {d} }}}}" for d in direct
    )
    assert len(snippets) == 20
    return snippets, instructions


def load(miss_counts) -> dict:
    """The assistants: `plain` and `tree` (same expanded instructions), and one per miss
    count; returns {name: id}."""
    from config_client.templates import expand
    from django.db import transaction

    from assistants.models import Assistant
    from snippets.models import Snippet

    snippets, instructions = tree_snippets()
    with transaction.atomic():
        for name, text in snippets.items():
            Snippet.objects.create(name=name, text=text)
        rows = {
            "tree": Assistant.objects.create(name="tree", model="m", instructions=instructions),
            "plain": Assistant.objects.create(
                name="plain", model="m", instructions=expand(instructions, snippets)
            ),
        }
        for count in miss_counts:
            names = [f"miss-{count}-{i}" for i in range(count)]
            for name in names:
                Snippet.objects.create(name=name, text=f"[{name}] {PARAGRAPH}")
            rows[f"miss-{count}"] = Assistant.objects.create(
                name=f"miss-{count}",
                model="m",
                instructions="Hi {{ user_name }}. " + " ".join(f"{{{{> {n} }}}}" for n in names),
            )
    return {name: str(row.id) for name, row in rows.items()}


def measure_misses(ids: dict, key: str, repeats: int) -> dict:
    """{snippets: (queries of one miss, median ms)}: each miss served by Django in this process,
    after deleting the assistant's entry."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from core.store import assistant_config_key, store

    client = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {key}")
    client.get("/api/v1/tools/")  # the key's record and its hourly last-used write
    results = {}
    for count in MISS_SNIPPETS:
        assistant_id = ids[f"miss-{count}"]
        url = f"/api/v1/assistants/{assistant_id}/config/"
        queries, times = set(), []
        for _ in range(repeats):
            store().delete(assistant_config_key(assistant_id))
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content[:200]
            assert response.json()["instructions"].count("[miss-") == count
            queries.add(len(captured))
        results[count] = (max(queries), statistics.median(times))
    return results


def chart(hits: dict, misses: dict, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["plain", "tree"]
    left.bar(names, [hits[name] for name in names], color=["#888", "#3a7"])
    left.set_title("Cache hit (req/s, median of rounds)")
    left.set_xticks(range(2), ["no snippets", "20-snippet include tree"])
    counts = [str(count) for count in MISS_SNIPPETS]
    right.bar(counts, [misses[count][0] for count in MISS_SNIPPETS], color="#37a")
    right.set_title("Miss: SQL queries")
    right.set_xlabel("snippets included")
    figure.tight_layout()
    figure.savefig(output / CHART, dpi=100)


def main() -> int:
    parser = bench_arguments(__doc__.splitlines()[0], rounds=5, seconds=5.0)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 1.0
    repeats = 5 if args.quick else 30

    with running_services():
        ids = load(MISS_SNIPPETS)
        key = create_keys("read")["read"]
        port = free_port()
        start_production_server(port)
        base = f"http://127.0.0.1:{port}"
        urls = {name: f"{base}/api/v1/assistants/{ids[name]}/config/" for name in ("plain", "tree")}
        sizes = {}
        for name, url in urls.items():
            status, _, body = call("GET", url, key=key)  # the miss that stores the entry
            assert status == 200, body[:200]
            sizes[name] = len(body)
        rounds = {name: [] for name in urls}
        for _ in range(args.rounds):
            for name, url in urls.items():
                result = run_wrk(url, seconds=args.seconds, connections=args.connections, key=key)
                assert result["errors"] == 0 and not result["socket_errors"], result["output"]
                rounds[name].append(result)
        misses = measure_misses(ids, key, repeats)

    hits = {name: statistics.median(r["rps"] for r in results) for name, results in rounds.items()}
    p50 = {name: statistics.median(r["p50"] for r in results) for name, results in rounds.items()}
    ratio = hits["tree"] / hits["plain"]
    args.output.mkdir(parents=True, exist_ok=True)
    chart(hits, misses, args.output)
    write_section(
        HEADING,
        [
            f"{this_command()} — {time.strftime('%Y-%m-%d')}, the production server (2 workers), "
            f"wrk {args.connections} connections, {args.rounds} interleaved rounds of "
            f"{args.seconds:g} s; medians; load average {os.getloadavg()[0]:.1f} at the end.",
            "",
            "A hit serves the stored bytes whatever the instructions were built from: the "
            "include tree costs nothing on a hit (same bytes, one MGET, no SQL).",
            "",
            "| config (cache hit) | body bytes | req/s | p50 ms |",
            "|---|---|---|---|",
            *(
                f"| {label} | {sizes[name]:,} | {hits[name]:,.0f} | {p50[name]:.2f} |"
                for name, label in (
                    ("plain", "instructions written out"),
                    ("tree", "a 20-snippet include tree, expanded"),
                )
            ),
            f"| **ratio tree / plain** | | **{ratio:.2f}** | |",
            "",
            f"A miss (the entry deleted; served by Django in-process, median of {repeats}): "
            "one query reads every active snippet, however many are included (instructions "
            "with no `{{` at all skip it: one query fewer).",
            "",
            "| snippets included | SQL queries | median ms |",
            "|---|---|---|",
            *(
                f"| {count} | {misses[count][0]} | {misses[count][1]:.1f} |"
                for count in MISS_SNIPPETS
            ),
            "",
            f"![snippets]({CHART})",
        ],
        results=args.output / "RESULTS.md",
    )
    print(f"hit ratio tree/plain {ratio:.2f}; miss queries {[misses[c][0] for c in MISS_SNIPPETS]}")
    flat = len({misses[count][0] for count in MISS_SNIPPETS}) == 1
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
