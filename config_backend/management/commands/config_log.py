from django.core.management.base import BaseCommand, CommandError

from config_backend.history.selectors import revision_list
from core.terminal import terminal_safe


def revision_line(revision) -> str:
    """One line of the log: number, time, author, source, counts, message."""
    counts = (
        f"assistants {revision.count_assistants}, tools {revision.count_tools}, "
        f"links {revision.count_links}"
    )
    when = revision.created_at.strftime("%Y-%m-%d %H:%M:%SZ")
    message = f"  {revision.message}" if revision.message else ""
    return f"{revision.number}  {when}  {revision.author}  {revision.source}  ({counts}){message}"


class Command(BaseCommand):
    help = (
        "List the configuration's revisions, newest first: number, time (UTC), author, source, "
        "the rows of each entity it changed, and its note."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--limit", type=int, default=20, help="How many revisions (default 20; 0: all)."
        )

    def handle(self, *args, limit, **options):
        if limit < 0:
            raise CommandError("--limit must be 0 (all) or more.")
        revisions = revision_list()
        if limit:
            revisions = revisions[:limit]
        lines = [revision_line(revision) for revision in revisions]
        if not lines:
            self.stdout.write("No revisions yet.")
        for line in lines:
            self.stdout.write(terminal_safe(line))
