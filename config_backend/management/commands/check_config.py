from django.core.management.base import BaseCommand, CommandError

from config_backend import transfer
from config_backend.management.options import add_switch
from core.ops.terminal import terminal_safe


class Command(BaseCommand):
    help = (
        "Check the live database against every rule (input schemas, tool names, delegates, "
        "delegation cycles, one active secretary, what each assistant type needs, links' "
        "sub_assistant in sync, strict tools' schemas, active tools per assistant, model settings, "
        "structured output, template variables). Exit status 1 listing each problem, else 0; "
        "declared variables no placeholder uses are listed as warnings."
    )

    def add_arguments(self, parser):
        add_switch(
            parser,
            "--strict",
            "Also list what keeps each tool that is not strict from being sent in OpenAI strict "
            "mode (rule 8's findings, with JSON pointers); any is a problem (exit 1).",
        )

    def handle(self, *args, strict, **options):
        problems, counts, warnings = transfer.config_problems(strict_readiness=strict)
        summary = ", ".join(f"{count} {entity}" for entity, count in counts.items())
        for warning in warnings:
            # Allowed, so no failure: most likely a placeholder was removed or misspelt.
            self.stdout.write(self.style.WARNING(terminal_safe(f"warning: {warning}")))
        if problems:
            for problem in problems:
                self.stdout.write(terminal_safe(problem))
            raise CommandError(f"{len(problems)} problem(s) found in {summary}.")
        ready = "; every tool is ready for strict mode" if strict else ""
        self.stdout.write(self.style.SUCCESS(f"OK: {summary}; every rule holds{ready}."))
