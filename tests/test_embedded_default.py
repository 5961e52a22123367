"""A newcomer's first run: SQLite + local-memory cache, demo data, admin login, no services."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.live import ROOT, AdminBrowser, call, server

PROJECT_PARTS = [
    *("manage.py", "config_backend", "core", "assistants", "tools", "threads", "webhooks"),
    *("outcomes", "demo"),
]


@pytest.fixture
def fresh_copy(tmp_path):
    """The project in an empty folder, so the embedded SQLite file starts from nothing."""
    for part in PROJECT_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / part)
    return tmp_path


def manage(cwd, *args) -> str:
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": "", "REDIS_URL": "", "SECRET_KEY": ""}
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_the_first_run_serves_the_demo_config_in_the_admin(fresh_copy):
    manage(fresh_copy, "migrate", "--noinput")
    manage(fresh_copy, "import_config", "demo/config.json", "--no-backup")
    assert (fresh_copy / "db.sqlite3").exists()
    password = re.search(r"password: (\S+)", manage(fresh_copy, "demo_admin")).group(1)
    key = manage(fresh_copy, "create_api_key", "newcomer", "--scope", "write").splitlines()[-1]

    env = {"DEBUG": "1", "DATABASE_URL": "", "REDIS_URL": "", "SECRET_KEY": ""}
    argv = [sys.executable, "manage.py", "runserver", "127.0.0.1:{port}", "--noreload"]
    with server(env=env, cwd=fresh_copy, argv=argv) as base_url:
        page = AdminBrowser(base_url).log_in("admin", password, "/admin/assistants/assistant/")
        assert "Select assistant to change" in page
        assert "Secretary" in page

        # The API on the local-memory cache: a change is the next read (one process).
        status, _, body = call("GET", base_url + "/api/v1/config/", key=key)
        bundle = json.loads(body)
        secretary = next(a for a in bundle["assistants"] if a["id"] == bundle["secretary"])
        call("GET", base_url + "/api/v1/config/", key=key)  # a hit
        status, _, _ = call(
            "PATCH",
            f"{base_url}/api/v1/assistants/{secretary['id']}/",
            key=key,
            body={"instructions": "Changed locally."},
        )
        assert status == 200
        _, _, body = call("GET", base_url + "/api/v1/config/", key=key)
        changed = next(a for a in json.loads(body)["assistants"] if a["id"] == secretary["id"])
        assert changed["instructions"] == "Changed locally."

        # A change committed by another process (an import in a second terminal) is the
        # server's next read, though its local-memory cache holds the old entry.
        document = json.loads((fresh_copy / "demo" / "config.json").read_text())
        for entry in document["assistants"]:
            if entry["name"] == secretary["name"]:
                entry["instructions"] = "Imported in another terminal."
        (fresh_copy / "changed.json").write_text(json.dumps(document))
        manage(fresh_copy, "import_config", "changed.json", "--no-backup")
        _, _, body = call("GET", base_url + "/api/v1/config/", key=key)
        imported = next(a for a in json.loads(body)["assistants"] if a["id"] == secretary["id"])
        assert imported["instructions"] == "Imported in another terminal."
        _, _, body = call("GET", f"{base_url}/api/v1/assistants/{secretary['id']}/config/", key=key)
        assert json.loads(body)["instructions"] == "Imported in another terminal."

        # A key revoked by another process is refused on the next request.
        revoke = "APIKey.objects.filter(name='newcomer').update(revoked=True)"
        manage(fresh_copy, "shell", "-c", f"from core.models import APIKey; {revoke}")
        status, _, _ = call("GET", base_url + "/api/v1/config/", key=key)
        assert status == 401
