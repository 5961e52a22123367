"""Config revisions, cache keys, and the cache store (Redis, or local memory) with a breaker.

Consistency design (SPEC "Cache semantics"):
- Every config change bumps the `config` revision row *inside* its transaction and raises the
  revision mirrored in the cache to that value before the transaction commits. Writers are
  serialized by the row lock, and the mirror only ever grows (a Lua max), so once a change has
  committed, the mirror is at least its revision on every app instance.
- A cached entry stores the revision that was read from the database *before* the entry's data
  was read. An entry is served only when its revision equals the mirror. A reader that loaded
  old rows while a writer committed stores an entry tagged with the old revision, which no
  later reader takes: the classic read/invalidate/store race leaves nothing stale.
- Labels apply the same argument per label: a label's mirror is its move counter (the revision
  row "label:<name>", bumped here by each move, config_backend.history.labels), and a label
  read's entry is tagged with the counter read before the label's row, so no instance serves a
  label's old target once its move has committed.
- If the cache cannot be reached while a config change is being made, the mirror cannot be
  raised, so the change is refused (CacheUnavailable → 503) and rolled back. A hung Redis that
  resumes with its old contents therefore holds nothing older than the database.
- Replicas (Redis Sentinel; README "Redis Sentinel"). Replication is asynchronous: a replica
  promoted after its master died may hold an older mirror N, and entries tagged N, while the
  database is at N+1; it would serve them. So mirrors are trusted only on the dataset that
  seeded them. Under Sentinel every new connection, before it is used, asks the server who it
  is (`INFO`: run_id, new at every start of a server; master_replid, new at every promotion)
  and reads the marker kept beside the mirrors (MIRRORS_SEEDED_ON_KEY: the identity of the
  server that last re-seeded them; replicated with them, so a promoted replica holds its old
  master's). If they differ, the connection re-seeds every mirror from the database first
  (`check_master_on_connect`, `_RESEED`, one atomic script that sets the marker last): each is
  raised (a max, as always) to its committed revision, except the mirror of a row a change
  holds right now, which is deleted. Such a change bumped the row before it raised its mirror,
  maybe on the dead master, and commits after this read; a missing mirror is a miss, seeded
  later under the row's lock (`seed_mirror`). A row no change holds has no raise in flight:
  every raise of it is from a change that has committed (its revision is the one read, or
  lower) or rolled back. So once a connection to a new master is in use, every mirror on it is
  at least the database's, and the argument above holds unchanged, whatever old entries it
  holds. Every connection checks for itself (request threads, the ASGI fast path's, the
  hub's): none reads before some re-seed on that server has finished, and re-seeds can
  overlap (max and delete only). The rows are read with FOR SHARE SKIP LOCKED, which waits for
  nobody, in a savepoint rolled back at once, so it holds no lock a writer could deadlock on.
  A connection that finds a replica is refused: every command goes to the master. Changes need
  no replica's acknowledgement (no `WAIT`): they are accepted as soon as the new master is,
  with one replica (the promotion leaves none) as with two. A failover loses only entries
  (misses) and raises of changes that never committed (a mirror ahead of the database: misses
  too). Not covered, as before: a partition in which some instances still reach an old master
  that Sentinel has replaced (its mirrors stop at the partition).
- API-key changes differ: a key must be revocable during an outage, and a key record, unlike a
  config entry, lives at most settings.API_KEY_RECORD_SECONDS. While Redis is unreachable no
  hit is served (the database checks every key and refuses a revoked one at once); once it is
  back (also a hung Redis resuming: its expiry is wall-clock based) a stale record expires
  within that bound, or sooner, when the first key check that reaches the database raises the
  lagging mirror. So an `api_keys` bump whose mirror cannot be raised commits, with a warning.
  (An instance cut off from a Redis that others still reach is within the same bound.)
- Unreachable (connection error, timeout) and refused (Redis answered with an error, e.g. out
  of memory under `noeviction`) are told apart. Unreachable trips the breaker; refused does
  not: a read answers from the database for that request, a change is refused
  (CacheRefused → 503, key changes included: Redis still serves hits, so it must not commit).
  Busy (this process's own connection pool is exhausted: redis-py's MaxConnectionsError, a
  burst of requests) is overload, not an outage: it trips nothing either; that request goes
  without the cache (a change: CacheUnavailable → 503, as unreachable).
- Build locks (`build_lock_key`, core.reads.build) only save work, and
  play no part in the argument above: a miss waiting on one is served only an entry tagged with
  the revision it read from the database, as any miss. A lock lost (failover, eviction, expiry)
  costs a duplicate build, never a stale read.
- Reads never wait on a dead cache for long: short socket timeouts, and a per-process breaker
  that skips the cache for BREAKER_SECONDS after a failure, so the database answers. Changes
  probe Redis even while the breaker is open (they are rare and made by people, who should not
  be refused for seconds after Redis is back); a success closes it.
"""

import logging
import threading
import time

from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction

from core.models import ConfigRevision

logger = logging.getLogger(__name__)

BREAKER_SECONDS = 5.0
# What Redis may evict. It runs `maxmemory-policy volatile-lru` (docs/consistency.md, "Sizing
# Redis"), which evicts only keys that expire. The revision mirrors (and their marker,
# MIRRORS_SEEDED_ON_KEY) and the live entries (each assistant's config and the bundle, in every
# coding: LIVE_ENTRY_SECONDS) never expire, so they are never evicted: they must stay (mirrors)
# or are what every read wants (live entries; one per assistant, overwritten by each build, and
# deleted with their assistant). The rest expires and so goes first when Redis is full: entries
# read at a point in the history (a label's, ENTRY_SECONDS; at a revision,
# core.reads.reads.REVISION_ENTRY_SECONDS), key records (settings.API_KEY_RECORD_SECONDS) and
# build locks.
LIVE_ENTRY_SECONDS = None
ENTRY_SECONDS = 24 * 3600
KEY_PREFIX = "cfgb:v1:"
CHANGES_CHANNEL = "config_backend:revision"


class CacheUnavailable(Exception):
    """The cache (Redis) could not be reached, so a change could not be made safely."""

    default_message = (
        "The configuration cache (Redis) is unreachable, so the change was refused and nothing "
        "was changed. Retry once Redis is back."
    )

    def __init__(self, message=None):
        super().__init__(message or self.default_message)


class CacheRefused(CacheUnavailable):
    """Redis answered but refused a command a change needed (e.g. out of memory)."""

    def __init__(self, exc: Exception):
        super().__init__(
            f"The configuration cache (Redis) refused the command ({type(exc).__name__}: {exc}), "
            "so the change was refused and nothing was changed. Retry once Redis accepts writes "
            "(an operator may need to raise its maxmemory)."
        )


def cache_key(*parts) -> str:
    """Every cache key is built here: one prefix, versioned with the entry format."""
    return KEY_PREFIX + ":".join(str(part) for part in parts)


def revision_key(name: str) -> str:
    return cache_key("revision", name)


def assistant_config_key(assistant_id, *variant) -> str:
    """The entry of an assistant's config; `variant`: a compressed one's sibling key."""
    return cache_key("config", "assistant", assistant_id, *variant)


def bundle_key(*variant) -> str:
    return cache_key("config", "bundle", *variant)


BUNDLE_KEY = bundle_key()


def build_lock_key(entry: str, revision: int) -> str:
    """The lock of the one request building `entry` (a key) for `revision` (core.reads.build)."""
    return cache_key("build", entry.removeprefix(KEY_PREFIX), revision)


def api_key_record_key(prefix: str) -> str:
    return cache_key("api_key", prefix)


class _Breaker:
    """Per process: after a cache failure, skip the cache for BREAKER_SECONDS."""

    def __init__(self):
        self.open_until = 0.0

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def trip(self, exc: Exception, doing: str) -> None:
        if not self.is_open():
            logger.warning(
                "Cache unreachable while %s (%s: %s); serving from the database for %.0fs.",
                doing,
                type(exc).__name__,
                exc,
                BREAKER_SECONDS,
            )
        self.open_until = time.monotonic() + BREAKER_SECONDS

    def reset(self) -> None:
        self.open_until = 0.0


breaker = _Breaker()

# Raises the value at each of KEYS to ARGV[1] unless it is already higher; returns the last
# key's result.
_RAISE_TO = """
local result = 0
for _, key in ipairs(KEYS) do
  local value = ARGV[1]
  local stored = redis.call('GET', key)
  if stored and tonumber(stored) >= tonumber(value) then value = stored end
  redis.call('SET', key, value)
  result = tonumber(value)
end
return result
"""
# Deletes the lock at KEYS[1] only if it still holds ARGV[1], the token of whoever took it: a
# builder whose lock expired must not release the next builder's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Beside the mirrors: the identity ("<run_id>:<master_replid>") of the server that last
# re-seeded them (module docstring, "Replicas"). It never expires, as the mirrors.
MIRRORS_SEEDED_ON_KEY = cache_key("mirrors_seeded_on")
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
    """The EVAL of _RESEED for the revisions committed now (module docstring, "Replicas")."""
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
    handshake, then the mirrors re-seeded if this server did not seed them (module docstring,
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


class RedisStore:
    """Raw bytes in Redis through django-redis's connection pool (one command, one round trip)."""

    errors: tuple[type[Exception], ...]  # unreachable, or refused (`refusals`, caught first)
    refusals: tuple[type[Exception], ...]
    overloads: tuple[type[Exception], ...]  # the pool is exhausted (caught before `errors`)
    # Every app instance and command sees the same mirrors: they can vouch for an entry.
    shared = True

    def __init__(self, alias: str = "default", client=None):
        import redis
        from django_redis import get_redis_connection

        # The write client: the master, also under Sentinel (see the module docstring).
        self.client = client if client is not None else get_redis_connection(alias, write=True)
        self.errors = (redis.RedisError, OSError)
        self.refusals = (redis.ResponseError,)  # Redis answered: it is there, the breaker stays
        self.overloads = (redis.exceptions.MaxConnectionsError,)  # ours is busy, not Redis down
        self._raise_to = self.client.register_script(_RAISE_TO)
        self._release = self.client.register_script(_RELEASE)

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        return self.client.mget(keys)

    def set(self, key: str, value: bytes, timeout: int | None = None) -> None:
        self.client.set(key, value, ex=timeout)

    def set_many(
        self, values: dict[str, bytes], timeout: int | None = None, *, release=None
    ) -> None:
        """Store `values` together, and release the lock `release` (key, token) if still
        ours: one pipeline, one round trip, the lock last."""
        pipe = self.client.pipeline(transaction=False)
        for key, value in values.items():
            pipe.set(key, value, ex=timeout)
        if release is not None:
            pipe.eval(_RELEASE, 1, *release)  # EVAL: a pipeline's EVALSHA costs a SCRIPT EXISTS
        pipe.execute()

    def lock(self, key: str, token: str, milliseconds: int) -> bool:
        """Take the lock at `key` for `milliseconds` unless someone holds it."""
        return bool(self.client.set(key, token, nx=True, px=milliseconds))

    def lock_and_get(
        self, key: str, token: str, milliseconds: int, then_get: str
    ) -> tuple[bool, bytes | None]:
        """`lock`, and the value at `then_get` read just after it: one round trip."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(key, token, nx=True, px=milliseconds)
        pipe.get(then_get)
        locked, value = pipe.execute()
        return bool(locked), value

    def unlock(self, key: str, token: str) -> None:
        self._release(keys=[key], args=[token])

    def delete(self, key: str) -> None:
        self.client.delete(key)

    def raise_to(self, key: str | list[str], value: int) -> int:
        """Raise the mirror at `key` (or each of a list) to `value`."""
        keys = [key] if isinstance(key, str) else key
        return int(self._raise_to(keys=keys, args=[value]))

    def publish(self, channel: str, message: str) -> None:
        self.client.publish(channel, message)

    def ping(self) -> bool:
        return bool(self.client.ping())

    def clear(self) -> None:
        for key in self.client.scan_iter(KEY_PREFIX + "*"):
            self.client.delete(key)


class LocalStore:
    """The embedded default: Django's local-memory cache, private to one process."""

    errors: tuple[type[Exception], ...] = ()
    refusals: tuple[type[Exception], ...] = ()
    overloads: tuple[type[Exception], ...] = ()
    # Another process's change (`import_config` in a second terminal) never raises this
    # process's mirrors, so they cannot vouch for an entry or a key record: every read checks
    # the database revision (one cheap query) and every key its row.
    shared = False

    def __init__(self, alias: str = "default"):
        self.cache = caches[alias]
        self.lock_guard = threading.Lock()

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        found = self.cache.get_many(keys)
        return [found.get(key) for key in keys]

    def set(self, key: str, value: bytes, timeout: int | None = None) -> None:
        self.cache.set(key, value, timeout)

    def set_many(
        self, values: dict[str, bytes], timeout: int | None = None, *, release=None
    ) -> None:
        self.cache.set_many(values, timeout)
        if release is not None:
            self.unlock(*release)

    def lock(self, key: str, token: str, milliseconds: int) -> bool:
        # Threads of this process are all that share it: `add` is atomic among them.
        return self.cache.add(key, token, milliseconds / 1000)

    def lock_and_get(
        self, key: str, token: str, milliseconds: int, then_get: str
    ) -> tuple[bool, bytes | None]:
        return self.lock(key, token, milliseconds), self.cache.get(then_get)

    def unlock(self, key: str, token: str) -> None:
        with self.lock_guard:
            if self.cache.get(key) == token:
                self.cache.delete(key)

    def delete(self, key: str) -> None:
        self.cache.delete(key)

    def raise_to(self, key: str | list[str], value: int) -> int:
        result = value
        with self.lock_guard:
            for one in [key] if isinstance(key, str) else key:
                result = max(value, int(self.cache.get(one) or -1))
                self.cache.set(one, str(result).encode(), None)
        return result

    def publish(self, channel: str, message: str) -> None:
        pass  # one process: nobody else to tell

    def ping(self) -> bool:
        return True

    def clear(self) -> None:
        self.cache.clear()


_store = None


def store():
    global _store
    if _store is None:
        backend = settings.CACHES["default"]["BACKEND"]
        _store = RedisStore() if backend.startswith("django_redis.") else LocalStore()
    return _store


_SAME_AS_DEFAULT = object()
# A burst exhausts the pool for many requests at once: one warning per this many seconds.
BUSY_WARNING_SECONDS = 10.0
_busy_warned_at = -BUSY_WARNING_SECONDS


def note_busy(exc: Exception, doing: str) -> None:
    """This process's connection pool to Redis is exhausted: say so (at most every
    BUSY_WARNING_SECONDS); the breaker stays closed (module docstring)."""
    global _busy_warned_at
    now = time.monotonic()
    if now - _busy_warned_at >= BUSY_WARNING_SECONDS:
        _busy_warned_at = now
        logger.warning(
            "Cache connection pool exhausted while %s (%s: %s); those requests go without the "
            "cache (Redis is not marked unreachable).",
            doing,
            type(exc).__name__,
            exc,
        )


def try_cache(doing: str, operation, default=None, *, busy=_SAME_AS_DEFAULT):
    """Run a cache operation unless the breaker is open; on failure return default.

    Unreachable trips the breaker; a refused command is logged and only this call falls back;
    so does an exhausted pool, which returns `busy` when given.
    """
    if breaker.is_open():
        return default
    current = store()
    try:
        return operation(current)
    except current.overloads as exc:
        note_busy(exc, doing)
        return default if busy is _SAME_AS_DEFAULT else busy
    except current.refusals as exc:
        logger.warning(
            "Cache refused a command while %s (%s: %s); answering from the database.",
            doing,
            type(exc).__name__,
            exc,
        )
        return default
    except current.errors as exc:
        breaker.trip(exc, doing)
        return default


def require_cache(doing: str, operation):
    """Run a cache operation that a change depends on; raise CacheUnavailable if it fails.

    Tried even while the breaker is open (see the module docstring); a success closes it.
    """
    current = store()
    try:
        result = operation(current)
    except current.overloads as exc:
        note_busy(exc, doing)
        raise CacheUnavailable() from exc
    except current.refusals as exc:
        raise CacheRefused(exc) from exc
    except current.errors as exc:
        breaker.trip(exc, doing)
        raise CacheUnavailable() from exc
    breaker.reset()
    return result


def current_revision(name: str = ConfigRevision.CONFIG) -> int:
    """The committed revision, read from the database (one query)."""
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
    except for an API-key change while Redis is unreachable (module docstring).
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


def bump_config_revision() -> int:
    return bump_revision(ConfigRevision.CONFIG)


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
