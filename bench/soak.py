"""Concurrency soak: writers edit through the API while readers on two app instances check that
no read begun after a write's commit returns older data.

    .venv/bin/python bench/soak.py                # about a minute
    .venv/bin/python bench/soak.py --seconds 5    # a short check (the test suite runs this)

Starts PostgreSQL, Redis and two app instances (the production server, 2 workers each) on
loopback. Each writer owns some assistants, tools, delegates and links: it PATCHes the
`instructions` / `description` to an increasing sequence number, renames delegates (the number
ends the name, which every delegating config shows), links or unlinks a tool, and PATCHes the
text of a snippet each assistant's instructions include (its expanded instructions show the
snippet's number), through either instance. A write counts as committed when its 200
has arrived. Before each read, a reader notes the highest committed number of every object;
the config it then gets (one assistant's, or the bundle, from either instance) must show at
least those numbers (the load and its check: tests/load.py, shared with the scale-out and
database-restart tests). Prints the counts; exits 1 on any 5xx, stale read or unexpected status.
"""

import argparse
import sys
import time

from common import running_services, start_production_server

from tests.load import MixedLoad, seed_dependencies, seed_rows, seed_snippets
from tests.throwaway_servers import free_port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--readers", type=int, default=4)
    args = parser.parse_args()
    args.seconds = min(args.seconds, 300.0)  # bounded, whatever is asked

    with running_services():
        assistant_ids, tool_ids, read_key, write_key = seed_rows()
        delegate_ids, link_pairs = seed_dependencies(assistant_ids)
        snippets = seed_snippets(assistant_ids)
        ports = [free_port(), free_port()]
        for port in ports:
            start_production_server(port)
        load = MixedLoad(
            [f"http://127.0.0.1:{port}" for port in ports],
            assistant_ids=assistant_ids,
            tool_ids=tool_ids,
            read_key=read_key,
            write_key=write_key,
            writers=args.writers,
            readers=args.readers,
            delegate_ids=delegate_ids,
            link_pairs=link_pairs,
            snippets=snippets,
            allowed=(200, 201, 204),
        )
        started = time.monotonic()
        load.run(args.seconds)
        elapsed = time.monotonic() - started

    writes = load.count("PATCH", 200) + load.count("POST", 201) + load.count("DELETE", 204)
    reads = load.count("GET")
    errors = sum(load.unexpected().values())
    server_errors = load.count("PATCH", "5xx") + load.count("GET", "5xx")
    print(
        f"soak: {elapsed:.0f} s, {args.writers} writers, {args.readers} readers, 2 instances: "
        f"{writes} writes, {reads} reads ({load.checked} configs checked), {load.stale} stale, "
        f"{server_errors} 5xx, {errors - server_errors} other non-200"
    )
    for problem in load.problems:
        print("  " + problem)
    ok = load.stale == errors == 0 and writes > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
