"""What the benchmark scripts share: throw-away PostgreSQL/Redis, Django set-up, the data they
read, servers, wrk runs and their options, timing, and their sections of RESULTS.md."""

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import throwaway_servers  # noqa: E402
from tests.live import wait_until_serving  # noqa: E402

_workdirs: list[Path] = []
_servers: list[subprocess.Popen] = []  # every server start_server started


@contextlib.contextmanager
def running_services(*, redis: bool = True, postgres_settings: dict | None = None, **env: str):
    """A benchmark's run: throw-away PostgreSQL (and Redis) as start_services says, this
    process's Django set up on them with `env` besides; yields that environment. At the end,
    every server start_server started is stopped, then the services, and their work
    directories (scratch() ones too) are removed."""
    try:
        env = {**start_services(redis=redis, postgres_settings=postgres_settings), **env}
        setup_django(env)
        yield env
    finally:
        stop(_servers)
        stop_services()


def scratch(name: str) -> Path:
    """A directory for this run's own files (wrk scripts, metrics), removed with the services."""
    path = _workdirs[0] / name
    path.mkdir(exist_ok=True)
    return path


def start_services(*, redis: bool = True, postgres_settings: dict | None = None) -> dict:
    """DATABASE_URL (and REDIS_URL) of servers started here, unless already set in the env;
    `postgres_settings`: for the PostgreSQL started here (its log: `postgres_log()`)."""
    workdir = Path(tempfile.mkdtemp(prefix="config-backend-bench-"))
    _workdirs.append(workdir)
    env = {
        "DATABASE_URL": os.environ.get("DATABASE_URL")
        or throwaway_servers.start_postgres(workdir, postgres_settings)
    }
    if redis:
        env["REDIS_URL"] = os.environ.get("REDIS_URL") or throwaway_servers.start_redis(workdir)
    return env


def postgres_log() -> Path:
    """The log of the PostgreSQL start_services started."""
    return _workdirs[0] / "pg.log"


def stop_services() -> None:
    throwaway_servers.pytest_unconfigure(None)
    for workdir in _workdirs:
        shutil.rmtree(workdir, ignore_errors=True)


def setup_django(env: dict) -> None:
    """Configure this process for `env` and migrate its database."""
    os.environ.update(env)
    os.environ.setdefault("SECRET_KEY", "bench-" + os.urandom(8).hex())
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config_backend.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# --- data --------------------------------------------------------------------------------------

CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}


def load_assistants(tools: dict[str, int], instructions: str = "You help. " * 20) -> dict:
    """Assistants named as `tools`' keys, each linked to as many tools of its own (weather
    tools taking a city), in one transaction: one revision of the history, which records the
    assistants (saved one by one) but not their tools and links (bulk-created, quicker).
    Returns {name: id}."""
    from django.db import transaction

    from assistants.models import Assistant
    from tools.models import AssistantToolLink, Tool

    with transaction.atomic():
        assistants = [
            Assistant.objects.create(name=name, model="gpt-4o-mini", instructions=instructions)
            for name in tools
        ]
        tools_of = {
            assistant: [
                Tool(
                    name=f"{assistant.name}_tool_{i}",
                    tool_type="weather",
                    description=f"Tool {i} of {tools[assistant.name]}.",
                    input_schema=CITY_SCHEMA,
                )
                for i in range(tools[assistant.name])
            ]
            for assistant in assistants
        }
        Tool.objects.bulk_create(tool for own in tools_of.values() for tool in own)
        AssistantToolLink.objects.bulk_create(
            AssistantToolLink(assistant=assistant, tool=tool)
            for assistant, own in tools_of.items()
            for tool in own
        )
    return {assistant.name: str(assistant.id) for assistant in assistants}


def empty_config() -> None:
    """Delete every thread, link, tool, assistant and snippet at once (no signals, no history):
    the database of a benchmark that starts from nothing."""
    from assistants.models import Assistant
    from snippets.models import Snippet
    from threads.models import UserAssistantThread
    from tools.models import AssistantToolLink, Tool

    for model in (UserAssistantThread, AssistantToolLink, Tool, Assistant, Snippet):
        model.objects.all()._raw_delete(model.objects.db)


def edit_instructions(base_url: str, assistant_id: str, write_key: str, text: str) -> None:
    """Change an assistant's instructions through the API (a PATCH: one revision); fails
    unless it is answered 200."""
    from tests.live import call

    status, _, body = call(
        "PATCH",
        f"{base_url}/api/v1/assistants/{assistant_id}/",
        key=write_key,
        body={"instructions": text},
    )
    if status != 200:
        raise RuntimeError(f"the edit failed: {status} {body[:200]}")


def create_keys(*scopes: str) -> dict[str, str]:
    """An API key of each scope (named `bench-<scope>`): {scope: key}."""
    from core.models import APIKey

    return {
        scope: APIKey.objects.create_key(name=f"bench-{scope}", scope=scope)[1] for scope in scopes
    }


# --- servers ------------------------------------------------------------------------------------


def serve_command(port: int, workers: int = 2) -> list[str]:
    """What `make serve` runs (the production server), on loopback."""
    return [
        sys.executable,
        "-m",
        "config_backend.serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def start_production_server(port: int, env: dict | None = None, cwd: Path = ROOT):
    """What `make serve` runs (config_backend.serve: Granian, ASGI, 2 workers) on
    127.0.0.1:port, with this process's environment plus `env`, from the checkout `cwd`."""
    return start_server(serve_command(port), port, env, cwd=cwd)


def start_gunicorn(
    app: str, port: int, env: dict | None = None, workers: int = 2, cwd: Path = ROOT
):
    """gunicorn serving `app` of the checkout `cwd` on 127.0.0.1:port with this process's
    environment plus `env`."""
    command = ["-m", "gunicorn", app, "--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
    return start_server([sys.executable, *command, "--log-level", "warning"], port, env, cwd=cwd)


def start_server(
    command: list[str],
    port: int,
    env: dict | None = None,
    path: str = "/healthz",
    cwd: Path = ROOT,
):
    """Run `command` (a server listening on 127.0.0.1:port) in the checkout `cwd` (this one
    unless told) with this process's environment plus `env`, and wait until `path` answers.

    Its output (the request log too) goes to a file in the work directory: a pipe nobody reads
    would fill and stall the server."""
    if not _workdirs:
        _workdirs.append(Path(tempfile.mkdtemp(prefix="config-backend-bench-")))
    output = server_log(port)
    with output.open("ab") as sink:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    _servers.append(proc)
    wait_until_serving(f"http://127.0.0.1:{port}{path}", proc, output=output)
    return proc


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid` and every descendant alive
    (a server and its workers), read from /proc: what a server spent, whatever the load beside."""
    parents, spent = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) "
        parents[int(entry)] = int(fields[1])
        spent[int(entry)] = int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    tree = {pid}
    changed = True
    while changed:
        changed = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                changed = True
    return sum(spent.get(member, 0) for member in tree) / os.sysconf("SC_CLK_TCK")


def server_log(port: int) -> Path:
    """Where the server start_server started on `port` writes (its request log too)."""
    return _workdirs[-1] / f"server-{port}.log"


def stop(procs) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- measuring ----------------------------------------------------------------------------------


class _WrkBenchArguments(argparse.ArgumentParser):
    def parse_args(self, *args, **kwargs):
        parsed = super().parse_args(*args, **kwargs)
        if not shutil.which("wrk"):
            print("wrk not found: apt-get install wrk (or run scripts/install-system-deps)")
            raise SystemExit(2)
        return parsed


def bench_arguments(description: str, *, rounds: int, seconds: float) -> argparse.ArgumentParser:
    """The options of a benchmark that runs wrk in interleaved rounds; a script adds its own.
    Parsing them ends the run (exit status 2) if wrk is not installed."""
    parser = _WrkBenchArguments(description=description)
    parser.add_argument("--quick", action="store_true", help="short run that checks it works")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--seconds", type=float, default=seconds, help="per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--output", type=Path, default=ROOT / "bench", help="RESULTS.md's folder")
    return parser


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_wrk(
    url: str,
    *,
    seconds: float,
    connections: int = 16,
    threads: int = 1,
    key: str | None = None,
    headers: dict | None = None,
    script: Path | None = None,
) -> dict:
    """One wrk run (whole seconds, at least one) against `url`, with an API key and other
    headers, and a Lua script: its req/s, p50 and p99 latency (ms), requests, non-2xx/3xx
    answers (`errors`), socket errors (None, or wrk's line) and wrk's whole `output`."""
    command = ["wrk", "-t", str(threads), "-c", str(connections)]
    command += ["-d", f"{max(1, round(seconds))}s", "--latency"]
    if script:
        command += ["-s", str(script)]
    if key:
        command += ["-H", f"Authorization: Bearer {key}"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=seconds + 60
    ).stdout
    latency = {}
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        latency[pct] = float(value) * _UNITS[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency["50"],
        "p99": latency["99"],
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
        "output": out,
    }


def interleaved_rounds(rounds: int, cases: list, measure, *, alternate: bool = False) -> dict:
    """{case: [measure(case) of each round]}: every case in turn, round after round, so the
    machine's load drifting hits every case alike (`alternate`: every other round in reverse
    order, so neither of two neighbours always runs first). A run answered with errors ends the
    benchmark (each measure is one run_wrk)."""
    results: dict = {case: [] for case in cases}
    for round_number in range(rounds):
        order = cases[::-1] if alternate and round_number % 2 else cases
        for case in order:
            result = measure(case)
            if result["errors"]:
                raise SystemExit(f"{case}: {result['errors']} error responses")
            results[case].append(result)
        print(f"round {round_number + 1}/{rounds} done", file=sys.stderr)
    return results


def timed(what: str, function):
    """(seconds, result) of calling `function`; prints how long `what` took."""
    started = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - started
    print(f"{what}: {seconds:.3f} s", flush=True)
    return seconds, result


# --- results ------------------------------------------------------------------------------------

RESULTS = ROOT / "bench" / "RESULTS.md"


def this_command() -> str:
    """How this run was started, as its section says: the script and the options it was given,
    less where it wrote (`--output`)."""
    argv = sys.argv[1:]
    kept = [
        arg
        for index, arg in enumerate(argv)
        if not (arg.startswith("--output") or (index and argv[index - 1] == "--output"))
    ]
    return f"`.venv/bin/python bench/{Path(sys.argv[0]).name}{''.join(f' {a}' for a in kept)}`"


def table_head(meta: str, header: str, *, text_columns: int = 1) -> list[str]:
    """The first lines of a results section: `meta`, then the table's `header` ("| a | b |") and
    its alignment row: the first `text_columns` columns left, the figures right."""
    columns = header.count("|") - 1
    return [meta, "", header, "|" + "---|" * text_columns + "---:|" * (columns - text_columns)]


def pyplot():
    """matplotlib's pyplot, drawing into files (Agg), or None when matplotlib is not installed
    (said once; the script then writes its tables without the chart)."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib not installed: no chart")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_section(heading: str, lines: list[str], results: Path = RESULTS) -> None:
    """Write the `heading` section of `results` (the rest of the file is kept)."""
    results.parent.mkdir(parents=True, exist_ok=True)
    section = "\n".join([heading, "", *lines]) + "\n"
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    start = text.find(heading + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + ("" if end == -1 else text[end:])
    results.write_text(text)
