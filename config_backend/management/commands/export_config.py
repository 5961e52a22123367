from django.core.management.base import BaseCommand, CommandError

from config_backend import transfer
from config_backend.history.selectors import MalformedPoint, resolve_point, state_of
from config_backend.management.options import add_output_file, add_switch
from config_backend.transfer.file_format import serialize_state
from core.ops.terminal import terminal_safe


class Command(BaseCommand):
    help = (
        "Export the configuration as JSON (format_version 2), deterministically: assistants, "
        "tools and each assistant's tool list sorted by name, stable key order, UTF-8. Every "
        'link is exported, an inactive one as {"tool": name, "is_active": false}. '
        "export, import into an empty database, export again gives identical bytes."
    )

    def add_arguments(self, parser):
        add_output_file(parser, "Write here, not to stdout.")
        add_switch(parser, "--include-threads", "Also export the users' conversation threads.")
        parser.add_argument(
            "--at",
            metavar="X",
            help="Export the configuration as it was at revision X (`config_log` lists them), "
            "without threads (they are not versioned): the same bytes as an export taken then.",
        )

    def handle(self, *args, output, include_threads, at, **options):
        if at is None:
            document = transfer.export_config(include_threads=include_threads)
        elif include_threads:
            raise CommandError("--at exports no threads: they are not versioned.")
        else:
            try:
                state = state_of(resolve_point(at))
            except (MalformedPoint, LookupError) as exc:
                raise CommandError(terminal_safe(str(exc))) from None
            document = serialize_state(state, include_threads=False)
        if not output:
            self.stdout.write(transfer.config_to_bytes(document).decode(), ending="")
            return
        try:
            transfer.write_config_file(output, document)
        except OSError as exc:
            raise CommandError(
                terminal_safe(f"{output}: cannot write it ({exc.strerror}).")
            ) from None
        counts = {
            name: len(document[name])
            for name in ("assistants", "tools", "threads")
            if name in document
        }
        exported = ", ".join(f"{n} {name}" for name, n in counts.items())
        self.stdout.write(terminal_safe(f"Exported {exported} to {output}."))
