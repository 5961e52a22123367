"""The revision mirrors (core.store, the consistency argument): the committed counters in the
database, their mirrors in the cache raised by each change before it commits (`bump_revision`),
seeded when missing (`seed_mirror`), and re-seeded on a new master under Sentinel
(`check_master_on_connect`, core.store "Replicas")."""

import logging

from django.conf import settings
from django.db import connection, transaction

from core.models import ConfigRevision
from core.store.breaker import (
    CacheRefused,
    CacheUnavailable,
    breaker,
    require_cache,
    try_cache,
)
from core.store.keys import CHANGES_CHANNEL, MIRRORS_SEEDED_ON_KEY, revision_key

logger = logging.getLogger(__name__)

# Re-seeds the mirrors: raises KEYS[1..ARGV[1]] to ARGV[2..] (never lowers one), deletes the
# other KEYS but the last, then sets the last (the marker) to the last ARGV. One script, so no
# connection sees the marker before the mirrors.
_RESEED = """
local raised = tonumber(ARGV[1])
for i = 1, raised do
  local stored = redis.call('GET', KEYS[i])
  if not stored or tonumber(stored) < tonumber(ARGV[i + 1]) then
    redis.call('SET', KEYS[i], ARGV[i + 1])
  end
end
for i = raised + 1, #KEYS - 1 do redis.call('DEL', KEYS[i]) end
redis.call('SET', KEYS[#KEYS], ARGV[#ARGV])
return raised
"""
_WHO_IS_THERE = (("INFO", "server"), ("INFO", "replication"), ("GET", MIRRORS_SEEDED_ON_KEY))


def _identity_if_unseeded(server_info, replication_info, marker) -> str | None:
    """This server's identity if its mirrors were not seeded on it, else None; refuses a
    replica. The arguments: the raw replies to _WHO_IS_THERE."""
    import redis

    fields = {}
    for reply in (server_info, replication_info):
        for line in (reply.decode() if isinstance(reply, bytes) else reply).splitlines():
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    if fields.get("role") != "master":
        raise redis.ConnectionError(
            f"The Redis the sentinels named is a {fields.get('role')}, not the master."
        )
    identity = f"{fields['run_id']}:{fields['master_replid']}"
    seeded_on = marker.decode() if isinstance(marker, bytes) else marker
    return None if seeded_on == identity else identity


def _reseed_command(identity: str) -> tuple:
    """The EVAL of _RESEED for the revisions committed now (core.store, "Replicas")."""
    table = ConfigRevision._meta.db_table
    # PostgreSQL: skip (and so retire) the rows a change holds; SQLite has no row locks (its
    # writers hold the whole file), as for seed_mirror.
    locking = " FOR SHARE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    opened_here = connection.connection is None
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT name, value FROM {table}{locking}")  # noqa: S608
            free = dict(cursor.fetchall())
            cursor.execute(f"SELECT name FROM {table}")  # noqa: S608
            held = sorted({name for (name,) in cursor.fetchall()} - free.keys())
            transaction.set_rollback(True)  # the share locks go at once
    finally:
        if opened_here and not connection.in_atomic_block:
            connection.close()  # a thread outside a request (the hub's) must not keep one
    keys = [revision_key(name) for name in (*free, *held)] + [MIRRORS_SEEDED_ON_KEY]
    return ("EVAL", _RESEED, len(keys), *keys, len(free), *free.values(), identity)


def _as_redis_error(exc: BaseException) -> BaseException | None:
    """What a failed check raises instead of `exc` (None: `exc` itself): any other failure (the
    database's) as a RedisError, which the store's callers handle as Redis unreachable."""
    import redis

    if isinstance(exc, redis.RedisError) or not isinstance(exc, Exception):
        return None
    return redis.ConnectionError(
        f"Could not check the Redis master's mirrors ({type(exc).__name__}: {exc})."
    )


def check_master_on_connect(connection_to_redis) -> None:
    """redis-py's connect callback under Sentinel (settings CACHES, `redis_connect_func`): the
    handshake, then the mirrors re-seeded if this server did not seed them (core.store,
    "Replicas"). Any failure drops the connection: an unchecked one is never used."""
    try:
        connection_to_redis.on_connect()
        connection_to_redis.send_packed_command(
            connection_to_redis.pack_commands(_WHO_IS_THERE), check_health=False
        )
        replies = [connection_to_redis.read_response() for _ in _WHO_IS_THERE]
        identity = _identity_if_unseeded(*replies)
        if identity is not None:
            connection_to_redis.send_command(*_reseed_command(identity), check_health=False)
            connection_to_redis.read_response()
    except BaseException as exc:
        connection_to_redis.disconnect()
        instead = _as_redis_error(exc)
        if instead is None:
            raise
        raise instead from exc


async def check_master_on_connect_async(connection_to_redis) -> None:
    """check_master_on_connect for redis.asyncio (the ASGI fast path's client)."""
    from asgiref.sync import sync_to_async

    try:
        await connection_to_redis.on_connect()
        await connection_to_redis.send_packed_command(
            connection_to_redis.pack_commands(_WHO_IS_THERE), check_health=False
        )
        replies = [await connection_to_redis.read_response() for _ in _WHO_IS_THERE]
        identity = _identity_if_unseeded(*replies)
        if identity is not None:
            command = await sync_to_async(_reseed_command)(identity)
            await connection_to_redis.send_command(*command, check_health=False)
            await connection_to_redis.read_response()
    except BaseException as exc:  # cancelled too: a connection left half-checked is unusable
        await connection_to_redis.disconnect(nowait=True)
        instead = _as_redis_error(exc)
        if instead is None:
            raise
        raise instead from exc


def committed_counter(name: str = ConfigRevision.CONFIG) -> int:
    """The committed value of the revision counter `name` (the config's, an assistant's, a
    label's moves, the API keys'), read from the database (one query); its mirror is in the
    cache. Not the history's newest revision (config_backend.history.selectors)."""
    row = ConfigRevision.objects.filter(name=name).values_list("value", flat=True).first()
    return row or 0


def bump_revision(
    name: str = ConfigRevision.CONFIG, *, also: list[str] | tuple = (), announce: bool = True
) -> int:
    """Record that what `name` covers changed in the current transaction; returns the revision.

    The rows named in `also` (assistants' config revisions) are set to the same value, their
    mirrors raised with it (core.changes). Announced at the commit (`announce_revision`), unless
    `announce` is False: a change set bumps once per row change and announces once (core.changes).
    Raises
    CacheUnavailable (the caller's transaction then rolls back) when the mirror can't be raised,
    except for an API-key change while Redis is unreachable (core.store, "API-key changes").
    """
    if not connection.in_atomic_block:
        logger.warning("Config changed outside a transaction; cache refresh cannot be atomic.")
    table = ConfigRevision._meta.db_table
    with connection.cursor() as cursor:
        # An upsert, so a missing row (a flushed test database) starts again at 1.
        cursor.execute(
            f"INSERT INTO {table} (name, value) VALUES (%s, 1) "  # noqa: S608
            f"ON CONFLICT (name) DO UPDATE SET value = {table}.value + 1 RETURNING value",
            [name],
        )
        (revision,) = cursor.fetchone()
    if also:
        ConfigRevision.objects.bulk_create(
            [ConfigRevision(name=other, value=revision) for other in also],
            update_conflicts=True,
            unique_fields=["name"],
            update_fields=["value"],
        )
    keys = [revision_key(one) for one in (name, *also)]
    try:
        require_cache("raising the revision", lambda s: s.raise_to(keys, revision))
    except CacheUnavailable as exc:
        if name != ConfigRevision.API_KEYS or isinstance(exc, CacheRefused):
            raise
        logger.warning(
            "API keys changed while the cache is unreachable (%s); committing "
            "anyway: cached key records stop counting within %ss of Redis returning.",
            type(exc).__name__,
            settings.API_KEY_RECORD_SECONDS,
        )
    if announce:
        transaction.on_commit(lambda: announce_revision(name, revision))
    return revision


def announce_revision(name: str, revision: int) -> None:
    """After a commit: raise the mirror (again) and, for the config revision, wake every
    instance's events hub (CHANGES_CHANNEL; a wake-up, not data)."""

    def announce(s):
        s.raise_to(revision_key(name), revision)
        if name == ConfigRevision.CONFIG:
            s.publish(CHANGES_CHANNEL, str(revision))

    try_cache("announcing a new revision", announce)


def cache_clear() -> None:
    """Forget every entry and mirror (tests, and operators after restoring a database)."""
    try_cache("clearing", lambda s: s.clear())


def seed_mirror(name: str) -> None:
    """Set a missing mirror (Redis restarted empty, or evicted it) from the database.

    Under the revision row's lock, which every change holds from its bump to its commit: so no
    change is half-way, and the value read is the newest one. Never from a revision read
    earlier, which a change may have overtaken while the mirror was gone.
    """
    if breaker.is_open():
        return
    with transaction.atomic():
        revision = (
            ConfigRevision.objects.select_for_update()
            .filter(name=name)
            .values_list("value", flat=True)
            .first()
        )
        try_cache("seeding the revision", lambda s: s.raise_to(revision_key(name), revision or 0))
