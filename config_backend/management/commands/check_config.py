from django.core.management.base import BaseCommand, CommandError

from config_backend import transfer


class Command(BaseCommand):
    help = (
        "Check the live database against every rule (input schemas, tool names, delegates, "
        "delegation cycles, one active secretary, what each assistant type needs, links' "
        "sub_assistant in sync). Exit status 1 listing each problem, else 0."
    )

    def handle(self, *args, **options):
        problems, counts = transfer.config_problems()
        summary = ", ".join(f"{count} {entity}" for entity, count in counts.items())
        if problems:
            for problem in problems:
                self.stdout.write(problem)
            raise CommandError(f"{len(problems)} problem(s) found in {summary}.")
        self.stdout.write(self.style.SUCCESS(f"OK: {summary}; every rule holds."))
