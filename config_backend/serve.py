"""The production server (`make serve`, the container, the tests' live servers): Granian
serving config_backend.asgi, the ASGI fast path around Django. Why Granian and ASGI: README
"Production server" and bench/RESULTS.md "Servers" (bench/server_bench.py).

    python -m config_backend.serve [--host 0.0.0.0] [--port $PORT] [--workers $WEB_CONCURRENCY]

- Worker processes: WEB_CONCURRENCY (default 2), each with one event loop (uvloop). Cache hits
  are answered in the loop; Django runs everything else in threads, as its ASGI handler does.
  A worker that dies is started again (Granian's respawn; a crash loop stops the server).
- Long-lived responses (event streams) wait in the event loop and hold no thread, so up to
  MAX_REQUESTS_PER_WORKER requests may be in flight per worker (Granian's default, backlog /
  workers = 512, would let a thousand idle subscribers starve the reads; ten thousand
  subscribers on 2 workers are not always split evenly). Each is a socket: the soft limit of
  open files (often 1,024) is raised to the hard limit at start (`raise_open_files_limit`),
  and the workers inherit it. On SIGTERM, workers get WORKERS_KILL_SECONDS to finish, then are
  killed: a stream never finishes by itself.
- No lifespan protocol (Django's ASGI handler refuses it) and no access log: the app writes one
  line per request itself (core.ops.request_log). Granian's own lines (start, workers) are written
  in the app's format (LOG_FORMAT: one JSON object per line with `json`) at LOG_LEVEL.
- prometheus-client's multiprocess directory (core.ops.metrics): each worker writes its values to
  files there and a scrape adds them all up, so files left by an earlier run would be counted
  again. PROMETHEUS_MULTIPROC_DIR, when set, is emptied of them at start; when unset, a private
  directory is made for this run (and removed at its end). Workers inherit it. The live-mode
  gauges of a worker that died are dropped (`mark_process_dead`) within SWEEP_SECONDS; its
  counters still add up. Nothing here imports prometheus-client before the workers start: it
  picks its mode when first imported.
"""

import argparse
import glob
import os
import re
import resource
import shutil
import tempfile
import threading

APPLICATION = "config_backend.asgi:application"
MAX_REQUESTS_PER_WORKER = 32768
BACKLOG = 4096
WORKERS_KILL_SECONDS = 5
SWEEP_SECONDS = 5.0


def prepare_metrics_directory() -> str | None:
    """Empty PROMETHEUS_MULTIPROC_DIR of an earlier run's files, or set it to a new private
    directory, which is returned (the caller removes it at exit)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for path in glob.glob(os.path.join(directory, "*.db")):
            os.remove(path)
        return None
    made = tempfile.mkdtemp(prefix="config-backend-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made


def mark_process_dead(pid: int) -> None:
    """A dead worker's live-mode gauges stop counting; its counters still add up."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db")


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_dead_workers(directory: str, stop: threading.Event) -> None:
    """Every SWEEP_SECONDS, drop the live gauges of processes that are gone (Granian has no
    hook for a worker's exit, as gunicorn's child_exit)."""
    while not stop.wait(SWEEP_SECONDS):
        for name in os.listdir(directory):
            match = _LIVE_GAUGE_FILE.fullmatch(name)
            if match and not _is_running(int(match[1])):
                mark_process_dead(int(match[1]))


def raise_open_files_limit() -> int:
    """The soft RLIMIT_NOFILE raised to the hard limit (an unlimited hard limit: to the
    kernel's usual ceiling); returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1_048_576 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):  # a ceiling below `wanted` (fs.nr_open): keep the soft
            pass
    return soft


def log_config(log_format: str) -> dict:
    """Granian's loggers, writing to stderr in the app's format (core.ops.log_formats)."""
    formatter = "json_formatter" if log_format == "json" else "ConsoleFormatter"
    handler = {"class": "logging.StreamHandler", "formatter": "app", "stream": "ext://sys.stderr"}
    return {
        "formatters": {"app": {"()": f"core.ops.log_formats.{formatter}"}},
        "handlers": {"app": handler},
        "loggers": {
            "_granian": {"handlers": ["app"], "propagate": False},
            "granian.access": {"handlers": ["app"], "propagate": False},
        },
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104  (a container's port)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY") or 2))
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config_backend.settings")
    from django.conf import settings  # the settings module only: fails early on a bad value
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels

    log_level = LogLevels(str(settings.LOGGING["root"]["level"]).lower())
    raise_open_files_limit()
    made = prepare_metrics_directory()
    stop_sweeping = threading.Event()
    sweeper = threading.Thread(
        target=sweep_dead_workers,
        args=(os.environ["PROMETHEUS_MULTIPROC_DIR"], stop_sweeping),
        daemon=True,
    )
    server = Granian(
        APPLICATION,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGINL,
        workers=args.workers,
        loop=Loops.uvloop,
        backlog=BACKLOG,
        backpressure=MAX_REQUESTS_PER_WORKER,
        log_level=log_level,
        log_dictconfig=log_config(settings.LOG_FORMAT),
        log_access=False,
        respawn_failed_workers=True,
        workers_kill_timeout=WORKERS_KILL_SECONDS,
    )
    sweeper.start()
    try:
        server.serve()
    finally:
        stop_sweeping.set()
        if made:
            shutil.rmtree(made, ignore_errors=True)


if __name__ == "__main__":
    main()
