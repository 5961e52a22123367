"""Benchmark import_config / export_config at scale: 1,000 assistants, 10,000 tools, 200 snippets.

    .venv/bin/python bench/import_bench.py

Uses DATABASE_URL when set (its database is wiped: point it at a scratch database), else starts
a throw-away PostgreSQL the way the test suite does (tests/throwaway_servers.py). Generates the
file, imports it into an empty database, imports it again (a no-op), exports it, and writes the
timings to bench/RESULTS.md under the "Import" heading (the rest of that file is kept).
Target (issue 5): the import in under 60 s on a 2-core machine, the no-op re-import in a third.
"""

import json
import os
import platform
import random
import shutil
import tempfile
import time
from io import StringIO
from pathlib import Path

from common import ROOT, empty_config, running_services, timed, write_section

ASSISTANTS = 1_000
TOOLS = 10_000
DELEGATE_TOOLS = ASSISTANTS  # one "ask_…" tool per assistant; the rest are plain tools
LINKS_PER_ASSISTANT = 10
THREADS_PER_ASSISTANT = 5
# Shared prompt fragments: BASE_SNIPPETS included by the others, every assistant including one
# of the others (so two levels of includes each).
SNIPPETS = 200
BASE_SNIPPETS = 10
RESULTS = ROOT / "bench" / "RESULTS.md"
HEADING = "## Import"


TEMPORARY_DIRS: list[Path] = []


def generate() -> dict:
    rng = random.Random(5)
    types = ["calendar", "reminder", "time", "weather"]
    words = ["city", "date", "title", "note", "query", "limit", "zone", "user", "due", "place"]
    tools = []
    for i in range(TOOLS - DELEGATE_TOOLS):
        properties = {
            f"{rng.choice(words)}_{j}": {
                "type": rng.choice(["string", "integer", "boolean"]),
                "description": f"Argument {j} of tool {i}.",
            }
            for j in range(rng.randint(1, 5))
        }
        tools.append(
            {
                "name": f"tool_{i:05d}",
                "tool_type": types[i % 4],
                "description": f"Tool number {i}: does one small thing well.",
                "input_schema": {
                    "type": "object",
                    "properties": properties,
                    "required": sorted(properties)[:1],
                },
            }
        )
    for i in range(DELEGATE_TOOLS):
        tools.append(
            {
                "name": f"ask_{i:04d}",
                "tool_type": "sub_assistant",
                "description": f"Delegate to assistant {i}.",
                "input_schema": {
                    "type": "object",
                    "properties": {"request": {"type": "string"}},
                    "required": ["request"],
                },
                "assistant": f"Assistant {i:04d}",
            }
        )
    snippets = [
        {"name": f"base-{j:02d}", "text": f"House rule {j}: " + "be precise and brief. " * 5}
        for j in range(BASE_SNIPPETS)
    ] + [
        {
            "name": f"snippet-{k:03d}",
            "text": f"Topic {k}. {{{{> base-{k % BASE_SNIPPETS:02d} }}}} " + "Stay on topic. " * 5,
            "description": f"Shared by the assistants of topic {k}.",
        }
        for k in range(SNIPPETS - BASE_SNIPPETS)
    ]
    topics = SNIPPETS - BASE_SNIPPETS
    assistants = []
    plain = TOOLS - DELEGATE_TOOLS
    for i in range(ASSISTANTS):
        linked = [f"tool_{rng.randrange(plain):05d}" for _ in range(LINKS_PER_ASSISTANT)]
        # Delegate only to higher-numbered assistants: a big graph without cycles.
        linked += [
            f"ask_{j:04d}" for j in rng.sample(range(i + 1, ASSISTANTS), min(2, ASSISTANTS - i - 1))
        ]
        assistants.append(
            {
                "name": f"Assistant {i:04d}",
                "is_secretary": i == 0,
                "assistant_type": "llm",
                "model": "gpt-4o-mini",
                "instructions": f"You are assistant {i}. "
                + "Answer briefly and precisely. " * 10
                + f"{{{{> snippet-{i % topics:03d} }}}}",
                "tools": sorted(set(linked)),
            }
        )
    threads = [
        {
            "user_id": f"user-{u}",
            "assistant": f"Assistant {i:04d}",
            "thread_id": f"th_{i}_{u}",
            "last_used": "2026-01-01T00:00:00Z",
        }
        for i in range(ASSISTANTS)
        for u in range(THREADS_PER_ASSISTANT)
    ]
    return {
        "format_version": 3,
        "assistants": assistants,
        "tools": tools,
        "snippets": snippets,
        "threads": threads,
    }


def main() -> None:
    with running_services(DEBUG="0"):
        from django.core.management import call_command

        from assistants.models import Assistant
        from tools.models import Tool

        empty_config()

        document = generate()
        workdir = Path(tempfile.mkdtemp(prefix="config-bench-file-"))
        TEMPORARY_DIRS.append(workdir)
        path = workdir / "config.json"
        path.write_text(json.dumps(document, ensure_ascii=False, indent=2))
        size_mb = path.stat().st_size / 2**20
        links = sum(len(entry["tools"]) for entry in document["assistants"])
        print(
            f"file: {size_mb:.1f} MB, {ASSISTANTS} assistants, {TOOLS} tools, {links} links, "
            f"{SNIPPETS} snippets, {len(document['threads'])} threads",
            flush=True,
        )

        def run(*args):
            out = StringIO()
            call_command("import_config", str(path), *args, stdout=out, stderr=StringIO())
            return out.getvalue()

        first, output = timed("import into an empty database", lambda: run("--no-backup"))
        assert "Imported" in output, output
        again, output = timed("no-op re-import", lambda: run("--backup-dir", str(workdir)))
        assert "no changes" in output, output
        for entry in document["tools"]:
            entry["description"] += " (v2)"
        for entry in document["assistants"]:
            entry["instructions"] += " (v2)"
        for entry in document["snippets"]:
            entry["text"] += " (v2)"
        path.write_text(json.dumps(document, ensure_ascii=False, indent=2))
        changed, output = timed("re-import with every row changed", lambda: run("--no-backup"))
        assert "Tools: 0 created, 10000 updated" in output, output
        assert f"Snippets: 0 created, {SNIPPETS} updated" in output, output
        export_path = workdir / "export.json"

        def export():
            call_command(
                "export_config", "-o", str(export_path), "--include-threads", stdout=StringIO()
            )

        exported, _ = timed("export (with threads)", export)
        check, _ = timed("check_config", lambda: call_command("check_config", stdout=StringIO()))
        assert Tool.objects.count() == TOOLS and Assistant.objects.count() == ASSISTANTS

        write_section(
            HEADING,
            [
                f"`.venv/bin/python bench/import_bench.py` — {time.strftime('%Y-%m-%d')}, "
                f"{os.cpu_count()} CPUs ({platform.machine()}), "
                f"Python {platform.python_version()}, "
                "PostgreSQL (throw-away, fsync off) unless DATABASE_URL was set; "
                f"load average {os.getloadavg()[0]:.1f} at the end.",
                "",
                f"File: {size_mb:.1f} MB — {ASSISTANTS:,} assistants, {TOOLS:,} tools "
                f"({DELEGATE_TOOLS:,} sub-assistant), {links:,} links, {SNIPPETS} snippets "
                f"(each assistant includes one, which includes another), "
                f"{len(document['threads']):,} threads.",
                "",
                "| step | seconds | target |",
                "|---|---|---|",
                f"| import into an empty database | {first:.2f} | < 60 |",
                "| no-op re-import (validates the file; re-checks only input schemas that differ "
                f"from the stored ones; writes nothing) | {again:.2f} | "
                f"< {first / 3:.2f} (a third of the import) |",
                f"| re-import with every assistant, tool and snippet changed | {changed:.2f} | |",
                f"| export with threads | {exported:.2f} | |",
                f"| check_config | {check:.2f} | |",
            ],
        )
        print(f"recorded in {RESULTS.relative_to(ROOT)}")
        for directory in TEMPORARY_DIRS:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
