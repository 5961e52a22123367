"""What a cache failure does (core.store, "Unreachable", "Busy"): the per-process breaker,
`try_cache` for what may go without the cache, `require_cache` for what a change depends on,
and the exceptions a refused change raises."""

import logging
import time

from core.store.base import store

logger = logging.getLogger(__name__)

BREAKER_SECONDS = 5.0
# A burst exhausts the pool for many requests at once: one warning per this many seconds.
BUSY_WARNING_SECONDS = 10.0


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

_SAME_AS_DEFAULT = object()
_busy_warned_at = -BUSY_WARNING_SECONDS


def note_busy(exc: Exception, doing: str) -> None:
    """This process's connection pool to Redis is exhausted: say so (at most every
    BUSY_WARNING_SECONDS); the breaker stays closed (core.store, "Busy")."""
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


def note_refused(exc: Exception, doing: str) -> None:
    """Redis answered with an error: only this call goes without the cache."""
    logger.warning(
        "Cache refused a command while %s (%s: %s); answering from the database.",
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
        note_refused(exc, doing)
        return default
    except current.errors as exc:
        breaker.trip(exc, doing)
        return default


def require_cache(doing: str, operation):
    """Run a cache operation that a change depends on; raise CacheUnavailable if it fails.

    Tried even while the breaker is open (core.store, "Reads never wait"); a success closes it.
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
