"""RedisStore: raw bytes in Redis (core.store.base), through django-redis's connection pool for
the sync calls and one redis.asyncio client per process and event loop for the async reads of
the ASGI fast path.

The async client is made on first use from the settings django-redis uses: REDIS_URL, or
REDIS_SENTINELS / REDIS_SENTINEL_SERVICE through redis.asyncio.sentinel (the master, as the sync
client; its new connections check the master's mirrors first, core.store.revisions), with the
same socket timeouts and no retries. At most ASYNC_CONNECTIONS reads are in flight at once; the
rest wait their turn in the event loop. Its failures are handled as try_cache handles the sync
ones (core.store.breaker): unreachable trips the breaker, and while it is open nothing is read;
refused (an error reply) and busy (the pool exhausted, or no connection free within
ASYNC_CONNECTION_WAIT) fail only that read. Either way the read returns None and the caller
answers from the database.
"""

import asyncio
import contextlib
from urllib.parse import urlsplit

import redis
from django.conf import settings

from core.kept import Kept
from core.store.base import Store
from core.store.breaker import breaker, note_busy, note_refused
from core.store.keys import KEY_PREFIX
from core.store.revisions import check_master_on_connect_async

# Async reads in flight at once per process and loop: one round trip each, well under a
# millisecond, so a few connections serve any rate a worker can answer. A burst's other reads
# wait for one in the event loop, rather than opening hundreds of connections to Redis at once
# (each of which may then time out connecting, on a loaded machine, and trip the breaker).
# Hundreds arrive at once: the wait is generous, and when it runs out the read goes without
# the cache (busy, not down).
ASYNC_CONNECTIONS = 16
ASYNC_CONNECTION_WAIT = 2.0
READING = "reading a config"
# The MGETs the async reads sent, packed, by their keys: a hit's reads name the same keys every
# time (core.reads.fetch.Plan), and packing one cost a hit more than looking it up.
PACKED_MGETS_KEPT = 1024

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


def async_client():
    """A redis.asyncio client for the cache django-redis uses (settings.CACHES["default"])."""
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    cache_settings = settings.CACHES["default"]
    options = cache_settings.get("OPTIONS", {})
    timeouts = {
        "socket_connect_timeout": options.get("SOCKET_CONNECT_TIMEOUT"),
        "socket_timeout": options.get("SOCKET_TIMEOUT"),
    }
    if settings.REDIS_SENTINELS:
        from redis.asyncio.sentinel import Sentinel

        sentinel_kwargs = dict(options.get("SENTINEL_KWARGS") or {})
        if "retry" in sentinel_kwargs:  # the settings hold redis-py's synchronous Retry
            sentinel_kwargs["retry"] = Retry(NoBackoff(), sentinel_kwargs["retry"].get_retries())
        database = int(urlsplit(cache_settings["LOCATION"]).path.strip("/") or 0)
        sentinel = Sentinel(settings.REDIS_SENTINELS, sentinel_kwargs=sentinel_kwargs, **timeouts)
        # As django-redis's connections (settings): a new master's mirrors re-seeded first.
        return sentinel.master_for(
            settings.REDIS_SENTINEL_SERVICE,
            db=database,
            redis_connect_func=check_master_on_connect_async,
        )
    # A pool given to the client, as django-redis does: its connections don't retry.
    pool = redis.asyncio.ConnectionPool.from_url(cache_settings["LOCATION"], **timeouts)
    return redis.asyncio.Redis(connection_pool=pool)


class RedisStore(Store):
    """Raw bytes in Redis through django-redis's connection pool (one command, one round trip)."""

    # Every app instance and command sees the same mirrors: they can vouch for an entry.
    shared = True

    def __init__(self, alias: str = "default", client=None, make_async_client=None):
        from django_redis import get_redis_connection

        # The write client: the master, also under Sentinel (core.store, "Replicas").
        self.client = client if client is not None else get_redis_connection(alias, write=True)
        self.overloads = (redis.exceptions.MaxConnectionsError,)  # ours is busy, not Redis down
        self.refusals = (redis.ResponseError,)  # Redis answered: it is there, the breaker stays
        self.errors = (redis.RedisError, OSError)
        self._raise_to = self.client.register_script(_RAISE_TO)
        self._release = self.client.register_script(_RELEASE)
        # The async client: made per event loop (its connections belong to the loop).
        self._make_async_client = make_async_client
        self._loop = None
        self._async_client = None
        self._connections = None
        self._opening = None  # the task opening the connections (kept: a task must be referenced)
        self._packed_mgets = Kept(PACKED_MGETS_KEPT)  # {keys: the MGET packed}

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        return self.client.mget(keys)

    def set(self, key: str, value: bytes, timeout: int | None = None) -> None:
        self.client.set(key, value, ex=timeout)

    def set_many(
        self, values: dict[str, bytes], timeout: int | None = None, *, release=None
    ) -> None:
        """One pipeline, one round trip, the lock last."""
        pipe = self.client.pipeline(transaction=False)
        for key, value in values.items():
            pipe.set(key, value, ex=timeout)
        if release is not None:
            pipe.eval(_RELEASE, 1, *release)  # EVAL: a pipeline's EVALSHA costs a SCRIPT EXISTS
        pipe.execute()

    def lock_and_get(
        self, key: str, token: str, milliseconds: int, then_get: str
    ) -> tuple[bool, bytes | None]:
        """SET NX PX and GET in one pipeline: one round trip."""
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
        keys = [key] if isinstance(key, str) else key
        return int(self._raise_to(keys=keys, args=[value]))

    def publish(self, channel: str, message: str) -> None:
        self.client.publish(channel, message)

    def ping(self) -> bool:
        return bool(self.client.ping())

    def clear(self) -> None:
        for key in self.client.scan_iter(KEY_PREFIX + "*"):
            self.client.delete(key)

    # --- the async reads (module docstring) ----------------------------------------------------

    def async_client(self):
        """This event loop's client (its connections belong to the loop that made them)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            make = self._make_async_client or async_client
            self._loop, self._async_client = loop, make()
            self._connections = asyncio.Semaphore(ASYNC_CONNECTIONS)
            self._opening = loop.create_task(self._open_connections())
        return self._async_client

    async def _open_connections(self) -> None:
        """Open the connections at the loop's first read, not in the middle of a burst, where a
        busy event loop may take longer than the connect timeout (and trip the breaker).
        Nothing is said if Redis is not there: the first read will say it."""
        pool, taken, opened = self._async_client.connection_pool, 0, []
        try:
            with contextlib.suppress(Exception):  # (see the docstring)
                for _ in range(ASYNC_CONNECTIONS):
                    await self._connections.acquire()
                    taken += 1
                    opened.append(await pool.get_connection())
        finally:
            for connection in opened:
                await pool.release(connection)
            for _ in range(taken):
                self._connections.release()

    def _packed_mget(self, connection, keys: list[str]) -> list[bytes]:
        """MGET `keys`, packed as `connection` sends it (every connection of the client packs
        alike)."""
        names = tuple(keys)
        packed = self._packed_mgets.get(names)
        if packed is None:
            packed = self._packed_mgets.keep(names, connection.pack_command("MGET", *names))
        return packed

    async def aget_many(self, keys: list[str]) -> list[bytes | None] | None:
        """The MGET's answer, or None when Redis failed (module docstring).

        On a connection of the client's pool, without the client's per-command machinery
        (retries, which the pool's connections don't do anyway, and observability hooks): a
        third of what the MGET cost a hit. A connection that failed or was interrupted
        (the caller went away) mid-command is closed, so no reply is left for its next user.
        """
        if breaker.is_open():
            return None
        pool = self.async_client().connection_pool
        try:
            if self._connections.locked():  # else acquire() returns at once: no timer to set
                async with asyncio.timeout(ASYNC_CONNECTION_WAIT):
                    await self._connections.acquire()
            else:
                await self._connections.acquire()
        except TimeoutError:
            busy = TimeoutError(
                f"none of {ASYNC_CONNECTIONS} connections free in {ASYNC_CONNECTION_WAIT} s"
            )
            note_busy(busy, READING)
            return None
        if breaker.is_open():  # Redis failed while this read waited: don't try it again
            self._connections.release()
            return None
        try:
            connection = await pool.get_connection()
            # One deadline (the connection's socket_timeout) for the MGET's write and read
            # together, rather than redis-py's: it writes under asyncio.wait_for, which on
            # Python 3.11 makes a Task per command (an event-loop turn more per hit). The
            # connection is this read's alone until released: its timeout is restored first.
            deadline, connection.socket_timeout = connection.socket_timeout, None
            try:
                async with asyncio.timeout(deadline):  # its TimeoutError is an OSError
                    await connection.send_packed_command(self._packed_mget(connection, keys))
                    return await connection.read_response()
            except BaseException:
                await connection.disconnect()
                raise
            finally:
                connection.socket_timeout = deadline
                await pool.release(connection)
        except self.overloads as exc:
            note_busy(exc, READING)
        except self.refusals as exc:
            note_refused(exc, READING)
        except self.errors as exc:
            breaker.trip(exc, READING)
        finally:
            self._connections.release()
        return None
