"""gunicorn reads this file from the directory it starts in (its default `./gunicorn.conf.py`).
gunicorn is no longer the production server (`make serve` runs config_backend.serve); the
benchmarks still start it (bench/), and get the same metrics directory handling from here:
prometheus-client's multiprocess directory prepared at start as config_backend.serve does it,
a dead worker's live gauges dropped, a private directory removed at exit.
"""

import shutil

from config_backend.serve import mark_process_dead, prepare_metrics_directory

_made_here = None


def on_starting(server):
    global _made_here
    _made_here = prepare_metrics_directory()


def child_exit(server, worker):
    mark_process_dead(worker.pid)


def on_exit(server):
    if _made_here:
        shutil.rmtree(_made_here, ignore_errors=True)
