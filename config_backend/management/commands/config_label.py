from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from config_backend.history.approvals import Requester, request_or_change_label
from config_backend.history.labels import (
    LabelChange,
    NoRollout,
    UnknownLabel,
    label_target,
)
from config_backend.history.states import UnknownRevision
from core.changes import current_context
from core.models import LabelRequest
from core.ops.terminal import terminal_safe
from core.store import CacheUnavailable

# How a field of the change is named on this command line, in its errors.
ARGUMENTS = {"name": "NAME", "revision": "X", "rollout.revision": "--rollout"}


class Command(BaseCommand):
    help = (
        "Create a label or move it to revision X (`config_log` lists them), or to `live` (the "
        "newest revision); with --rollout M --percent P, serve revision M to P % of users "
        "(and to each --user) while the others keep X (omitted: the label's base); --promote "
        "moves the label to its candidate, --abort drops the rollout. Runtimes reading the "
        "label (?label=NAME, or keys pinned to it) serve the change from their next read."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="The label, e.g. production or staging.")
        parser.add_argument(
            "target", metavar="X", nargs="?", help="A revision number, or `live`: the base."
        )
        parser.add_argument("--rollout", metavar="M", help="The candidate revision (or `live`).")
        parser.add_argument(
            "--percent", metavar="P", help="The share of users on the candidate, 0–100."
        )
        parser.add_argument(
            "--user",
            dest="users",
            action="append",
            default=[],
            help="A user id always on the candidate (repeat for more).",
        )
        ends = parser.add_mutually_exclusive_group()
        ends.add_argument("--promote", action="store_true", help="Move to the candidate.")
        ends.add_argument("--abort", action="store_true", help="Drop the rollout.")
        parser.add_argument("--message", default="", help="Why (shown in the label's history).")

    def handle(self, *args, name, target, rollout, percent, users, promote, abort, message, **o):
        context = current_context()
        try:
            change = self.change(target, rollout, percent, users, promote, abort)
            # A protected label under LABEL_APPROVALS: a request, nothing changes.
            label = request_or_change_label(
                name,
                change,
                author=context.author,
                message=message or context.message,
                requester=Requester.of_command(context.author),
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{ARGUMENTS.get(field, '--' + field.removeprefix('rollout.'))}: "
                f"{' '.join(messages)}"
                for field, messages in exc.message_dict.items()
            )
            raise CommandError(terminal_safe(problems)) from None
        except (UnknownRevision, UnknownLabel, NoRollout, CacheUnavailable) as exc:
            raise CommandError(terminal_safe(str(exc))) from None
        if isinstance(label, LabelRequest):
            self.stdout.write(
                terminal_safe(
                    f"“{name}” is protected: change request {label.id} made; nothing changes "
                    f"until {label.needed} other person(s) approve it (admin: Label requests, "
                    f"or POST /api/v1/label-requests/{label.id}/approve/)."
                )
            )
            return
        verb = (
            "Created"
            if label.created
            else {"promote": "Promoted", "abort": "Aborted"}.get(change.action, "Moved")
        )
        said = f"{verb} label “{label.name}”: now at revision {label.revision}"
        if label.candidate_revision is not None:
            said += (
                f", revision {label.candidate_revision} for {label.rollout['percent']} % of users"
                + (f" and {len(label.rollout_users)} listed" if label.rollout_users else "")
            )
        self.stdout.write(terminal_safe(said + "."))

    @staticmethod
    def change(target, rollout, percent, users, promote, abort) -> LabelChange:
        """The LabelChange the arguments ask for; CommandError when they contradict."""
        if promote or abort:
            if target is not None or rollout is not None or percent is not None or users:
                raise CommandError("--promote and --abort take only NAME (and --message).")
            return LabelChange("promote" if promote else "abort")
        revision = label_target(target) if target is not None else None
        if rollout is None:
            if percent is not None or users:
                raise CommandError("--percent and --user go with --rollout M.")
            if revision is None:
                raise CommandError("X: a revision number or `live` (or --rollout, --promote…).")
            return LabelChange("move", revision)
        if percent is None:
            raise CommandError("--rollout M needs --percent P (0 to 100).")
        return LabelChange(
            "rollout", revision, {"revision": rollout, "percent": percent, "users": users}
        )
