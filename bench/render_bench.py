"""Rendering instructions: the server's endpoint (requests/s, latency) and the client (µs/call).

    .venv/bin/python bench/render_bench.py            # 3 rounds × 5 s per case
    .venv/bin/python bench/render_bench.py --quick    # seconds; checks that it works

Starts a throw-away PostgreSQL and Redis (or uses DATABASE_URL / REDIS_URL: their data is
wiped), two assistants whose instructions are templates, `small` (1 KB, 5 placeholders, 3
variables) and `large` (20 KB, 50 placeholders, 10 variables), and the production server
(`make serve`: config_backend.serve, 2 workers). wrk drives, round after round, the GET of the
small assistant's config (a cache hit: the reference), its detail GET (an ordinary Django/DRF
request) and the POST of /render/ for each (read
key; every render reads the config through the cache first). Then the client's
`ConfigClient.render` (config_client.templates.render on the served bundle, no network) is
timed in-process on the same two configs. Writes the "Rendering" section of RESULTS.md and
render_bench.png.
"""

import json
import os
import statistics
import sys
import time
import timeit

from common import (
    bench_arguments,
    create_keys,
    empty_config,
    run_wrk,
    running_services,
    scratch,
    start_production_server,
    this_command,
    write_section,
)

from tests.throwaway_servers import free_port

HEADING = "## Rendering (bench/render_bench.py)"
CHART = "render_bench.png"
SIZES = {
    # name: (placeholders, variables, characters of text between two placeholders)
    "small": (5, 3, 200),
    "large": (50, 10, 400),
}
POST_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s'
"""


def template(placeholders: int, variables: int, gap: int) -> tuple[str, list, dict]:
    """Instructions of `placeholders` placeholders naming `variables` declared variables (string,
    integer, boolean in turn), `gap` characters of text between them; and values for them."""
    kinds = ("string", "integer", "boolean")
    declared = [
        {"name": f"v{index}", "type": kinds[index % 3], "required": index % 2 == 0}
        for index in range(variables)
    ]
    text = "".join(
        f"{'x' * (gap - 9)} {{{{ v{index % variables} }}}}" for index in range(placeholders)
    )
    samples = {"string": "Ann Smith", "integer": 42, "boolean": True}
    values = {variable["name"]: samples[variable["type"]] for variable in declared}
    return text, declared, values


def load() -> dict:
    """The two assistants; {size: (assistant id, values)}."""
    from django.db import transaction

    from assistants.models import Assistant

    empty_config()
    loaded = {}
    for size, (placeholders, variables, gap) in SIZES.items():
        text, declared, values = template(placeholders, variables, gap)
        with transaction.atomic():
            assistant = Assistant(name=size, model="m", instructions=text, variables=declared)
            assistant.full_clean()
            assistant.save()
        loaded[size] = (str(assistant.id), values)
    return loaded


def client_microseconds(bundle: dict, size: str, values: dict, seconds: float) -> float:
    """µs per ConfigClient.render of this assistant (the client's path without the network)."""
    from config_client import ConfigClient
    from config_client._bundle import index_assistants

    client = ConfigClient("http://127.0.0.1:9", "unused", listen=False)
    client._bundle, client._index = bundle, index_assistants(bundle)  # as start() would serve it
    timer = timeit.Timer(lambda: client.render(size, **values))
    number, took = timer.autorange()  # at least 0.2 s
    number = max(number, int(number * seconds / took))
    return min(timer.repeat(number=number, repeat=3)) / number * 1e6


def main() -> int:
    parser = bench_arguments(__doc__.splitlines()[0], rounds=3, seconds=5)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 1
    with running_services(DEBUG="0"):
        from django.db import connection

        loaded = load()
        keys = create_keys("read")
        connection.close()
        port = free_port()
        start_production_server(port, {"LOG_LEVEL": "WARNING", "METRICS_ENABLED": "0"})
        base = f"http://127.0.0.1:{port}"
        scripts = {}
        for size, (_, values) in loaded.items():
            scripts[size] = scratch("wrk") / f"render-{size}.lua"
            scripts[size].write_text(POST_SCRIPT % json.dumps({"variables": values}))
        small = loaded["small"][0]
        cases = {
            "config GET (hit)": dict(url=f"{base}/api/v1/assistants/{small}/config/"),
            "assistant GET (Django, DRF)": dict(url=f"{base}/api/v1/assistants/{small}/"),
            **{
                f"render {size}": dict(
                    url=f"{base}/api/v1/assistants/{assistant_id}/render/", script=scripts[size]
                )
                for size, (assistant_id, _) in loaded.items()
            },
        }
        load_before = os.getloadavg()[0]
        results = {case: [] for case in cases}
        for how in cases.values():  # warm up: each worker's first requests, cache entries
            run_wrk(**how, seconds=1, connections=args.connections, key=keys["read"])
        for round_number in range(args.rounds):
            for case, how in cases.items():
                result = run_wrk(
                    **how, seconds=args.seconds, connections=args.connections, key=keys["read"]
                )
                assert result["errors"] == 0, result["output"]  # timeouts are counted below
                results[case].append(result)
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
        load_after = os.getloadavg()[0]

        import urllib.request

        request = urllib.request.Request(
            f"{base}/api/v1/config/", headers={"Authorization": f"Bearer {keys['read']}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            bundle = json.loads(answer.read())
        client = {
            size: client_microseconds(bundle, size, values, 0.2 if args.quick else 1.0)
            for size, (_, values) in loaded.items()
        }

    def med(case, key):
        return statistics.median(result[key] for result in results[case])

    def socket_errors(case):
        return "; ".join(r["socket_errors"] for r in results[case] if r["socket_errors"]) or "none"

    shapes = ", ".join(
        f"`{size}`: {p} placeholders of {v} variables, {len(template(p, v, g)[0]):,} characters"
        for size, (p, v, g) in SIZES.items()
    )
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores (shared; machine load "
        f"average {load_before:.1f} at the start, {load_after:.1f} at the end) with "
        f"{this_command()}: the production server (config_backend.serve, 2 workers, "
        f"LOG_LEVEL=WARNING) on PostgreSQL and Redis; wrk 1 thread × {args.connections} "
        f"connections, {args.seconds:g} s per case, {args.rounds} rounds, medians. Templates: "
        f"{shapes}. A render reads the resolved config through the cache (one MGET), then "
        "renders with config_client.templates — the function the client calls; the assistant "
        "GET is an ordinary Django/DRF request for comparison (the config GET's hit never "
        "reaches Django).",
        "",
        "| case | requests/s | p50 ms | p99 ms | socket errors (all rounds) |",
        "|---|---|---|---|---|",
        *(
            f"| {case} | {med(case, 'rps'):,.0f} | {med(case, 'p50'):.2f} | "
            f"{med(case, 'p99'):.2f} | {socket_errors(case)} |"
            for case in cases
        ),
        "",
        "Client (`ConfigClient.render`, in process, no network; best of 3):",
        "",
        "| template | µs per render | renders/s (one core) |",
        "|---|---|---|",
        *(f"| {size} | {us:.1f} | {1e6 / us:,.0f} |" for size, us in client.items()),
        "",
        f"![Rendering: server requests/s and client µs per render]({CHART})",
    ]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(1, 2, figsize=(10, 4))
        axes[0].bar(list(cases), [med(case, "rps") for case in cases], color="#4c72b0")
        axes[0].set_title("server: requests / second (2 workers)", fontsize=10)
        axes[1].bar(list(client), list(client.values()), color="#55a868")
        axes[1].set_title("client: µs per render", fontsize=10)
        for axis in axes:
            axis.grid(True, axis="y", alpha=0.3)
        figure.tight_layout()
        args.output.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.output / CHART, dpi=100)
    except ImportError:
        lines = lines[:-1] + ["(matplotlib not installed: no chart)"]
    write_section(HEADING, lines, args.output / "RESULTS.md")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
