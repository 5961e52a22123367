"""Pytest plugin that starts a throw-away PostgreSQL and Redis for the test run.

Loaded with `-p tests.throwaway_servers` (see pyproject.toml). It must run before pytest-django
imports the settings, which read DATABASE_URL and REDIS_URL once: so it starts the servers in a
`pytest_load_initial_conftests` wrapper, which runs before any plugin's implementation.

If DATABASE_URL / REDIS_URL are already set, those servers are used and nothing is started.
Both servers live in a temporary directory on free loopback ports and are stopped at the end.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

_started: list[tuple[str, subprocess.Popen | Path]] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bindir() -> Path:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        bindir = Path(out.stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    except (OSError, subprocess.CalledProcessError):
        pass
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    raise pytest.UsageError("PostgreSQL server binaries (initdb) not found; run `make deps`.")


def _wait_for_port(port: int, what: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise pytest.UsageError(f"{what} exited with {proc.returncode} during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise pytest.UsageError(f"{what} did not open port {port} within {timeout}s")


def start_postgres(workdir: Path, settings: dict[str, str] | None = None) -> str:
    """A PostgreSQL in `workdir` (its log: workdir/pg.log), with `settings` (name: value) on top
    of the defaults here; returns the URL of its `config_backend` database."""
    bindir = _pg_bindir()
    datadir = workdir / "pg"
    as_user = {}
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root.
        shutil.chown(workdir, "postgres", "postgres")
        as_user = {"user": "postgres", "group": "postgres", "extra_groups": []}
    subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        **as_user,
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            str(bindir / "postgres"),
            "-D",
            str(datadir),
            "-p",
            str(port),
            "-k",
            str(workdir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
            *(
                part
                for name, value in (settings or {}).items()
                for part in ("-c", f"{name}={value}")
            ),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "pg.log", "wb"),  # noqa: SIM115 (kept open for the server)
        **as_user,
    )
    _started.append(("postgres", proc))
    _wait_for_port(port, "PostgreSQL", proc)
    # The port opens slightly before the server accepts logins.
    for _ in range(100):
        ok = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
        )
        if ok.returncode == 0:
            break
        time.sleep(0.1)
    server_url = f"postgres://postgres@127.0.0.1:{port}"
    import psycopg

    with psycopg.connect(server_url + "/postgres", autocommit=True) as connection:
        connection.execute("CREATE DATABASE config_backend")
    return server_url + "/config_backend"


def spawn_redis(workdir: Path, port: int) -> subprocess.Popen:
    """A Redis server on 127.0.0.1:port, no persistence; the caller waits for and stops it."""
    binary = shutil.which("redis-server")
    if not binary:
        raise pytest.UsageError(
            "redis-server not found; run `make deps` (apt-get install redis-server)."
        )
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            # As in production (docs/consistency.md, "Sizing Redis"): at maxmemory, evict only
            # what expires.
            "--maxmemory-policy",
            "volatile-lru",
        ],
        stdout=open(workdir / f"redis-{port}.log", "ab"),  # noqa: SIM115 (kept open for the server)
        stderr=subprocess.STDOUT,
    )
    _wait_for_port(port, "Redis", proc)
    return proc


def start_redis(workdir: Path) -> str:
    port = free_port()
    _started.append(("redis", spawn_redis(workdir, port)))
    return f"redis://127.0.0.1:{port}/0"


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    if not hasattr(early_config, "workerinput"):
        workdir = Path(tempfile.mkdtemp(prefix="config-backend-test-"))
        _started.append(("workdir", workdir))
        os.environ.setdefault("SECRET_KEY", "test-only-secret-key-" + os.urandom(8).hex())
        if not os.environ.get("DATABASE_URL"):
            os.environ["DATABASE_URL"] = start_postgres(workdir)
        if not os.environ.get("REDIS_URL"):
            os.environ["REDIS_URL"] = start_redis(workdir)
        os.environ["TEST_SERVICES_DIR"] = str(workdir)
    return (yield)


def pytest_unconfigure(config):
    while _started:
        kind, item = _started.pop()
        if kind == "workdir":
            shutil.rmtree(item, ignore_errors=True)
            continue
        item.terminate()
        try:
            item.wait(timeout=10)
        except subprocess.TimeoutExpired:
            item.kill()


def pytest_report_header(config):
    return [
        f"database: {os.environ.get('DATABASE_URL')}",
        f"cache: {os.environ.get('REDIS_URL')}",
    ]
