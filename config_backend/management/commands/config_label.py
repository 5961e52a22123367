from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from config_backend.history.approvals import Requester, request_or_change_label
from config_backend.history.labels import LabelChange, label_target
from config_backend.history.states import UnknownRevision
from core.changes import current_context
from core.models import Label, LabelRequest
from core.ops.terminal import terminal_safe
from core.store import CacheUnavailable


class Command(BaseCommand):
    help = (
        "Create a label or move it to revision X (`config_log` lists them), or to `live` (the "
        "newest revision). Runtimes reading the label (?label=NAME, or keys pinned to it) serve "
        "the config at X from their next read."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="The label, e.g. production or staging.")
        parser.add_argument("target", metavar="X", help="A revision number, or `live`.")
        parser.add_argument("--message", default="", help="Why (shown in the label's history).")

    def handle(self, *args, name, target, message, **options):
        context = current_context()
        created = not Label.objects.filter(name=name).exists()
        try:
            # A protected label under LABEL_APPROVALS: a request, nothing moves.
            label = request_or_change_label(
                name,
                LabelChange("move", revision=label_target(target)),
                message=message or context.message,
                author=context.author,
                requester=Requester.of_command(context.author),
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'NAME' if field == 'name' else 'X'}: {' '.join(messages)}"
                for field, messages in exc.message_dict.items()
            )
            raise CommandError(terminal_safe(problems)) from None
        except (UnknownRevision, CacheUnavailable) as exc:
            raise CommandError(terminal_safe(str(exc))) from None
        if isinstance(label, LabelRequest):
            self.stdout.write(
                terminal_safe(
                    f"“{name}” is protected: change request {label.id} made; nothing moves "
                    f"until {label.needed} other person(s) approve it (admin: Label requests, "
                    f"or POST /api/v1/label-requests/{label.id}/approve/)."
                )
            )
            return
        verb = "Created" if created else "Moved"
        self.stdout.write(
            terminal_safe(f"{verb} label “{label.name}”: now at revision {label.revision}.")
        )
