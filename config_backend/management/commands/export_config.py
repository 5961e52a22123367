from django.core.management.base import BaseCommand, CommandError

from config_backend import transfer


class Command(BaseCommand):
    help = (
        "Export the configuration as JSON (format_version 2), deterministically: assistants, "
        "tools and each assistant's tool list sorted by name, stable key order, UTF-8. Every "
        'link is exported, an inactive one as {"tool": name, "is_active": false}. '
        "export, import into an empty database, export again gives identical bytes."
    )

    def add_arguments(self, parser):
        parser.add_argument("-o", "--output", metavar="FILE", help="Write here, not to stdout.")
        parser.add_argument(
            "--include-threads",
            action="store_true",
            help="Also export the users' conversation threads.",
        )

    def handle(self, *args, output, include_threads, **options):
        document = transfer.export_config(include_threads=include_threads)
        if not output:
            self.stdout.write(transfer.config_to_bytes(document).decode(), ending="")
            return
        try:
            transfer.write_config_file(output, document)
        except OSError as exc:
            raise CommandError(f"{output}: cannot write it ({exc.strerror}).") from None
        counts = {
            name: len(document[name])
            for name in ("assistants", "tools", "threads")
            if name in document
        }
        self.stdout.write(
            f"Exported {', '.join(f'{n} {name}' for name, n in counts.items())} to {output}."
        )
