"""The store interface (as django-constance's backends: one base, one module per store), and
the process's store: Redis (core.store.redis) when the settings name django-redis, else the
embedded default's local memory (core.store.memory)."""

from abc import ABC, abstractmethod

from django.conf import settings


class Store(ABC):
    """What the cache is asked: raw bytes by key, locks, the revision mirrors, announcements.

    Sync calls raise the store's own exceptions, told apart by the three tuples below, which
    core.store.breaker's `try_cache`/`require_cache` catch in this order. The async reads
    (`aget`, `aget_many`, for the ASGI fast path) handle them themselves, as `try_cache` would,
    and return None when the store failed.
    """

    overloads: tuple[type[Exception], ...] = ()  # this process's pool is exhausted: busy
    refusals: tuple[type[Exception], ...] = ()  # the store answered with an error
    errors: tuple[type[Exception], ...] = ()  # unreachable (caught after the two above)
    # Whether every app instance and command sees the same mirrors: they can vouch for an entry.
    shared: bool

    @abstractmethod
    def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The value at each key (None: none), in order."""

    def get(self, key: str) -> bytes | None:
        return self.get_many([key])[0]

    @abstractmethod
    async def aget_many(self, keys: list[str]) -> list[bytes | None] | None:
        """get_many from the event loop; None when the store failed (the caller goes on
        without it, as try_cache's default)."""

    async def aget(self, key: str) -> bytes | None:
        values = await self.aget_many([key])
        return None if values is None else values[0]

    @abstractmethod
    def set(self, key: str, value: bytes, timeout: int | None = None) -> None: ...

    @abstractmethod
    def set_many(
        self, values: dict[str, bytes], timeout: int | None = None, *, release=None
    ) -> None:
        """Store `values` together, and release the lock `release` (key, token) if still
        ours."""

    @abstractmethod
    def lock_and_get(
        self, key: str, token: str, milliseconds: int, then_get: str
    ) -> tuple[bool, bytes | None]:
        """Take the lock at `key` for `milliseconds` unless someone holds it, and read the
        value at `then_get` just after: whether it was taken, and that value."""

    @abstractmethod
    def unlock(self, key: str, token: str) -> None:
        """Release the lock at `key` if it still holds `token` (an expired holder's release
        must not free the next holder's lock)."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def raise_to(self, key: str | list[str], value: int) -> int:
        """Raise the mirror at `key` (or each of a list) to `value`, never lowering one;
        returns the (last) mirror's value."""

    @abstractmethod
    def publish(self, channel: str, message: str) -> None: ...

    @abstractmethod
    def ping(self) -> bool: ...

    @abstractmethod
    def clear(self) -> None:
        """Forget every entry and mirror."""


_store: Store | None = None


def store() -> Store:
    """The process's store, made on first use from settings.CACHES["default"]."""
    global _store
    if _store is None:
        backend = settings.CACHES["default"]["BACKEND"]
        if backend.startswith("django_redis."):
            from core.store.redis import RedisStore

            _store = RedisStore()
        else:
            from core.store.memory import LocalStore

            _store = LocalStore()
    return _store
