"""What the history costs: time added to a save and to the 11,000-entity import, the bytes 1,000
one-field edits store, and rebuilding the configuration as it was at an old revision.

    .venv/bin/python bench/history_bench.py

Starts a throw-away PostgreSQL and Redis (or uses DATABASE_URL / REDIS_URL: their data is
wiped). Imports bench/import_bench.py's file (1,000 assistants, 10,000 tools), timing the part
that records the revision; then 1,000 saves of one field each, timed with the history recorded
and, for comparison, with the recording receivers disconnected (the save alone); then the
tables' sizes; then the state and the bundle as they were at the import's revision. Writes the
figures to bench/RESULTS.md under its heading (the rest of the file is kept).
"""

import statistics
import time

from common import ROOT, empty_config, running_services, write_section
from import_bench import generate

RESULTS = ROOT / "bench" / "RESULTS.md"
HEADING = "## History"
EDITS = 1_000


def table_bytes(*models) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        total = 0
        for model in models:
            cursor.execute("SELECT pg_total_relation_size(%s)", [model._meta.db_table])
            total += cursor.fetchone()[0]
    return total


def timed_saves(assistants, receivers_connected: bool) -> list[float]:
    """One save of one field per assistant, each its own transaction (as an admin save is)."""
    from django.db.models.signals import post_save, pre_save

    from assistants import receivers
    from assistants.models import Assistant
    from assistants.services import assistant_update

    if not receivers_connected:
        pre_save.disconnect(sender=Assistant, dispatch_uid="assistant_before_save")
        post_save.disconnect(sender=Assistant, dispatch_uid="assistant_saved")
    try:
        seconds = []
        for number, assistant in enumerate(assistants):
            started = time.perf_counter()
            assistant_update(
                assistant=assistant,
                instructions=assistant.instructions + f" Edit {number} ({receivers_connected}).",
            )
            seconds.append(time.perf_counter() - started)
        return seconds
    finally:
        if not receivers_connected:
            pre_save.connect(
                receivers.assistant_before_save,
                sender=Assistant,
                dispatch_uid="assistant_before_save",
            )
            post_save.connect(
                receivers.assistant_saved, sender=Assistant, dispatch_uid="assistant_saved"
            )


def main() -> None:
    with running_services(DEBUG="0"):
        from django.db import transaction

        from assistants.models import Assistant
        from assistants.selectors import config_bundle_build
        from config_backend import transfer
        from config_backend.history.states import state_at
        from config_backend.transfer import apply as transfer_apply
        from config_backend.transfer.file_format import config_to_bytes
        from core.models import Revision, RevisionChange
        from core.store import committed_counter

        empty_config()

        recording = []
        original = transfer_apply.record_state_changes

        def timed_record(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                recording.append(time.perf_counter() - started)

        transfer_apply.record_state_changes = timed_record
        document = generate()
        started = time.perf_counter()
        result = transfer.import_config(document=document)
        import_seconds = time.perf_counter() - started
        transfer_apply.record_state_changes = original
        first_revision = result.revision
        import_changes = RevisionChange.objects.filter(revision__number=first_revision).count()
        print(f"import: {import_seconds:.1f} s, recording {recording[0]:.1f} s", flush=True)
        export_bytes = len(config_to_bytes(transfer.export_config(include_threads=False)))
        before = table_bytes(Revision, RevisionChange)
        rows_before = RevisionChange.objects.count()

        assistants = list(Assistant.objects.order_by("name")[: EDITS // 2])
        others = list(Assistant.objects.order_by("-name")[: EDITS // 2])
        with_history = timed_saves(assistants, receivers_connected=True)
        without = timed_saves(others, receivers_connected=False)
        # And the other half with history, so EDITS edits are recorded.
        with_history += timed_saves(others, receivers_connected=True)
        after = table_bytes(Revision, RevisionChange)
        edit_rows = RevisionChange.objects.count() - rows_before
        print(f"{edit_rows} change rows, {after - before} bytes", flush=True)

        started = time.perf_counter()
        with transaction.atomic():
            old = state_at(first_revision)
        state_seconds = time.perf_counter() - started
        assert len(old.assistants) == 1_000
        started = time.perf_counter()
        config_bundle_build(revision=committed_counter())
        bundle_seconds = time.perf_counter() - started

        median_with = statistics.median(with_history) * 1000
        median_without = statistics.median(without) * 1000
        write_section(
            HEADING,
            [
                "`.venv/bin/python bench/history_bench.py`, PostgreSQL (throw-away, fsync off), "
                "bench/import_bench.py's file (1,000 assistants, 10,000 tools, 12,000 links).",
                "",
                "| what | figure |",
                "|---|---|",
                f"| import into an empty database, history included | {import_seconds:.1f} s "
                "(target < 60 s) |",
                f"| of which recording the revision ({import_changes:,} changed rows) | "
                f"{recording[0]:.1f} s |",
                f"| one-field save of an assistant, median, with history | {median_with:.1f} ms |",
                f"| the same save with the recording receivers disconnected | "
                f"{median_without:.1f} ms |",
                f"| {EDITS:,} one-field edits: change rows | {edit_rows:,} |",
                f"| {EDITS:,} one-field edits: bytes added to the history tables | "
                f"{after - before:,} ({(after - before) / EDITS:,.0f} per edit; "
                f"the config's export is {export_bytes:,} bytes) |",
                f"| the state at the import's revision, {EDITS:,} edits back | "
                f"{state_seconds:.2f} s |",
                f"| building the bundle of 1,000 assistants from live rows, for scale | "
                f"{bundle_seconds:.2f} s |",
                "",
                "A revision stores the changed rows and, for those, only the fields that changed "
                "(every field of a row created or deleted): storage grows with rows changed, "
                "not with the configuration's size.",
            ],
        )
        print(f"recorded in {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
