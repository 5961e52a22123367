from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config_backend import transfer
from config_backend.management.options import add_revision_note, add_switch
from core.changes import ChangeContext, change_context, os_user
from core.models import Revision
from core.ops import metrics
from core.ops.terminal import command_refused, terminal_safe
from core.store import CacheUnavailable

# Files with more rows than this get their progress reported on stderr.
LARGE_FILE_ROWS = 2000


class Command(BaseCommand):
    help = (
        "Import assistants, tools, their links and threads from a JSON file (format_version 2, "
        "or 1, whose tools are not strict), "
        "atomically: everything or nothing. Rows are matched by id when given, else by name; "
        "references are by name. An entry is the whole row: omitted fields take the model "
        "defaults, and an assistant's `tools` list becomes exactly its set of links (a plain "
        'name is an active link, {"tool": name, "is_active": false} an inactive one). The file '
        "is validated first against the format's JSON Schema and every rule; each problem is "
        "printed as 'POINTER: message' and nothing is written. Then a backup export is written, "
        "the changes are applied and verified against the file before the commit."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The JSON file to import.")
        add_switch(
            parser,
            "--dry-run",
            "Validate and report what would change; write nothing (no backup either).",
        )
        add_switch(
            parser,
            "--prune",
            "Delete the assistants and tools the file does not mention (and their links and "
            "threads); threads too when the file has a `threads` key.",
        )
        backup = parser.add_mutually_exclusive_group()
        backup.add_argument(
            "--backup-dir",
            default="backups",
            help="Where the backup of the current config goes (default: backups/).",
        )
        add_switch(backup, "--no-backup", "Don't write a backup first.")
        add_revision_note(parser, "A note for the revision the import makes.")

    def handle(self, *args, file, dry_run, prune, backup_dir, no_backup, message, **options):
        try:
            document = transfer.read_config_file(file)
            progress = None
            if options["verbosity"] >= 2 or _row_count(document) >= LARGE_FILE_ROWS:
                progress = self._progress
            context = ChangeContext(
                source=Revision.Source.IMPORT, author=os_user(), message=message
            )
            with metrics.import_timer(), change_context(context):
                result = transfer.import_config(
                    document=document,
                    prune=prune,
                    dry_run=dry_run,
                    backup_dir=None if no_backup else Path(backup_dir),
                    progress=progress,
                )
        except transfer.ConfigValidationError as exc:
            summary = f"{file}: {len(exc.errors)} error(s); nothing was written."
            raise command_refused(self.stderr, exc.errors, summary) from None
        except transfer.ConfigVerificationError as exc:
            summary = (
                f"{file}: after writing, the database did not match the file; everything was "
                "rolled back."
            )
            raise command_refused(self.stderr, exc.mismatches, summary) from None
        except transfer.ConfigFileError as exc:
            raise CommandError(terminal_safe(str(exc))) from None
        except CacheUnavailable as exc:
            raise CommandError(terminal_safe(f"{file}: {exc}")) from None

        prefix = "Would be " if dry_run else ""
        for entity, counts in result.counts().items():
            self.stdout.write(
                f"{prefix}{entity.capitalize()}: "
                + ", ".join(f"{number} {what}" for what, number in counts.items())
            )
        for entity, names in result.deleted_names.items():
            for name in names:
                self.stdout.write(
                    terminal_safe(
                        f"{'Would delete' if dry_run else 'Deleted'} {entity[:-1]}: {name}"
                    )
                )
        if not result.changed:
            self.stdout.write(
                terminal_safe(f"{file}: no changes; the database already matches the file.")
            )
            return
        verified = ", ".join(f"{count} {entity}" for entity, count in result.verified.items())
        self.stdout.write(
            f"Verified before commit: the database matches the file ({verified}; every link's "
            "sub_assistant equals its tool's delegate)."
        )
        if result.backup_path:
            self.stdout.write(terminal_safe(f"Backup of the previous config: {result.backup_path}"))
        if dry_run:
            self.stdout.write(terminal_safe(f"{file}: dry run; nothing was written."))
        else:
            made = f" as revision {result.revision}" if result.revision is not None else ""
            self.stdout.write(self.style.SUCCESS(terminal_safe(f"Imported {file}{made}.")))

    def _progress(self, message: str) -> None:
        self.stderr.write(terminal_safe(message))


def _row_count(document) -> int:
    if not isinstance(document, dict):
        return 0
    return sum(
        len(document[key])
        for key in ("assistants", "tools", "threads")
        if isinstance(document.get(key), list)
    )
