"""gunicorn reads this file from the directory it starts in (its default `./gunicorn.conf.py`):
so every start of the app, `make serve`, the container, tests and benchmarks, gets it.

It prepares prometheus-client's multiprocess directory (core.metrics): each worker writes its
metric values to files there and a scrape adds them all up, so files left by an earlier run
would be counted again. PROMETHEUS_MULTIPROC_DIR, when set, is emptied of them at start; when
unset, a private directory is made for this run (and removed at its end). Workers inherit it.
Nothing here imports prometheus-client before the workers are forked: it picks its mode when
first imported.
"""

import glob
import os
import shutil
import tempfile

_made_here = None


def on_starting(server):
    global _made_here
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for path in glob.glob(os.path.join(directory, "*.db")):
            os.remove(path)
    else:
        _made_here = tempfile.mkdtemp(prefix="config-backend-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _made_here


def child_exit(server, worker):
    # A dead worker's gauges stop counting ("live" modes); its counters still add up.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _made_here:
        shutil.rmtree(_made_here, ignore_errors=True)
