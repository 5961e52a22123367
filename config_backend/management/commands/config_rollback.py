from django.core.management.base import BaseCommand, CommandError

from config_backend.history.selectors import MalformedPoint, resolve_point
from config_backend.history.services import RollbackRefused, rollback
from config_backend.management.options import add_revision_note, add_switch
from core.ops.terminal import command_refused, terminal_safe
from core.store import CacheUnavailable


class Command(BaseCommand):
    help = (
        "Make the live configuration equal to the state at revision X, as one new revision "
        "(source `rollback`), through the import's validated atomic path. Assistants and tools "
        "created after X are kept, or with --prune deleted (with their links and threads). A "
        "target that breaks a rule against today's data is refused: exit 1, nothing changed."
    )

    def add_arguments(self, parser):
        parser.add_argument("to", metavar="X", help="The revision to roll back to.")
        add_switch(
            parser,
            "--prune",
            "Delete the assistants and tools created after X (and their threads).",
        )
        add_revision_note(parser, "The new revision's note.")

    def handle(self, *args, to, prune, message, **options):
        try:
            target = resolve_point(to)
            result = rollback(to=target, prune=prune, message=message)
        except (MalformedPoint, LookupError, CacheUnavailable) as exc:
            raise CommandError(terminal_safe(str(exc))) from None
        except RollbackRefused as exc:
            summary = (
                f"Rollback to {to} refused ({len(exc.reasons)} reason(s) above); nothing was "
                "changed."
            )
            raise command_refused(self.stderr, exc.reasons, summary) from None
        for row in result.kept:
            self.stdout.write(
                terminal_safe(f"Kept {row['entity']} created after {to}: {row['name']}")
            )
        for row in result.deleted:
            self.stdout.write(
                terminal_safe(f"Deleted {row['entity']} created after {to}: {row['name']}")
            )
        if result.revision is None:
            self.stdout.write(
                terminal_safe(f"Nothing to change: the live configuration already equals {to}.")
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    terminal_safe(f"Rolled back to {to} as revision {result.revision}.")
                )
            )
