"""Backups of the whole service state: the database (PostgreSQL with pg_dump, the embedded
SQLite file with SQLite's online backup API), and what a restore must do to the cache.

Redis needs no backup: it holds only what is derived from the database (config entries built
from its rows, revision mirrors of its revision rows, API-key records of its key rows), all of
which is rebuilt on demand. But a restore moves the revision rows back to the backup's values,
and a cached entry or key record is served while its revision equals the mirror: an entry cached
before the restore could carry a revision the restored database reaches again, and be served
with data the restore removed (a client's old ETag could match too). So a restore moves every
revision row *past* every value it or its mirror had before, raising the mirrors as a change
does, then clears the cache and re-seeds the mirrors from the rows (`move_revisions_past`).

Open event streams (core.events) are positioned by revision numbers and label move ids. A
restore moves the label-move id sequence past every id given out before it
(`move_label_moves_past`; revision numbers follow the config revision, moved above), so no later
move gets an id a stream has already seen; and it moves the `restores` counter, which every
process's event hub reads, so every open stream gets one `reset` (the config it holds may be
one the restore removed).

Everything here raises BackupError with one sentence for the operator.
"""

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from core import store
from core.models import ConfigRevision, LabelMove

PG_MAGIC = b"PGDMP"  # how a pg_dump custom-format archive starts
SQLITE_MAGIC = b"SQLite format 3\x00"
# A backup of this service has the revision table (it also marks the service's database).
MARKER_TABLE = ConfigRevision._meta.db_table
REVISION_NAMES = (ConfigRevision.CONFIG, ConfigRevision.API_KEYS, ConfigRevision.RESTORES)
# Connection parameters never put on a command line, where `ps` shows them.
SECRET_PARAMETERS = {"password", "sslpassword"}


class BackupError(Exception):
    """Why a backup or restore could not be made (one sentence); nothing was changed."""


def database_kind() -> str:
    """The vendor: postgresql, or sqlite (the embedded default); nothing else is configurable."""
    return connection.vendor


def default_backup_path() -> Path:
    suffix = ".dump" if database_kind() == "postgresql" else ".sqlite3"
    return Path("backups") / f"service-{timezone.now().strftime('%Y%m%d-%H%M%S')}{suffix}"


# PostgreSQL client programs.


def pg_program(name: str) -> str:
    """pg_dump or pg_restore: the one next to `pg_config --bindir` (the newest installed
    server's client, which must not be older than the server), else the one on PATH."""
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        candidate = Path(out.stdout.strip()) / name
        if candidate.exists():
            return str(candidate)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = shutil.which(name)
    if not found:
        raise BackupError(
            f"{name} was not found: install the PostgreSQL client programs (Debian: "
            "postgresql-client), of the server's major version or newer."
        )
    return found


def pg_connection() -> tuple[str, dict]:
    """(conninfo without secrets, environment with PGPASSWORD) for the app's database, as
    Django connects to it (DATABASE_URL parsed by the settings, its options included)."""
    from psycopg import conninfo, pq

    database = connection.settings_dict
    known = {d.keyword.decode() for d in pq.Conninfo.get_defaults()} - SECRET_PARAMETERS
    options = {k: str(v) for k, v in database.get("OPTIONS", {}).items() if k in known}
    params = {
        "dbname": database["NAME"],
        "host": database.get("HOST"),
        "port": str(database.get("PORT") or ""),
        "user": database.get("USER"),
        **options,
    }
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    if database.get("PASSWORD"):
        env["PGPASSWORD"] = database["PASSWORD"]
    return conninfo.make_conninfo(**{k: v for k, v in params.items() if v}), env


def run_pg(program: str, *arguments: str) -> str:
    """Run pg_dump or pg_restore on the app's database; returns its stdout."""
    dsn, env = pg_connection()
    result = subprocess.run(
        [pg_program(program), f"--dbname={dsn}", *arguments],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode != 0:
        said = result.stderr.strip().splitlines()
        raise BackupError(f"{program} failed: {said[-1] if said else result.returncode}.")
    return result.stdout


# The database as it is now.


def user_tables() -> list[str]:
    try:
        return connection.introspection.table_names()
    except DatabaseError as exc:
        raise BackupError(f"Cannot read the database: {str(exc).strip()}.") from None


def revisions_in_use() -> dict[str, int]:
    """Per revision name, the highest value the database row or its mirror holds (0: none)."""
    keys = [store.revision_key(name) for name in REVISION_NAMES]
    mirrors = store.require_cache("reading the revision mirrors", lambda s: s.get_many(keys))
    rows = {}
    if MARKER_TABLE in user_tables():
        rows = dict(ConfigRevision.objects.values_list("name", "value"))
    return {
        name: max(int(mirror or 0), rows.get(name, 0))
        for name, mirror in zip(REVISION_NAMES, mirrors, strict=True)
    }


def label_moves_in_use() -> int:
    """The highest label move id the database holds (0: none, or no such table yet)."""
    if LabelMove._meta.db_table not in user_tables():
        return 0
    return LabelMove.objects.order_by("-id").values_list("id", flat=True).first() or 0


def move_label_moves_past(floor: int) -> None:
    """After a restore: the next label move gets an id above `floor` (and above every
    restored row), as it would have without the restore."""
    if floor <= 0:
        return
    table = LabelMove._meta.db_table
    newest = f"SELECT COALESCE(MAX(id), 0) FROM {table}"  # noqa: S608  (our table's name)
    with connection.cursor() as cursor:
        if database_kind() == "postgresql":
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, 'id'), GREATEST(%s, ({newest})))",
                [table, floor],
            )
        else:  # SQLite: AUTOINCREMENT's counter, a row of sqlite_sequence
            cursor.execute(
                "UPDATE sqlite_sequence SET seq = MAX(seq, %s) WHERE name = %s", [floor, table]
            )
            cursor.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT %s, %s WHERE NOT EXISTS "
                "(SELECT 1 FROM sqlite_sequence WHERE name = %s)",
                [table, floor, table],
            )


def move_revisions_past(seen: dict[str, int]) -> dict[str, int]:
    """After a restore: each revision row to one past everything in use before it (`seen`),
    mirrors raised before the commit (as every change does, so no instance serves an entry of
    the old timeline); then the cache cleared and the mirrors seeded from the rows."""
    revisions = {}
    with transaction.atomic():
        for name, floor in seen.items():
            row, _ = ConfigRevision.objects.select_for_update().get_or_create(name=name)
            if row.value < floor:
                row.value = floor
                row.save(update_fields=["value"])
            revisions[name] = store.bump_revision(name)
        # Every assistant's config revision too, so no ETag of the old timeline matches again.
        ConfigRevision.objects.filter(name__startswith=ConfigRevision.ASSISTANT_PREFIX).update(
            value=revisions[ConfigRevision.CONFIG]
        )
    store.require_cache("clearing the cache", lambda s: s.clear())
    for name in seen:
        store.seed_mirror(name)
    return revisions


def pending_migrations() -> int:
    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))


# Backup.


def backup(output: Path) -> Path:
    """Write a consistent backup of the database to `output` (written whole, or not at all)."""
    if MARKER_TABLE not in user_tables():
        raise BackupError(
            f"The database {connection.settings_dict['NAME']} has no {MARKER_TABLE} table: it "
            "is not this service's database (check DATABASE_URL, and run migrate)."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    try:
        if database_kind() == "postgresql":
            # One transaction, so one consistent snapshot, while the service keeps running.
            run_pg("pg_dump", "--format=custom", f"--file={partial}")
        else:
            with sqlite3.connect(settings.DATABASES["default"]["NAME"]) as source:
                with sqlite3.connect(partial) as target:
                    source.backup(target)  # consistent: SQLite's online backup API
                target.close()
            source.close()
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return output


# Restore.


def backup_kind(path: Path) -> str:
    try:
        with path.open("rb") as file:
            start = file.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise BackupError(f"{path}: no such file.") from None
    except OSError as exc:
        raise BackupError(f"{path}: cannot read it ({exc.strerror}).") from None
    if start.startswith(PG_MAGIC):
        return "postgresql"
    if start == SQLITE_MAGIC:
        return "sqlite"
    raise BackupError(
        f"{path} is not a backup made by backup_service (neither a pg_dump custom-format "
        "archive nor a SQLite database)."
    )


def check_backup(path: Path, kind: str) -> None:
    """The file is readable and is a backup of this service's database."""
    if kind == "postgresql":
        pg_program("pg_restore")  # missing is said as such, not as an unreadable file
        try:
            listing = run_pg("pg_restore", "--list", str(path))
        except BackupError:
            unreadable = f"{path} is corrupt or truncated: pg_restore cannot read it."
            raise BackupError(unreadable) from None
        has_marker = any(
            line.split()[3:6] == ["TABLE", "public", MARKER_TABLE]
            for line in listing.splitlines()
            if not line.startswith(";")
        )
    else:
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as backup_file:
                (verdict,) = backup_file.execute("PRAGMA quick_check").fetchone()
                has_marker = bool(
                    backup_file.execute(
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        [MARKER_TABLE],
                    ).fetchone()
                )
            backup_file.close()
        except sqlite3.DatabaseError:
            verdict = "unreadable"
        if verdict != "ok":
            raise BackupError(f"{path} is corrupt or truncated: SQLite cannot read it.")
    if not has_marker:
        raise BackupError(
            f"{path} is a backup of another database: it has no {MARKER_TABLE} table."
        )


def restore(path: Path, *, force: bool = False) -> dict:
    """Restore `path` into the app's database, then retire the cache (see the module
    docstring). Refuses a database that has tables unless `force` (then replaced)."""
    kind = backup_kind(path)
    if kind != database_kind():
        raise BackupError(
            f"{path} is a {kind} backup, but DATABASE_URL names a {database_kind()} database."
        )
    check_backup(path, kind)
    tables = user_tables()
    if tables and not force:
        raise BackupError(
            f"The database {connection.settings_dict['NAME']} is not empty ({len(tables)} "
            "tables): restore into an empty database, or pass --force to replace its contents."
        )
    # Before anything changes: Redis must be reachable, to retire what it caches afterwards.
    try:
        seen = revisions_in_use()
    except store.CacheUnavailable as exc:
        raise BackupError(f"{exc} (Nothing was restored.)") from None
    label_moves_seen = label_moves_in_use()
    connection.close()
    if kind == "postgresql":
        clean = ["--clean", "--if-exists"] if tables else []
        # One transaction: all restored, or nothing (the database as it was).
        run_pg(
            "pg_restore", "--single-transaction", "--no-owner", "--no-privileges", *clean, str(path)
        )
    else:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as source:
            with sqlite3.connect(settings.DATABASES["default"]["NAME"]) as target:
                source.backup(target)  # replaces the whole file's contents, atomically
            target.close()
        source.close()
    move_label_moves_past(label_moves_seen)
    try:
        revisions = move_revisions_past(seen)
    except store.CacheUnavailable as exc:
        raise BackupError(
            f"The backup was restored, but the cache could not be retired ({exc}): flush Redis "
            "(redis-cli FLUSHDB) before serving, or it may serve configs from before the restore."
        ) from None
    return {"revisions": revisions, "pending_migrations": pending_migrations()}
