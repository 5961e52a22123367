"""Probe of django-tasks' DatabaseBackend (django-tasks 0.12.0, django-tasks-db 0.13.0) on a
throw-away PostgreSQL: no-op tasks per second of one `db_worker`, and what a SIGKILL of the
worker mid-task leaves (docs/webhooks.md, "Why a loop of our own"). Not a dependency of the
project: install both into a folder of their own first.

    .venv/bin/pip install --target /tmp/dt --no-deps \\
        django-tasks==0.12.0 django-tasks-db==0.13.0 django-stubs-ext
    DJANGO_TASKS_SITE=/tmp/dt .venv/bin/python bench/django_tasks_probe/run.py
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests import throwaway_servers  # noqa: E402


def main() -> None:
    site = os.environ["DJANGO_TASKS_SITE"]
    work = Path(tempfile.mkdtemp(prefix="django-tasks-probe-"))
    url = throwaway_servers.start_postgres(work)
    os.environ.update(
        PGPORT=url.rsplit(":", 1)[1].split("/")[0],
        DJANGO_SETTINGS_MODULE="django_tasks_probe.settings",
        PYTHONPATH=f"{site}:{HERE.parent}",
    )
    sys.path[:0] = [site, str(HERE.parent)]
    try:
        probe()
    finally:
        throwaway_servers.pytest_unconfigure(None)


def probe() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django_tasks_db.models import DBTaskResult

    from django_tasks_probe.tasks import noop, slow

    call_command("migrate", verbosity=0)
    worker = [sys.executable, "-m", "django", "db_worker", "--no-startup-delay"]
    count = 2000
    for _ in range(count):
        noop.enqueue()
    started = time.time()
    subprocess.run([*worker, "--batch", "--interval", "0"], check=True, capture_output=True)
    print(f"no-op tasks/s, one db_worker: {count / (time.time() - started):.0f}")

    result = slow.enqueue()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    first = subprocess.Popen([*worker, "--interval", "0.1"], **quiet)
    while DBTaskResult.objects.get(id=result.id).status != "RUNNING":
        time.sleep(0.1)
    first.kill()
    first.wait()
    second = subprocess.Popen([*worker, "--interval", "0.1"], **quiet)
    time.sleep(40)
    status = DBTaskResult.objects.get(id=result.id).status
    print(f"40 s after a SIGKILL mid-task, a new worker running: the task is {status}")
    second.kill()
    second.wait()


if __name__ == "__main__":
    main()
