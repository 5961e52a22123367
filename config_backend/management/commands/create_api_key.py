from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from config_backend.management.options import add_switch
from core.api.json_input import unstorable_text_problem
from core.api.keys import key_grant_problems
from core.models import APIKey, Label, validate_label_name
from core.ops.terminal import terminal_safe
from core.store import CacheUnavailable

# The command's option for each field key_grant_problems may blame.
OPTIONS = {"scope": "--scope", "protected": "--protected"}


class Command(BaseCommand):
    help = (
        "Create an API key. The key is printed once, as the last line; only its hash is kept. "
        "Run by the operator it may make any key; with --as-user, only one that user may make."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="What the key is for (at most 50 characters).")
        parser.add_argument(
            "--scope",
            choices=APIKey.Scope.values,
            default=APIKey.Scope.READ,
            help="read: every GET; runtime: read + thread writes; write: read + config writes. "
            "Default: read.",
        )
        parser.add_argument(
            "--label",
            help="Pin the key's config reads to this label (e.g. production): without "
            "?label= or ?revision= they serve the config at the label's revision.",
        )
        add_switch(
            parser,
            "--protected",
            "With --scope write: may also move protected labels (PROTECTED_LABELS).",
        )
        parser.add_argument(
            "--as-user",
            metavar="USERNAME",
            help="Make the key as this staff user would in the admin: it needs `add_apikey`, "
            "and the key may do nothing the user may not (protected needs "
            "`move_protected_label`, write every config write and `move_label`, ...).",
        )

    def handle(self, *args, name, scope, label=None, protected=False, as_user=None, **options):
        name = name.strip()
        if not name or len(name) > 50:
            raise CommandError("NAME must be 1 to 50 characters.")
        problem = unstorable_text_problem(name)
        if problem:
            raise CommandError(f"NAME {problem}.")
        if label is not None:
            try:
                validate_label_name(label)
            except ValidationError as exc:
                raise CommandError(terminal_safe(f"--label: {exc.messages[0]}")) from None
        if protected and scope != APIKey.Scope.WRITE:
            raise CommandError("--protected needs --scope write: only write keys move labels.")
        if as_user is not None:
            self.check_maker(as_user, scope=scope, protected=protected)
        try:
            with transaction.atomic():
                api_key, key = APIKey.objects.create_key(
                    name=name, scope=scope, label=label, protected=protected
                )
        except CacheUnavailable as exc:
            raise CommandError(terminal_safe(str(exc))) from None
        if label is not None and not Label.objects.filter(name=label).exists():
            self.stderr.write(
                terminal_safe(
                    f"Note: no label “{label}” exists yet; this key's config reads answer 404 "
                    f"until it does (manage.py config_label {label} live)."
                )
            )
        pinned = f", pinned to label {label}" if label else ""
        protected_note = ", may move protected labels" if protected else ""
        self.stdout.write(
            terminal_safe(
                f"Created API key “{api_key.name}” (prefix {api_key.prefix}, scope "
                f"{api_key.scope}{pinned}{protected_note}). Store it now; it cannot be shown "
                "again:"
            )
        )
        self.stdout.write(key)

    def check_maker(self, username: str, *, scope: str, protected: bool) -> None:
        """CommandError unless the staff user `username` may make this key (as in the admin)."""
        user = get_user_model().objects.filter(username=username).first()
        if user is None or not (user.is_active and user.is_staff):
            raise CommandError(f"--as-user: no active staff user “{username}”.")
        if not user.has_perm("config_backend.add_apikey"):
            raise CommandError(f"--as-user: “{username}” may not add API keys.")
        problems = key_grant_problems(user, scope=scope, protected=protected)
        if problems:
            raise CommandError(
                " ".join(
                    f"{OPTIONS[field]}: {message}"
                    for field, messages in problems.items()
                    for message in messages
                )
            )
