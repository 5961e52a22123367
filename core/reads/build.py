"""Misses are built once, for the three kinds of read alike (core.reads.reads).

A miss takes the entry's build lock for its tag (`SET NX PX`, core.store.build_lock_key, a
random token), builds, then stores the entry in every coding and releases the lock in one
pipeline (release: a Lua compare-and-delete, so a builder whose lock expired never releases the
next one's). A miss that finds the lock taken waits: it polls the entry and the lock (one MGET,
2 ms doubling to 50 ms) and serves the entry only when its tag *equals* the tag it read from the
database first (core.reads.reads, the miss path's check), so a waiter is never served bytes
older than the committed state, e.g. the entry the last change left behind, which is present
all along. It builds itself when the lock goes without a current entry (the holder had nothing
to store: an inactive assistant, live; or its lock expired: it died), when a newer entry
appears, when Redis fails (core.store.try_cache: the breaker, no error), or after
CONFIG_BUILD_WAIT_MS (2 s), which is also the lock's lifetime. The lock is per tag: a reader of
a newer revision never waits for an older build. The embedded default (LocalStore) runs the
same code: its lock is the local-memory cache's atomic `add`, which is all that the threads of
the one process sharing it need.

A read whose answer never changes for its tag (at a revision; through a label, until it moves)
also keeps its 404 (`keeps_absence`): the entry then holds ABSENT (core.reads.entries), and the
next read of it is a 404 without building anything.
"""

import logging
import secrets
import time
from dataclasses import dataclass

from django.conf import settings

from core import store
from core.reads.codings import ALL_CODINGS, IDENTITY, encode
from core.reads.entries import ABSENT, split_entry, tagged

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Built:
    """What a build made: the body (None: nothing to serve, a 404), and the part of the
    entry's payload before it (a label read's revision and ETag)."""

    body: bytes | None
    head: bytes = b""

    def payload(self, coding: str) -> bytes:
        return ABSENT if self.body is None else self.head + encode(self.body, coding)


def get_or_build(read, *, tag: int, build, coding: str = IDENTITY, cached=None):
    """The payload of `read`'s entry tagged `tag` in `coding` (None: a 404), from the cache or
    built and stored; and whether it came from the cache.

    `read` names its entry: `entry_key(coding)`, `mirror_name` (the counter whose mirror tags
    it, seeded when missing; None: the tag never changes), `entry_seconds` (its lifetime;
    None: for good) and `keeps_absence` (whether a 404 is stored too). `tag` is read by the
    caller *before* anything else (core.reads.reads). `cached` is (entry, mirror) when this
    request already fetched them. `build()` returns a Built.
    """
    if not settings.CONFIG_CACHE_ENTRIES:
        built = build()
        return (None if built.body is None else built.payload(coding)), False
    if cached is None:
        names = [read.entry_key(coding)]
        if read.mirror_name is not None:
            names.append(store.revision_key(read.mirror_name))
        fetched = store.try_cache("reading a config", lambda s: s.get_many(names), [None, None])
        cached = (fetched[0], fetched[1] if read.mirror_name is not None else b"")
    entry, mirror = cached
    entry_tag, payload = split_entry(entry)
    if entry_tag == tag:
        return _present(payload), True
    return _build_once(read, tag, build, coding, seed=mirror is None)


def _present(payload: bytes) -> bytes | None:
    return None if payload == ABSENT else payload


def _build_once(read, tag: int, build, coding: str, *, seed: bool):
    """A miss: one request builds the entry for this tag, holding its lock; the others wait
    for it (`_wait_for_entry`), then build themselves if it did not come."""
    key = read.entry_key(coding)
    lock = store.build_lock_key(read.entry_key(IDENTITY), tag)
    token = secrets.token_hex(8)
    wait_ms = settings.CONFIG_BUILD_WAIT_MS
    # True: ours; False: another request builds; None: Redis failed (or no waiting): build.
    locked, entry = None, None
    if wait_ms > 0:
        locked, entry = store.try_cache(
            "locking a config build",
            lambda s: s.lock_and_get(lock, token, wait_ms, then_get=key),
            (None, None),
        )
    release = (lock, token) if locked else None

    def let_go():
        if release:
            store.try_cache("releasing a config build", lambda s: s.unlock(*release))

    # Read with the lock: built by a request that held it after this one's first read.
    entry_tag, payload = split_entry(entry)
    if entry_tag == tag:
        let_go()
        return _present(payload), True
    if locked is False:
        payload = _wait_for_entry(key, lock, tag, wait_ms)
        if payload is not None:
            return _present(payload), True

    try:
        built = build()
    except BaseException:
        let_go()
        raise
    if built.body is None and not read.keeps_absence:
        let_go()  # nothing to store: the waiters see the lock go and build (a 404) too
        return None, False
    entries = {read.entry_key(one): tagged(tag, built.payload(one)) for one in ALL_CODINGS}
    store.try_cache(
        "storing a config",
        lambda s: s.set_many(entries, read.entry_seconds, release=release),
    )
    if seed and read.mirror_name is not None:
        store.seed_mirror(read.mirror_name)
    return (None if built.body is None else built.payload(coding)), False


def _wait_for_entry(key: str, lock: str, tag: int, wait_ms: int) -> bytes | None:
    """The payload at `key` once the lock holder has stored it for `tag`; None when it
    stores nothing (released without, or died and its lock expired), a newer change got there
    first, Redis fails, or `wait_ms` pass. Never an entry tagged other than `tag`."""
    deadline = time.monotonic() + wait_ms / 1000
    pause = 0.002
    while True:
        time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
        values = store.try_cache("waiting for a config build", lambda s: s.get_many([key, lock]))
        if values is None:
            return None
        entry_tag, payload = split_entry(values[0])
        if entry_tag == tag:
            return payload
        if values[1] is None or (entry_tag or 0) > tag:
            return None
        if time.monotonic() >= deadline:
            logger.warning(
                "Waited %d ms for another request to build a config entry (%s); building it.",
                wait_ms,
                key,
            )
            return None
        pause = min(pause * 2, 0.05)
