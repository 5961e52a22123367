"""What the benchmark scripts share: throw-away PostgreSQL/Redis, Django set-up, servers."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import throwaway_servers  # noqa: E402
from tests.live import wait_until_serving  # noqa: E402

_workdirs: list[Path] = []


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


def start_gunicorn(app: str, port: int, env: dict | None = None, workers: int = 2):
    """gunicorn serving `app` on 127.0.0.1:port with this process's environment plus `env`."""
    command = ["-m", "gunicorn", app, "--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
    return start_server([sys.executable, *command, "--log-level", "warning"], port, env)


def start_server(command: list[str], port: int, env: dict | None = None, path: str = "/healthz"):
    """Run `command` (a server listening on 127.0.0.1:port) with this process's environment
    plus `env`, and wait until `path` answers.

    Its output (the request log too) goes to a file in the work directory: a pipe nobody reads
    would fill and stall the server."""
    if not _workdirs:
        _workdirs.append(Path(tempfile.mkdtemp(prefix="config-backend-bench-")))
    output = server_log(port)
    with output.open("ab") as sink:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    wait_until_serving(f"http://127.0.0.1:{port}{path}", proc, output=output)
    return proc


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


RESULTS = ROOT / "bench" / "RESULTS.md"


def write_section(heading: str, lines: list[str], results: Path = RESULTS) -> None:
    """Write the `heading` section of `results` (the rest of the file is kept)."""
    section = "\n".join([heading, "", *lines]) + "\n"
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    start = text.find(heading + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + ("" if end == -1 else text[end:])
    results.write_text(text)
