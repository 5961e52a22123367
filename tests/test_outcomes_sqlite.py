"""The embedded default (SQLite) adds outcomes with the same upsert: rows of one bucket add up,
a repeated Idempotency-Key adds nothing, and a null label or variant is one bucket key."""

import os
import subprocess
import sys

import pytest

from tests.live import ROOT

pytestmark = pytest.mark.slow

SCRIPT = """
from django.utils import timezone
from assistants.models import Assistant
from core.models import Revision
from outcomes.models import OutcomeBucket
from outcomes.services import outcomes_add

assistant = Assistant.objects.create(name="Solo", model="m", instructions="Hi.")
revision = Revision.objects.order_by("-number").first().number
row = {"assistant": str(assistant.id), "revision": revision, "label": None, "variant": None,
       "period_start": timezone.now().isoformat(), "runs": 2, "errors": 1}
for key in ["a", "a", "b", None]:
    rows = [row, {**row, "variant": "candidate"}, row]
    outcomes_add(body={"outcomes": rows}, idempotency_key=key)
print(sorted(OutcomeBucket.objects.values_list("variant", "runs", "errors")))
"""


def test_sqlite_adds_into_the_same_buckets_and_honours_idempotency_keys(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "",
        "SECRET_KEY": "test",
    }

    def manage(*args):
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    manage("migrate", "--no-input")
    # Three batches applied (a, b, no key), two rows of the base bucket in each.
    assert manage("shell", "-c", SCRIPT).strip().splitlines()[-1] == (
        "[('', 12, 6), ('candidate', 6, 3)]"
    )
