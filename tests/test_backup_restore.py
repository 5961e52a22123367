"""backup_service and restore_service: a backup restored into an empty database gives the same
export, its API keys work, and the cache is retired automatically (an entry cached before the
restore, which would match the restored revision, is never served); every bad input is a clear
exit 1 that changes nothing."""

import io
import json
import os
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from assistants.models import Assistant
from assistants.prompts import strictly_expanded
from config_backend.backup import PG_MAGIC, pg_connection
from core import store
from core.models import APIKey, ConfigRevision
from tests.factories import run_manage
from tests.live import ROOT, call, live_database_url, server
from tests.throwaway_servers import free_port
from threads.models import UserAssistantThread

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DEMO = ROOT / "demo" / "config.json"


def export(**options) -> bytes:
    out = io.StringIO()
    call_command("export_config", "--include-threads", stdout=out, **options)
    return out.getvalue().encode()


@pytest.fixture
def service_state():
    """The demo config, threads and two API keys in the test database; returns the keys."""
    call_command("import_config", str(DEMO), "--no-backup", stdout=io.StringIO())
    secretary = Assistant.objects.get(is_secretary=True)
    for user in ("42", "43"):
        UserAssistantThread.objects.create(
            user_id=user,
            assistant=secretary,
            thread_id=f"thread_{user}",
            last_used=timezone.now().replace(microsecond=0),
        )
    with transaction.atomic():
        _, read = APIKey.objects.create_key(name="runtime", scope="read")
        _, write = APIKey.objects.create_key(name="automation", scope="write")
    return {"read": read, "write": write}


@pytest.fixture
def backup_file(service_state, tmp_path) -> Path:
    path = tmp_path / "service.dump"
    out = io.StringIO()
    call_command("backup_service", "-o", str(path), stdout=out)
    assert f"Backup written to {path}" in out.getvalue()
    return path


@pytest.fixture
def empty_database():
    """DATABASE_URL of a new, empty database on the suite's PostgreSQL server (dropped after)."""
    url = urllib.parse.urlsplit(live_database_url())
    name = f"restore_{uuid.uuid4().hex[:12]}"
    server_url = urllib.parse.urlunsplit(url._replace(path="/postgres"))
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield urllib.parse.urlunsplit(url._replace(path="/" + name))
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def plant_stale_entries(body: bytes) -> int:
    """Entries for the secretary's config and the bundle tagged with the current revision (the
    one the backup holds), with `body`: until a restore retires them, they are what a read
    serves. Returns that revision."""
    revision = store.committed_counter()
    secretary = Assistant.objects.get(is_secretary=True)
    current = store.store()
    current.raise_to(store.revision_key(ConfigRevision.CONFIG), revision)
    for key in (store.assistant_config_key(secretary.id), store.bundle_key()):
        current.set(key, b"%d\n%s" % (revision, body), store.ENTRY_SECONDS)
    return revision


def test_a_backup_restored_into_an_empty_database_is_the_same_service_with_the_cache_retired(
    service_state, backup_file, empty_database
):
    exported = export()
    assert backup_file.read_bytes().startswith(PG_MAGIC)
    stale = json.dumps({"instructions": "STALE: from before the restore"}).encode()
    backed_up_revision = plant_stale_entries(stale)
    secretary = Assistant.objects.get(is_secretary=True)
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {service_state['read']}")
    # The planted entry does match the revision the backup holds: served here, as it would be
    # after a restore that did not retire the cache.
    assert reader.get(f"/api/v1/assistants/{secretary.id}/config/").content == stale

    restored = run_manage("restore_service", str(backup_file), env={"DATABASE_URL": empty_database})
    assert restored.returncode == 0, restored.stderr
    assert f"Restored {backup_file}; cache cleared" in restored.stdout

    again = run_manage("export_config", "--include-threads", env={"DATABASE_URL": empty_database})
    assert again.returncode == 0, again.stderr
    assert again.stdout.encode() == exported

    with server(env={"DATABASE_URL": empty_database}, workers=1) as base_url:
        config_url = f"{base_url}/api/v1/assistants/{secretary.id}/config/"
        for _ in range(2):  # a build, then a cache hit: both the restored data
            status, headers, body = call("GET", config_url, key=service_state["read"])
            assert status == 200, body
            # The includes are expanded with the restored snippets.
            assert json.loads(body)["instructions"] == strictly_expanded(secretary.instructions)
            assert int(headers["X-Config-Revision"]) > backed_up_revision
        status, _, body = call("GET", f"{base_url}/api/v1/config/", key=service_state["read"])
        assert status == 200 and b"STALE" not in body
        status, _, body = call(
            "PATCH",
            f"{base_url}/api/v1/assistants/{secretary.id}/",
            key=service_state["write"],
            body={"instructions": "Changed after the restore."},
        )
        assert status == 200, body
        status, _, body = call("GET", config_url, key=service_state["read"])
        assert json.loads(body)["instructions"] == "Changed after the restore."


def test_restore_with_force_replaces_a_database_that_changed_since_the_backup(backup_file):
    exported = export()
    secretary = Assistant.objects.get(is_secretary=True)
    secretary.instructions = "Changed since the backup."
    secretary.save()
    UserAssistantThread.objects.all().delete()
    assert export() != exported
    out = io.StringIO()
    call_command("restore_service", str(backup_file), "--force", stdout=out)
    assert "cache cleared" in out.getvalue()
    assert export() == exported


def test_restore_refuses_a_database_that_has_tables_without_force(backup_file):
    UserAssistantThread.objects.filter(user_id="42").delete()
    before = export()
    with pytest.raises(CommandError, match=r"is not empty \(\d+ tables\).*pass --force"):
        call_command("restore_service", str(backup_file))
    assert export() == before


def test_restore_refuses_a_missing_corrupt_truncated_or_foreign_file(backup_file, tmp_path):
    before = export()
    with pytest.raises(CommandError, match="no such file"):
        call_command("restore_service", str(tmp_path / "missing.dump"), "--force")

    junk = tmp_path / "junk.dump"
    junk.write_bytes(b"not a backup at all")
    with pytest.raises(CommandError, match="is not a backup made by backup_service"):
        call_command("restore_service", str(junk), "--force")

    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(backup_file.read_bytes()[:200])
    with pytest.raises(CommandError, match="is corrupt or truncated"):
        call_command("restore_service", str(truncated), "--force")

    foreign = tmp_path / "postgres.dump"  # a dump of the server's `postgres` database
    url = urllib.parse.urlsplit(live_database_url())
    subprocess.run(
        ["pg_dump", "-Fc", f"--file={foreign}", url._replace(path="/postgres").geturl()], check=True
    )
    with pytest.raises(CommandError, match="is a backup of another database"):
        call_command("restore_service", str(foreign), "--force")
    assert export() == before


def test_backup_and_restore_say_so_when_the_postgresql_client_is_missing(
    service_state, backup_file, tmp_path, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path))  # neither pg_config nor pg_dump on it
    with pytest.raises(CommandError, match="pg_dump was not found: install the PostgreSQL"):
        call_command("backup_service", "-o", str(tmp_path / "again.dump"))
    with pytest.raises(CommandError, match="pg_restore was not found"):
        call_command("restore_service", str(backup_file), "--force")
    assert not (tmp_path / "again.dump").exists()


def test_the_password_goes_to_pg_dump_in_its_environment_not_on_its_command_line():
    original = connection.settings_dict
    connection.settings_dict = {
        **original,
        "PASSWORD": "s3cret-pw",
        "OPTIONS": {"sslmode": "prefer", "server_side_binding": True},  # the latter Django's own
    }
    try:
        dsn, env = pg_connection()
    finally:
        connection.settings_dict = original
    assert "s3cret-pw" not in dsn and "password" not in dsn
    assert "sslmode=prefer" in dsn and f"dbname={original['NAME']}" in dsn
    assert "server_side_binding" not in dsn
    assert env["PGPASSWORD"] == "s3cret-pw"


def test_the_embedded_sqlite_database_is_backed_up_and_restored_too(tmp_path):
    source, target = tmp_path / "source.sqlite3", tmp_path / "target.sqlite3"
    backup_path = tmp_path / "service.sqlite3"
    embedded = {"REDIS_URL": "", "DEBUG": "1"}
    script = (
        "import django, io; django.setup(); from django.core.management import call_command; "
        "call_command('migrate', verbosity=0); "
        f"call_command('import_config', {str(DEMO)!r}, '--no-backup', stdout=io.StringIO()); "
        f"call_command('backup_service', '-o', {str(backup_path)!r}); "
        "call_command('export_config', '--include-threads')"
    )
    made = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **os.environ,
            **embedded,
            "DATABASE_URL": f"sqlite:///{source}",
            "DJANGO_SETTINGS_MODULE": "config_backend.settings",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    exported = made.stdout.split("bytes).\n", 1)[1]

    env = {**embedded, "DATABASE_URL": f"sqlite:///{target}"}
    restored = run_manage("restore_service", str(backup_path), env=env)
    assert restored.returncode == 0, restored.stderr
    again = run_manage("export_config", "--include-threads", env=env)
    assert again.stdout == exported
    wrong_kind = run_manage("restore_service", str(backup_path), "--force", env={})
    assert wrong_kind.returncode == 1
    assert "is a sqlite backup, but DATABASE_URL names a postgresql database" in wrong_kind.stderr


def test_restore_refuses_to_start_while_redis_is_unreachable(backup_file, empty_database):
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    env = {"DATABASE_URL": empty_database, "REDIS_URL": dead_redis}
    refused = run_manage("restore_service", str(backup_file), env=env)
    assert refused.returncode == 1
    assert "(Redis) is unreachable" in refused.stderr and "Nothing was restored." in refused.stderr
    with psycopg.connect(empty_database) as target:
        tables = target.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert tables == (0,)
