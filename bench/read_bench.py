"""Read-path benchmark: the config endpoint against the stack's ceiling, in one interleaved run.

    .venv/bin/python bench/read_bench.py            # full run, writes bench/RESULTS.md + PNG
    .venv/bin/python bench/read_bench.py --quick    # seconds; checks that it works

Starts its own PostgreSQL and Redis (or uses DATABASE_URL / REDIS_URL), loads one assistant per
tool count (1, 10, 100, 1000 tools), and serves, each under gunicorn with 2 workers:
- the app (cache hit: GET /api/v1/assistants/{id}/config/ with an API key; and `label hit`:
  the same with `?label=production`, a label pointing at the newest revision; and `hit-gzip`:
  the plain hit with `Accept-Encoding: gzip`, the gzip bytes stored with the entry),
- the app with CONFIG_CACHE_ENTRIES=0 (every request misses and builds from PostgreSQL),
- bench/ceiling_app.py: one Redis GET through django-redis (the ceiling), and from memory.
wrk drives each case in turn, round after round, so machine noise hits every case alike;
the table reports the median over rounds. Loopback only; every run is bounded in time.

    .venv/bin/python bench/read_bench.py --compare /path/to/old/checkout

compares two versions of the code in one interleaved run ("Read path: before and after",
with read_compare.png): the other checkout (a `git worktree add --detach DIR COMMIT`) gets
its own database on the same PostgreSQL and its own Redis, the same data loaded by the same
code, and its own servers started from its folder; each round runs every case on both
versions back to back, in alternating order, and the ratio after / before is taken within
each round, so the machine's load drifting between rounds cancels out.
"""

import gzip
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from common import (
    bench_arguments,
    create_keys,
    interleaved_rounds,
    load_assistants,
    pyplot,
    run_wrk,
    running_services,
    scratch,
    start_gunicorn,
    start_production_server,
    this_command,
    write_section,
)

from tests import throwaway_servers
from tests.live import call
from tests.throwaway_servers import free_port

TOOL_COUNTS = [1, 10, 100, 1000]
CASES = ["hit", "hit-gzip", "label hit", "miss", "ceiling", "memory"]
GZIP = {"Accept-Encoding": "gzip"}
LABEL = "production"


def load_config(tool_counts) -> tuple[dict, str]:
    """One assistant per tool count, each linked to that many tools, and a label at the newest
    revision; returns {tool count: assistant id} and a read key."""
    from config_backend.history.labels import label_move

    ids = load_assistants({f"bench-{n}": n for n in tool_counts})
    label_move(name=LABEL, revision="live", author="bench")
    return {n: ids[f"bench-{n}"] for n in tool_counts}, create_keys("read")["read"]


def write_results(results: dict, tool_counts, output: Path, meta: str) -> None:
    def med(case, n, field):
        return statistics.median(r[field] for r in results[(case, n)])

    lines = [
        meta,
        "",
        "| tools | case | req/s | p50 ms | p99 ms |",
        "|---:|---|---:|---:|---:|",
    ]
    for n in tool_counts:
        for case in CASES:
            lines.append(
                f"| {n} | {case} | {med(case, n, 'rps'):.0f} | {med(case, n, 'p50'):.2f} "
                f"| {med(case, n, 'p99'):.2f} |"
            )
    lines += [
        "",
        "| tools | hit / ceiling | hit / memory | miss / hit | label hit / hit |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n in tool_counts:
        hit = med("hit", n, "rps")
        lines.append(
            f"| {n} | {hit / med('ceiling', n, 'rps'):.2f} | {hit / med('memory', n, 'rps'):.2f} "
            f"| {med('miss', n, 'rps') / hit:.3f} | {med('label hit', n, 'rps') / hit:.2f} |"
        )
    write_section("## Read path", lines, output / "RESULTS.md")
    print("\n".join(lines))

    def draw(ax):
        for case in CASES:
            ax.plot(tool_counts, [med(case, n, "rps") for n in tool_counts], marker="o", label=case)
        ax.set_ylim(bottom=0)

    tools_chart(
        output / "read_bench.png",
        "Config read throughput (gunicorn, 2 workers)",
        "requests / second",
        draw,
    )


def tools_chart(path: Path, title: str, ylabel: str, draw) -> None:
    """A chart over the tool counts (log scale) in `path`; `draw(ax)` plots its lines."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    draw(ax)
    ax.set_xscale("log")
    ax.set_xlabel("tools per assistant")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def measure(url_and_key: tuple, case: tuple, args) -> dict:
    """One wrk run of `case` (its name, its tool count); a miss of 1,000 tools for half as long."""
    (url, key), (name, n) = url_and_key, case
    return run_wrk(
        url,
        seconds=args.seconds if name != "miss" or n < 1000 else args.seconds / 2,
        connections=args.connections,
        key=key,
        headers=GZIP if name == "hit-gzip" else None,
    )


def main() -> int:
    parser = bench_arguments(__doc__.splitlines()[0], rounds=5, seconds=4.0)
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="CHECKOUT",
        help="another checkout of this repository (the version before): both in one run",
    )
    parser.add_argument(
        "--tools",
        type=lambda text: [int(n) for n in text.split(",")],
        default=TOOL_COUNTS,
        help="the tool counts to measure (default 1,10,100,1000)",
    )
    args = parser.parse_args()
    tool_counts = args.tools
    if args.quick:
        args.rounds, args.seconds, tool_counts = 1, 1.0, [1, 10]
    if args.compare:
        return compare(args, tool_counts)

    with running_services():
        ids, key = load_config(tool_counts)
        ports = {name: free_port() for name in ("app", "miss", "ceiling")}
        start_gunicorn("config_backend.wsgi", ports["app"])
        start_gunicorn("config_backend.wsgi", ports["miss"], {"CONFIG_CACHE_ENTRIES": "0"})
        start_gunicorn("bench.ceiling_app", ports["ceiling"])

        from django_redis import get_redis_connection

        urls = {}
        for n in tool_counts:
            path = f"/api/v1/assistants/{ids[n]}/config/"
            status, _, body = call("GET", f"http://127.0.0.1:{ports['app']}{path}", key=key)
            assert status == 200 and len(json.loads(body)["tools"]) == n
            get_redis_connection("default").set(f"bench:config:{n}", body)
            _, _, again = call("GET", f"http://127.0.0.1:{ports['app']}{path}", key=key)
            assert again == body, "a hit returns the bytes of the miss"
            _, gzip_headers, gzipped = call(
                "GET", f"http://127.0.0.1:{ports['app']}{path}", key=key, headers=GZIP
            )
            assert gzip_headers["X-Config-Cache"] == "hit", "all codings stored with the miss"
            assert gzip.decompress(gzipped) == body
            _, _, cold = call("GET", f"http://127.0.0.1:{ports['miss']}{path}", key=key)
            assert cold == body, "the uncached server builds the same bytes"
            _, _, ceiling = call("GET", f"http://127.0.0.1:{ports['ceiling']}/redis/{n}/")
            assert ceiling == body
            label_url = f"http://127.0.0.1:{ports['app']}{path}?label={LABEL}"
            status, _, labelled = call("GET", label_url, key=key)
            assert status == 200 and len(json.loads(labelled)["tools"]) == n
            assert call("GET", label_url, key=key)[2] == labelled, "a label hit returns the same"
            urls[("hit", n)] = (f"http://127.0.0.1:{ports['app']}{path}", key)
            urls[("hit-gzip", n)] = (f"http://127.0.0.1:{ports['app']}{path}", key)
            urls[("label hit", n)] = (label_url, key)
            urls[("miss", n)] = (f"http://127.0.0.1:{ports['miss']}{path}", key)
            urls[("ceiling", n)] = (f"http://127.0.0.1:{ports['ceiling']}/redis/{n}/", None)
            urls[("memory", n)] = (f"http://127.0.0.1:{ports['ceiling']}/memory/{n}/", None)

        started = time.monotonic()
        results = interleaved_rounds(
            args.rounds,
            [(case, n) for n in tool_counts for case in CASES],
            lambda case: measure(urls[case], case, args),
        )
        meta = (
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores: gunicorn with 2 sync "
            f"workers per server, wrk 1 thread × {args.connections} connections, "
            f"{args.seconds:g} s per case, {args.rounds} interleaved rounds "
            f"({time.monotonic() - started:.0f} s), medians over rounds. "
            "`hit`: cached config with an API key; `hit-gzip`: the same with "
            "`Accept-Encoding: gzip` (stored compressed); `label hit`: the same read with "
            f"`?label={LABEL}` (a label at the newest revision); `miss`: CONFIG_CACHE_ENTRIES=0, "
            "built from PostgreSQL every time; `ceiling`: bare Django view, one Redis GET via "
            "django-redis; `memory`: the same view returning the bytes from memory. Command: "
            f"{this_command()}."
        )
        write_results(results, tool_counts, args.output, meta)
    return 0


# --- two versions in one run (--compare) --------------------------------------------------------

COMPARED = ["hit", "hit-gzip", "label hit", "miss", "hit, make serve"]
SIDES = ("before", "after")


def load_other_checkout(checkout: Path, env: dict, tool_counts) -> tuple[dict, str]:
    """load_config in the other checkout (its own models, migrations and label code) on the
    database and Redis of `env`: the same data by the same lines (load_assistants' source)."""
    source = "\n".join(
        [
            "import json, os, django",
            "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config_backend.settings')",
            "django.setup()",
            "from django.core.management import call_command",
            "call_command('migrate', verbosity=0)",
            f"CITY_SCHEMA, LABEL = {common.CITY_SCHEMA!r}, {LABEL!r}",
            inspect.getsource(load_assistants),
            inspect.getsource(create_keys),
            inspect.getsource(load_config),
            f"ids, key = load_config({list(tool_counts)!r})",
            "print(json.dumps([ids, key]))",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", source],
        cwd=checkout,
        env={**os.environ, **env, "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode:
        raise SystemExit(f"loading the data in {checkout} failed:\n{out.stderr}")
    ids, key = json.loads(out.stdout.splitlines()[-1])
    return {int(n): assistant for n, assistant in ids.items()}, key


def start_side(checkout: Path, env: dict) -> dict:
    """One version's servers, started from `checkout` on `env`: {case: base URL}."""
    ports = {name: free_port() for name in ("app", "miss", "serve")}
    start_gunicorn("config_backend.wsgi", ports["app"], env, cwd=checkout)
    start_gunicorn(
        "config_backend.wsgi", ports["miss"], {**env, "CONFIG_CACHE_ENTRIES": "0"}, cwd=checkout
    )
    start_production_server(ports["serve"], env, cwd=checkout)
    base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    return {
        "hit": base["app"],
        "hit-gzip": base["app"],
        "label hit": base["app"],
        "miss": base["miss"],
        "hit, make serve": base["serve"],
    }


def compared_urls(side_urls: dict, ids: dict, key: str, tool_counts) -> dict:
    """{(case, tools): (url, key)} of one version, each answered once to check it (a 200 with
    that many tools; the hit cases from the cache, in every coding)."""
    urls = {}
    for n in tool_counts:
        for case in COMPARED:
            url = f"{side_urls[case]}/api/v1/assistants/{ids[n]}/config/"
            if case == "label hit":
                url += f"?label={LABEL}"
            headers = GZIP if case == "hit-gzip" else None
            call("GET", url, key=key, headers=headers)
            status, answer_headers, body = call("GET", url, key=key, headers=headers)
            if case == "hit-gzip":
                body = gzip.decompress(body)
            assert status == 200 and len(json.loads(body)["tools"]) == n, (case, n, status)
            if case != "miss":
                assert answer_headers.get("X-Config-Cache") == "hit", (case, n)
            urls[(case, n)] = (url, key)
    return urls


def compare(args, tool_counts) -> int:
    checkout = args.compare.resolve()
    names = checkout_name(checkout), checkout_name(common.ROOT)
    with running_services() as after_env:
        ids, key = load_config(tool_counts)
        server_url = after_env["DATABASE_URL"].rsplit("/", 1)[0]
        import psycopg

        with psycopg.connect(server_url + "/postgres", autocommit=True) as connection:
            connection.execute("CREATE DATABASE config_before")
        before_env = {
            "DATABASE_URL": server_url + "/config_before",
            "REDIS_URL": throwaway_servers.start_redis(scratch("before")),
        }
        before_ids, before_key = load_other_checkout(checkout, before_env, tool_counts)
        urls = {
            "before": compared_urls(
                start_side(checkout, before_env), before_ids, before_key, tool_counts
            ),
            "after": compared_urls(start_side(common.ROOT, {}), ids, key, tool_counts),
        }

        started = time.monotonic()
        results = interleaved_rounds(
            args.rounds,
            [(side, case, n) for n in tool_counts for case in COMPARED for side in SIDES],
            lambda run: measure(urls[run[0]][run[1:]], run[1:], args),
            alternate=True,
        )
        load = os.getloadavg()[0]
        kept = Path(tempfile.gettempdir()) / f"read_compare-{os.getpid()}.json"
        kept.write_text(json.dumps([[*run, results[run]] for run in results]))
        print(f"every run's figures: {kept}", file=sys.stderr)
        meta = (
            f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores (load average "
            f"{load:.1f} at the end): `before` is {names[0]}, "
            f"`after` {names[1]}; each version on its own database (same PostgreSQL) and "
            "Redis, the same data. gunicorn with 2 sync workers per server and `make serve` "
            f"(Granian, ASGI, 2 workers); wrk 1 thread × {args.connections} connections, "
            f"{args.seconds:g} s per case, {args.rounds} rounds "
            f"({time.monotonic() - started:.0f} s), each case run on both versions back to back, "
            "every other round in reverse order. req/s: median over rounds; after / before: the "
            "median of the rounds' own ratios, with their quartiles and range. Command: "
            f"{this_command()}."
        )
        write_comparison(results, tool_counts, args.output, meta)
    return 0


def checkout_name(checkout: Path) -> str:
    """`abc1234` (the commit checked out) plus ` + changes` when its work tree differs."""

    def git(*argv):
        return subprocess.run(["git", *argv], cwd=checkout, capture_output=True, text=True).stdout

    changed = " + uncommitted changes" if git("status", "--porcelain", "-uno") else ""
    return f"`{git('rev-parse', '--short', 'HEAD').strip()}`{changed}"


def write_comparison(results: dict, tool_counts, output: Path, meta: str) -> None:
    def rps(side, case, n):
        return [r["rps"] for r in results[(side, case, n)]]

    def ratios(case, n):
        # A run that completed no request (a slow miss on a loaded machine) has no ratio.
        pairs = zip(rps("after", case, n), rps("before", case, n), strict=True)
        return [a / b for a, b in pairs if a and b] or [float("nan")]

    def quartiles(values):
        if len(values) < 2:
            return values[0], values[0]
        low, _, high = statistics.quantiles(values, n=4, method="inclusive")
        return low, high

    lines = [
        meta,
        "",
        "| tools | case | before req/s | after req/s | after / before | quartiles | range "
        "| rounds | before p50 ms | after p50 ms |",
        "|---:|---|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for n in tool_counts:
        for case in COMPARED:
            ratio = ratios(case, n)
            low, high = quartiles(ratio)
            p50 = {
                side: statistics.median(r["p50"] for r in results[(side, case, n)])
                for side in SIDES
            }
            lines.append(
                f"| {n} | {case} | {statistics.median(rps('before', case, n)):.0f} "
                f"| {statistics.median(rps('after', case, n)):.0f} "
                f"| {statistics.median(ratio):.2f} | {low:.2f}–{high:.2f} "
                f"| {min(ratio):.2f}–{max(ratio):.2f} | {len(ratio)} "
                f"| {p50['before']:.2f} | {p50['after']:.2f} |"
            )
    lines += ["", "![after / before](read_compare.png)"]
    write_section("## Read path: before and after", lines, output / "RESULTS.md")
    print("\n".join(lines))

    def draw(ax):
        for offset, case in enumerate(COMPARED):
            medians, lows, highs = [], [], []
            for n in tool_counts:
                ratio = ratios(case, n)
                low, high = quartiles(ratio)
                medians.append(statistics.median(ratio))
                lows.append(medians[-1] - low)
                highs.append(high - medians[-1])
            xs = [n * (1 + 0.08 * (offset - 2)) for n in tool_counts]  # side by side
            ax.errorbar(xs, medians, yerr=[lows, highs], marker="o", capsize=3, label=case)
        ax.axhline(1.0, color="grey", linewidth=1)

    tools_chart(
        output / "read_compare.png",
        "Config read: after the redesign / before, same run",
        "req/s after / before (median, quartiles)",
        draw,
    )


if __name__ == "__main__":
    sys.exit(main())
