from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config_backend import backup
from config_backend.management.options import add_switch
from core.ops.terminal import terminal_safe


class Command(BaseCommand):
    help = (
        "Restore a backup made by backup_service into the database DATABASE_URL names, in one "
        "transaction (all or nothing). Refuses a database that has tables unless --force. "
        "Then retires everything Redis cached: each revision moves past every value it had "
        "(so no entry cached before the restore can match), the cache is cleared and the "
        "mirrors are seeded from the restored rows. Redis must be reachable."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="A file written by backup_service.")
        add_switch(
            parser,
            "--force",
            "Replace what a non-empty database holds (its objects are dropped first).",
        )

    def handle(self, *args, file, force, **options):
        try:
            result = backup.restore(Path(file), force=force)
        except backup.BackupError as exc:
            raise CommandError(terminal_safe(str(exc))) from None
        revisions = ", ".join(f"{name} {value}" for name, value in result["revisions"].items())
        self.stdout.write(
            terminal_safe(
                f"Restored {file}; cache cleared, revisions moved past every earlier one "
                f"({revisions})."
            )
        )
        if result["pending_migrations"]:
            self.stdout.write(
                f"The backup predates {result['pending_migrations']} migration(s) of this "
                "version: run `python manage.py migrate` before serving."
            )
