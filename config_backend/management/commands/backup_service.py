from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config_backend import backup
from config_backend.management.options import add_output_file
from core.ops.terminal import terminal_safe


class Command(BaseCommand):
    help = (
        "Write a consistent backup of the whole service state: the database (PostgreSQL: "
        "pg_dump custom format, one snapshot while the service runs; the embedded SQLite "
        "file: SQLite's online backup API). Redis needs none: it holds only what is rebuilt "
        "from the database. Restore with restore_service."
    )

    def add_arguments(self, parser):
        add_output_file(
            parser, "Where to write it (default: backups/service-<timestamp>.dump, or .sqlite3)."
        )

    def handle(self, *args, output, **options):
        path = Path(output) if output else backup.default_backup_path()
        try:
            written = backup.backup(path)
        except backup.BackupError as exc:
            raise CommandError(terminal_safe(str(exc))) from None
        except OSError as exc:
            raise CommandError(
                terminal_safe(f"{path}: cannot write it ({exc.strerror}).")
            ) from None
        self.stdout.write(
            terminal_safe(f"Backup written to {written} ({written.stat().st_size} bytes).")
        )
