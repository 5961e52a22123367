"""A config GET's one MGET: everything a hit needs, fetched once per request (`decide`).

A hit needs its read's values (core.reads.reads: the entry in the response's coding, and the
counter mirror it is tagged against, if any) and the two values of the key check (the API-key
revision mirror and the caller's key record, core.api.keys). When every one is present and
current, the stored bytes are the response: one cache round trip, zero SQL. A request that is
not a hit goes on to Django carrying what the MGET fetched (`request.META[READ_KEY]`): the key
check (core.api.auth) and the read's `get_or_build` use it instead of asking Redis again, so a
miss too costs one MGET before it builds.
"""

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from core import store
from core.api.keys import (
    MAX_KEY_LENGTH,
    MalformedAuthorization,
    bearer_key,
    current_record,
    record_keys,
    scope_allows,
)
from core.kept import Kept
from core.models import APIKey
from core.reads.codings import response_coding
from core.reads.points import learn_pin, plain_point
from core.reads.reads import ConfigAnswer, Read, read_for

logger = logging.getLogger(__name__)

# Where a request carries what its one MGET fetched (the WSGI environ is Django's META).
READ_KEY = "core.config_read"


@dataclass(frozen=True)
class Plan:
    """What one request's MGET reads: the read, for whose key, in which coding."""

    read: Read
    key: str = field(repr=False)  # never in a log line
    coding: str

    def cache_names(self) -> list[str]:
        """The MGET's keys, in the order `fetched` takes their values (the same list each
        time: not to be changed)."""
        names = self.__dict__.get("_names")
        if names is None:
            names = [*record_keys(self.key), *self.read.cache_names(self.coding)]
            object.__setattr__(self, "_names", names)
        return names

    def fetched(self, values: list[bytes | None] | None) -> "Fetched":
        """What the MGET answered (None, no answer: all missing)."""
        keys_mirror, key_record, *own = values or [None] * len(self.cache_names())
        return Fetched(self, keys_mirror, key_record, tuple(own))


@dataclass(frozen=True)
class Fetched:
    plan: Plan
    keys_mirror: bytes | None
    key_record: bytes | None = field(repr=False)  # holds the key's hash
    values: tuple = ()

    @property
    def key(self) -> str:
        return self.plan.key

    def hit(self, if_none_match: str | None) -> ConfigAnswer | None:
        """The answer if the cache holds a current one for this caller, else None."""
        read = self.plan.read
        if all(value is None for value in self.values):
            return None  # nothing cached: spare the key check
        try:
            # The record's fields, not a model instance: building one costs a hit 6 %.
            holder = current_record(self.key_record, self.key, self.keys_mirror)
            # Every scope may read configs today; checked all the same, with the rule DRF uses.
            if holder is None or not scope_allows(
                scope=holder["scope"], method="GET", write_scope=APIKey.Scope.WRITE
            ):
                return None
            if not read.point.asked and holder.get("label") != read.point.label:
                learn_pin(self.key, holder.get("label"))
                return None  # a plain read serves the key's label (or live), not this one
            answer = read.hit(self.values, self.plan.coding, if_none_match)
        except (ValueError, KeyError, TypeError):  # an entry or record not of this format
            logger.warning(
                "Unreadable cache entry or key record (reading %s); answering from the database.",
                read.assistant_id or "the bundle",
            )
            return None
        if answer is not None:
            answer.key_name = holder.get("name", "")
        return answer

    def cached_for(self, read: Read, coding: str) -> tuple | None:
        """What the MGET fetched for `read` in `coding`, if this request fetched that."""
        if not read.same(self.plan.read) or coding != self.plan.coding:
            return None
        return self.values


# settings.CONFIG_CACHE_ENTRIES, read once (a read of Django's settings costs a hit more than a
# dict lookup), again after a test changes it.
_cache_entries: bool | None = None
# The key each well-formed `Bearer <key>` header this process saw names, by the header: a
# client sends the same one every time.
_bearer_keys: Kept = Kept(1024)


@receiver(setting_changed)
def _read_settings_again(*, setting, **kwargs):
    global _cache_entries
    if setting == "CONFIG_CACHE_ENTRIES":
        _cache_entries = None


def cache_read_key(meta: dict) -> str | None:
    """The API key to read the cache for, when the cache may decide this request; else None."""
    global _cache_entries
    if _cache_entries is None:
        _cache_entries = bool(settings.CONFIG_CACHE_ENTRIES)
    if READ_KEY in meta or not _cache_entries or store.breaker.is_open():
        return None  # already decided (a request is fetched once), or the cache is not asked
    if not store.store().shared:
        return None  # the embedded default: see LocalStore
    authorization = meta.get("HTTP_AUTHORIZATION")
    key = _bearer_keys.get(authorization)
    if key is not None:
        return key
    try:
        key = bearer_key(authorization)  # None: a session, or no credentials
    except MalformedAuthorization:
        return None  # DRF answers 401
    if key is not None and len(authorization) <= 2 * MAX_KEY_LENGTH:
        _bearer_keys.keep(authorization, key)
    return key


# The plans this process has made, by (key, assistant, point, Accept-Encoding): the same reads
# come again and again, and making one (its read, its coding, its cache keys) cost a hit more
# than answering it. A plan holds nothing that changes. Emptied when full.
_plans: Kept = Kept(1024)


def plan(meta: dict, assistant_id: str | None, point) -> Plan | None:
    """What this request's one MGET reads, when the cache may decide it; else None. `point`:
    what the query asks for (core.reads.points); a plain one reads the key's last seen pin."""
    key = cache_read_key(meta)
    if key is None:
        return None
    point = point if point.asked else plain_point(key, point.user_id)
    accept_encoding = meta.get("HTTP_ACCEPT_ENCODING")
    made = _plans.get((key, assistant_id, point, accept_encoding))
    if made is None:
        made = Plan(read_for(assistant_id, point), key, response_coding(accept_encoding))
        if point.user_id is None:  # one user's read seldom comes again: not worth a place
            _plans.keep((key, assistant_id, point, accept_encoding), made)
    return made


def keep(meta: dict, fetched: Fetched) -> ConfigAnswer | None:
    """Keep what the MGET fetched in `meta` for the rest of the request (which goes on to
    Django on a miss); the answer on a hit, else None."""
    meta[READ_KEY] = fetched
    return fetched.hit(meta.get("HTTP_IF_NONE_MATCH"))


def decide(meta: dict, assistant_id: str | None, point) -> ConfigAnswer | None:
    """Decide hit or miss, once per request: the answer on a hit, else None (core.reads.asgi
    decides the same with an asynchronous MGET)."""
    what = plan(meta, assistant_id, point)
    if what is None:
        return None
    names = what.cache_names()
    return keep(
        meta, what.fetched(store.try_cache("reading a config", lambda s: s.get_many(names)))
    )


def request_read(meta: dict) -> Fetched | None:
    """What this request's MGET fetched, if it made one."""
    return meta.get(READ_KEY)
