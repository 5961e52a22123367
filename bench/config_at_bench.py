"""What a config read at an old revision (`?revision=N`) costs on the 11,000-entity config.

    .venv/bin/python bench/config_at_bench.py

Starts a throw-away PostgreSQL and Redis (or uses DATABASE_URL / REDIS_URL: their data is
wiped). Imports bench/import_bench.py's file (1,000 assistants, 10,000 tools), then imports it
again with every assistant and tool changed (11,000 change rows after the first revision), then
times, at the first import's revision: the bundle built cold (state_at + resolved configs +
JSON), one assistant's config built cold, and both again from the cache. Writes the figures to
bench/RESULTS.md under its heading (the rest of the file is kept). Target (issue 11): under 2 s,
and cached after.
"""

import os
import time

from common import ROOT, empty_config, running_services, timed, write_section
from import_bench import generate

RESULTS = ROOT / "bench" / "RESULTS.md"
HEADING = "## Config at an old revision"


def main() -> None:
    with running_services(DEBUG="0"):
        from assistants.models import Assistant
        from config_backend import transfer
        from core.reads.points import Point
        from core.reads.reads import RevisionRead

        def config_at(revision, assistant_id=None):
            """(The config at `revision`, whether it came from the cache), as a read serves it."""
            return RevisionRead(assistant_id, Point(revision=revision, asked=True)).body()

        from core import store
        from core.models import RevisionChange

        empty_config()
        store.cache_clear()

        document = generate()
        _, first = timed("import", lambda: transfer.import_config(document=document))
        for entry in document["tools"]:
            entry["description"] += " (v2)"
        for entry in document["assistants"]:
            entry["instructions"] += " (v2)"
        timed("re-import, every row changed", lambda: transfer.import_config(document=document))
        later = RevisionChange.objects.filter(revision__number__gt=first.revision).count()
        secretary = str(Assistant.objects.get(name="Assistant 0000").id)

        cold, (body, from_cache) = timed("bundle at N, cold", lambda: config_at(first.revision))
        assert not from_cache and b"(v2)" not in body
        warm, (_, from_cache) = timed("bundle at N, cached", lambda: config_at(first.revision))
        assert from_cache
        one_cold, (one, _) = timed(
            "one assistant at N, cold", lambda: config_at(first.revision, secretary)
        )
        assert one is not None
        one_warm, _ = timed(
            "one assistant at N, cached", lambda: config_at(first.revision, secretary)
        )
        write_section(
            HEADING,
            [
                f"`.venv/bin/python bench/config_at_bench.py` — {time.strftime('%Y-%m-%d')}, "
                f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} when measured "
                "(a shared machine), PostgreSQL and Redis (throw-away), "
                "bench/import_bench.py's file (1,000 assistants, 10,000 tools, 12,000 links), "
                f"then every assistant and tool changed: {later:,} change rows after revision N.",
                "",
                "| config at revision N | seconds | target |",
                "|---|---|---|",
                f"| bundle (1,000 assistants, {len(body) / 2**20:.1f} MB), built cold "
                f"| {cold:.2f} | < 2 |",
                f"| the same, from the cache | {warm:.3f} | |",
                f"| one assistant's config, built cold | {one_cold:.2f} | < 2 |",
                f"| the same, from the cache | {one_warm:.4f} | |",
                "",
                "Cold = state_at(N) (the live state, with the later changes undone newest first) "
                "and the resolved configs built from it. The entry is then cached for good: an "
                "HTTP hit is zero SQL and one MGET (tests/test_config_at_revision.py).",
            ],
        )
        print(f"recorded in {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
