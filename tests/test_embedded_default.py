"""A newcomer's first run: SQLite + local-memory cache, demo data, admin login, no services."""

import json
import re
import sys

import pytest

from tests.factories import EMBEDDED, embedded_manage
from tests.live import AdminBrowser, call, server


@pytest.mark.slow
def test_the_first_run_serves_the_demo_config_in_the_admin(fresh_copy):
    embedded_manage(fresh_copy, "migrate", "--noinput")
    embedded_manage(fresh_copy, "import_config", "demo/config.json", "--no-backup")
    assert (fresh_copy / "db.sqlite3").exists()
    password = re.search(r"password: (\S+)", embedded_manage(fresh_copy, "demo_admin")).group(1)
    made = embedded_manage(fresh_copy, "create_api_key", "newcomer", "--scope", "write")
    key = made.splitlines()[-1]

    env = EMBEDDED
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
        embedded_manage(fresh_copy, "import_config", "changed.json", "--no-backup")
        _, _, body = call("GET", base_url + "/api/v1/config/", key=key)
        imported = next(a for a in json.loads(body)["assistants"] if a["id"] == secretary["id"])
        assert imported["instructions"] == "Imported in another terminal."
        _, _, body = call("GET", f"{base_url}/api/v1/assistants/{secretary['id']}/config/", key=key)
        assert json.loads(body)["instructions"] == "Imported in another terminal."

        # A key revoked by another process is refused on the next request.
        revoke = "APIKey.objects.filter(name='newcomer').update(revoked=True)"
        embedded_manage(fresh_copy, "shell", "-c", f"from core.models import APIKey; {revoke}")
        status, _, _ = call("GET", base_url + "/api/v1/config/", key=key)
        assert status == 401
