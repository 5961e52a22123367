"""`manage.py run_webhooks`: the webhook worker (webhooks.worker; docs/webhooks.md)."""

import signal

from django.core.management.base import BaseCommand, CommandError

from webhooks.worker import CONCURRENCY, LEASE_SECONDS, POLL_SECONDS, Worker


class Command(BaseCommand):
    help = (
        "Send pending webhook deliveries until stopped (SIGTERM or Ctrl-C let the sends in "
        "progress finish). Run as many as you like on PostgreSQL; one on SQLite."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--concurrency",
            type=int,
            default=CONCURRENCY,
            help=f"Endpoints sent to at once (default {CONCURRENCY}).",
        )
        parser.add_argument(
            "--lease-seconds",
            type=float,
            default=LEASE_SECONDS,
            help="How long a claimed delivery is this worker's: one a killed worker was "
            f"sending is sent again after it (default {LEASE_SECONDS:g}).",
        )
        parser.add_argument(
            "--poll-seconds",
            type=float,
            default=POLL_SECONDS,
            help=f"How often to look for due deliveries when idle (default {POLL_SECONDS:g}).",
        )
        parser.add_argument(
            "--until-idle",
            action="store_true",
            help="Stop once nothing is due or being sent (instead of running until stopped).",
        )

    def handle(self, *args, concurrency, lease_seconds, poll_seconds, until_idle, **options):
        if concurrency < 1 or poll_seconds <= 0:
            raise CommandError("--concurrency must be at least 1 and --poll-seconds above 0.")
        try:
            worker = Worker(
                concurrency=concurrency, lease_seconds=lease_seconds, poll_seconds=poll_seconds
            )
        except ValueError as exc:
            raise CommandError(f"--lease-seconds: {exc}") from None

        def stop(signum, frame):
            worker.stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(
            f"Sending webhooks: {concurrency} endpoints at once, leases of {lease_seconds:g} s. "
            "Ctrl-C stops."
        )
        worker.run(until_idle=until_idle)
        self.stdout.write("Stopped.")
