from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.cache import CacheUnavailable
from core.json_input import unstorable_text_problem
from core.models import APIKey


class Command(BaseCommand):
    help = "Create an API key. The key is printed once, as the last line; only its hash is kept."

    def add_arguments(self, parser):
        parser.add_argument("name", help="What the key is for (at most 50 characters).")
        parser.add_argument(
            "--scope",
            choices=APIKey.Scope.values,
            default=APIKey.Scope.READ,
            help="read: every GET; runtime: read + thread writes; write: read + config writes. "
            "Default: read.",
        )

    def handle(self, *args, name, scope, **options):
        name = name.strip()
        if not name or len(name) > 50:
            raise CommandError("NAME must be 1 to 50 characters.")
        problem = unstorable_text_problem(name)
        if problem:
            raise CommandError(f"NAME {problem}.")
        try:
            with transaction.atomic():
                api_key, key = APIKey.objects.create_key(name=name, scope=scope)
        except CacheUnavailable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Created API key “{api_key.name}” (prefix {api_key.prefix}, scope {api_key.scope}). "
            "Store it now; it cannot be shown again:"
        )
        self.stdout.write(key)
