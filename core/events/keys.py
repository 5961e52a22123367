"""The API keys of open streams (core.events): a stream whose key stops being valid ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from django.db import connection

from core import store
from core.api.keys import api_key_for, current_record, key_prefix, scope_allows
from core.events.replay import database_threads
from core.events.subscription import heartbeat_seconds
from core.models import APIKey, ConfigRevision

logger = logging.getLogger("core.events")  # one logger for the package, as before the split


def holders_from_database(checks: list[tuple[str, tuple]]) -> dict[str, dict | None]:
    """(key, what the cache held for it) → the key's fields when it is valid, else None: the
    database's answer (core.api.keys.api_key_for, which stores a fresh record). Closes this
    thread's connection."""
    try:
        holders = {}
        for key, cached in checks:
            api_key = api_key_for(key, cached=cached)
            holders[key] = (
                None if api_key is None else {"name": api_key.name, "scope": api_key.scope}
            )
        return holders
    finally:
        connection.close()


def may_subscribe(holder: dict | None) -> bool:
    """Whether a key with these fields may read the stream (the scope rule DRF applies)."""
    return holder is not None and scope_allows(
        scope=holder["scope"], method="GET", write_scope=APIKey.Scope.WRITE
    )


def key_check_seconds() -> float:
    """How often the keys of open streams are re-checked: twice per heartbeat interval, so a
    stream ends within the interval of its key's revocation."""
    return heartbeat_seconds() / 2


class KeyChecks:
    """The hub's re-check of its streams' keys (core.events.hub.Hub, in its loop)."""

    async def key_holders(self, keys: Iterable[str]) -> dict[str, dict | None]:
        """Each key's fields (name, scope) when it is valid, else None: from its cached record
        when current (one MGET for them all, no SQL: core.api.keys.current_record, as a cache
        hit checks a key), else from the database in a database thread."""
        keys = list(keys)
        values = await self._key_records(keys) if keys else None
        mirror, records = (values[0], values[1:]) if values else (None, [None] * len(keys))
        holders, unsure = {}, []
        for key, record in zip(keys, records, strict=True):
            try:
                holders[key] = current_record(record, key, mirror)
            except (ValueError, KeyError, TypeError):  # a record not of this format
                holders[key] = None
            if holders[key] is None:
                unsure.append((key, (mirror, record)))
        if unsure:
            holders.update(
                await self.loop.run_in_executor(database_threads(), holders_from_database, unsure)
            )
        return holders

    async def _key_records(self, keys: list[str]) -> list | None:
        """[key revision mirror, each key's record], or None (no shared cache, or it failed:
        core.store.try_cache's handling)."""
        current = store.store()
        if not current.shared:
            return None
        names = [store.revision_key(ConfigRevision.API_KEYS)]
        names += [store.api_key_record_key(key_prefix(key)) for key in keys]
        return await current.aget_many(names)

    async def _watch_keys(self) -> None:
        """End the streams whose key is no longer valid (core.events docstring)."""
        while True:
            await asyncio.sleep(key_check_seconds())
            keys = {subscription.key for subscription in self._subscribers} - {None}
            if not keys:
                continue
            try:
                holders = await self.key_holders(keys)
            except Exception:  # the database is down: the streams stay open until it answers
                logger.warning("Config events: re-checking stream keys failed", exc_info=True)
                continue
            for subscription in list(self._subscribers):
                if subscription.key in keys and not may_subscribe(holders.get(subscription.key)):
                    subscription.close()
