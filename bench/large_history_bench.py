"""What a large history costs to read (issue 18, finding 3): one assistant edited 60 times, each
edit a whole new 256 KiB of instructions (MAX_INSTRUCTIONS_BYTES; 1 MB edits are refused now).
Measures the admin History page (its size and time), one revision and the diff in the API.

    .venv/bin/python bench/large_history_bench.py [--code DIR]

`--code DIR`: measure the code of another checkout (e.g. /work/main, for the figures before a
change); the servers and this script stay this tree's. Starts a throw-away PostgreSQL and
Redis (or uses DATABASE_URL / REDIS_URL: their data is wiped). In-process (Django's test
client), so the figures are the server's work without the network. Prints one line per
figure, median of --rounds runs.
"""

import argparse
import os
import statistics
import sys
import time

from common import running_services

EDITS = 60
# 2,590 lines of 101 bytes (the newline too): 261,589 bytes, just under 256 KiB; every line
# differs from one edit to the next.
LINES = 2_590


def text(edit: int) -> str:
    return "\n".join(f"edit {edit:02d} line {n:05d} " + "x" * 81 for n in range(LINES))


def timed(call, rounds: int) -> tuple[float, object]:
    seconds, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", help="the checkout whose code is measured")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.code:
        sys.path.insert(0, os.path.abspath(args.code))
    with running_services(DEBUG="0", ALLOWED_HOSTS="testserver,127.0.0.1"):
        from django.conf import settings
        from django.contrib.auth.models import User
        from django.db import transaction
        from django.test import Client, override_settings
        from django.urls import reverse

        import assistants
        from assistants.models import Assistant
        from core.models import APIKey
        from core.store import committed_counter

        # The admin's pages without `collectstatic` (as the tests render them).
        plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
        override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain}).enable()
        print(f"code: {os.path.dirname(os.path.dirname(assistants.__file__))}")
        Assistant.objects.all().delete()
        assistant = Assistant.objects.create(name="Verbose", model="gpt-4o-mini")
        for edit in range(EDITS):
            assistant.instructions = text(edit)
            with transaction.atomic():
                assistant.save()
            if edit == 0:
                first = committed_counter()  # the diff's `from`: the first 256 KiB text
        last = committed_counter()

        admin = Client()
        admin.force_login(User.objects.create_superuser(f"bench{last}"))
        _, key = APIKey.objects.create_key(name="bench", scope="read")
        api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")

        def get(client, url):
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            return response

        history = reverse("admin:assistants_assistant_history", args=[assistant.pk])
        figures = {
            "admin History page": (admin, history),
            f"API GET /api/v1/revisions/{last}/": (api, f"/api/v1/revisions/{last}/"),
            f"API GET /api/v1/diff/?from={first}&to=live": (
                api,
                f"/api/v1/diff/?from={first}&to=live",
            ),
            f"API GET /api/v1/diff/?from={first}&to=live&full=1": (
                api,
                f"/api/v1/diff/?from={first}&to=live&full=1",
            ),
        }
        print(f"{EDITS} edits of {len(text(0).encode()):,} bytes; median of {args.rounds} runs")
        for name, (client, url) in figures.items():
            seconds, response = timed(lambda c=client, u=url: get(c, u), args.rounds)
            print(f"{name}: {len(response.content):,} bytes, {seconds:.2f} s", flush=True)


if __name__ == "__main__":
    main()
