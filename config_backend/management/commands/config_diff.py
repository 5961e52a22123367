import json

from django.core.management.base import BaseCommand, CommandError

from config_backend.history.selectors import MalformedPoint, diff, resolve_point
from core.terminal import terminal_safe

# Longer values are cut in a line (the API's diff has them whole).
VALUE_CHARS = 120


def value_text(value) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def change_lines(change) -> list[str]:
    """A change as lines: what happened to which row, then each field (old → new)."""
    lines = [f"{change.entity} “{change.name}” {change.action} ({change.object_id})"]
    for name, values in change.fields.items():
        if change.action == "created":
            lines.append(f"    {name}: {value_text(values['new'])}")
        elif change.action == "deleted":
            lines.append(f"    {name}: {value_text(values['old'])}")
        else:
            lines.append(f"    {name}: {value_text(values['old'])} → {value_text(values['new'])}")
    return lines


def resolved(text: str) -> int | None:
    """The revision a point names (None: live), or CommandError (exit 1) saying why not."""
    try:
        return resolve_point(text)
    except (MalformedPoint, LookupError) as exc:
        raise CommandError(terminal_safe(str(exc))) from None


class Command(BaseCommand):
    help = (
        "Show the net change of the configuration from X to Y (each a revision number or "
        "`live`): each row created, updated or deleted, with its fields' old → new values."
    )

    def add_arguments(self, parser):
        parser.add_argument("from_point", metavar="X", help="A revision number, or `live`.")
        parser.add_argument("to_point", metavar="Y", help="A revision number, or `live`.")

    def handle(self, *args, from_point, to_point, **options):
        result = diff(resolved(from_point), resolved(to_point))
        self.stdout.write(
            f"From revision {result.from_revision} to {result.to_revision}: "
            f"{len(result.changes)} change(s)."
        )
        for change in result.changes:
            for line in change_lines(change):
                self.stdout.write(terminal_safe(line))
