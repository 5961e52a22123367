"""LocalStore: the embedded default's store, Django's local-memory cache (core.store.base)."""

import threading

from django.core.cache import caches

from core.store.base import Store


class LocalStore(Store):
    """The embedded default: Django's local-memory cache, private to one process."""

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

    async def aget_many(self, keys: list[str]) -> list[bytes | None] | None:
        return self.get_many(keys)  # this process's memory: nothing to wait for, nothing fails

    def set(self, key: str, value: bytes, timeout: int | None = None) -> None:
        self.cache.set(key, value, timeout)

    def set_many(
        self, values: dict[str, bytes], timeout: int | None = None, *, release=None
    ) -> None:
        self.cache.set_many(values, timeout)
        if release is not None:
            self.unlock(*release)

    def lock_and_get(
        self, key: str, token: str, milliseconds: int, then_get: str
    ) -> tuple[bool, bytes | None]:
        # Threads of this process are all that share it: `add` is atomic among them.
        return self.cache.add(key, token, milliseconds / 1000), self.cache.get(then_get)

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
