"""A burst of requests with made-up API keys against the production server (`make serve`, 2
workers) on a PostgreSQL with its default max_connections (100), valid reads going on beside it.

    .venv/bin/python bench/overload_bench.py [--bogus 1500] [--quick]

Counts what the bogus requests and the valid reads were answered, what /readyz said meanwhile,
how many connections PostgreSQL accepted during the burst (its `connection authorized` log
lines) and the most it held at once. Writes the "Bogus-key burst" section of bench/RESULTS.md.
"""

import argparse
import sys
import threading
import time
from pathlib import Path

from common import (
    ROOT,
    postgres_log,
    running_services,
    server_log,
    start_production_server,
    write_section,
)

from tests.live import call
from tests.load import bogus_key_burst
from tests.throwaway_servers import free_port


def peak_connections(database_url: str, stop_sampling: threading.Event, peak: list[int]):
    """The most client connections PostgreSQL held at once (other than this one), sampled."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        while not stop_sampling.is_set():
            (held,) = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()"
            ).fetchone()
            peak[0] = max(peak[0], held)
            time.sleep(0.01)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bogus", type=int, default=1500)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="a short run that checks it works")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.bogus = 100

    postgres_settings = {"max_connections": "100", "log_connections": "on"}
    with running_services(postgres_settings=postgres_settings) as env:
        from assistants.models import Assistant
        from core.models import APIKey

        assistant = Assistant.objects.create(name="Secretary", model="m", is_secretary=True)
        _, key = APIKey.objects.create_key(name="bench-read", scope="read")
        port = free_port()
        start_production_server(port)
        base = f"http://127.0.0.1:{port}"
        path = f"/api/v1/assistants/{assistant.id}/config/"
        for _ in range(6):  # the entry and key record stored; both workers' first requests
            assert call("GET", base + path, key=key)[0] == 200
        from django.db import connection

        connection.close()  # this script's own connections are not the server's
        if getattr(connection, "pool", None):
            connection.close_pool()

        accepted_before = postgres_log().read_text().count("connection authorized")
        stop_sampling, peak = threading.Event(), [0]
        sampler = threading.Thread(
            target=peak_connections, args=(env["DATABASE_URL"], stop_sampling, peak)
        )
        sampler.start()
        started = time.monotonic()
        burst = bogus_key_burst(base, path, bogus=args.bogus, valid_key=key, readers=args.readers)
        seconds = time.monotonic() - started
        stop_sampling.set()
        sampler.join()
        time.sleep(0.5)  # the log catches up
        # Less the sampler's own connection.
        accepted = postgres_log().read_text().count("connection authorized") - accepted_before - 1
        served_log = server_log(port).read_text(errors="replace")
        said = {
            "breaker trips (Cache unreachable)": served_log.count("Cache unreachable"),
            "Redis pool exhausted warnings": served_log.count("connection pool exhausted"),
            "database unavailable warnings": served_log.count("Database unavailable"),
        }

    def counted(counter) -> str:
        return ", ".join(f"{status}: {n}" for status, n in sorted(counter.items(), key=str))

    options = " --quick" if args.quick else f" --bogus {args.bogus}"
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on 2 cores (shared): the production server "
        f"(config_backend.serve, 2 workers), PostgreSQL 15 with max_connections 100, Redis; "
        f"{args.bogus} GETs of one assistant's config, each with its own made-up key, sent at "
        f"once, {args.readers} valid readers looping the same GET (cache hits) and /readyz "
        f"polled every 50 ms beside them. A 503 to a bogus request: it waited "
        f"DJANGO_QUEUE_WAIT_MS (5 s) for its turn in Django. Connections: the server's (this "
        f"script's own are closed first). Command: `.venv/bin/python bench/overload_bench.py"
        f"{options}`.",
        "",
        "| what | answers |",
        "|---|---|",
        f"| bogus-key requests | {counted(burst.bogus)} |",
        f"| valid reads beside them | {counted(burst.valid)} |",
        f"| /readyz (status, cache) | {counted(burst.readiness)} |",
        f"| PostgreSQL connections opened during the burst | {accepted} |",
        f"| most PostgreSQL connections held at once | {peak[0]} |",
        f"| burst answered within | {seconds:.1f} s |",
        f"| the server's log | {', '.join(f'{what}: {n}' for what, n in said.items())} |",
    ]
    print("\n".join(lines))
    write_section("## Bogus-key burst", lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
