"""API keys: the one Bearer parser, the cached key record, and who a key is.

A key is checked against its database row (the library's hash verifier) at most once per
settings.API_KEY_RECORD_SECONDS; in between, a record in the cache says what the hit path and
DRF need (name, hash, scope, revoked, expiry, the hour of the last recorded use), tagged with the
`api_keys` revision that every key change bumps. It also carries the label the key's config
reads are pinned to and whether it may move protected labels, so a pinned read's hit needs no
SQL either. A record counts only while its tag equals the
mirrored revision, so a key changed through the models stops counting at once; one changed
behind the models' back (a bare UPDATE) stops counting when its record expires.

A prefix with no usable key (none has it, or its key is revoked or expired) gets a record too,
saying so (`unusable_prefix_record`), for UNUSABLE_PREFIX_SECONDS: a burst of requests repeating
a made-up or retired key is refused without a query each. It is tagged with the key revision
read before the lookup, like any record, so creating (or changing) any key retires it at once:
a key created with that prefix works from its first request.

Scopes (docs/contract.md): `read` = every GET; `runtime` = read + thread writes; `write` =
read + config writes.

A key never carries more than its maker may do (key_grant_problems): the admin's key forms and
`create_api_key --as-user` ask it; the operator at the shell, like a superuser, may make any.
"""

import json
import time

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext
from rest_framework import permissions

from core import store
from core.api.permissions import (
    CONFIG_WRITE_PERMISSIONS,
    MOVE_LABEL,
    MOVE_PROTECTED_LABEL,
    READ_PERMISSIONS,
    THREAD_WRITE_PERMISSIONS,
)
from core.kept import Kept
from core.models import APIKey, ConfigRevision

# Longer keys are not ours (ours are 8 + 1 + 32 characters); refused before any lookup.
MAX_KEY_LENGTH = 200
# How long "no usable key has this prefix" is remembered (see the module docstring). Short: it
# only has to absorb a burst, and a key change retires it sooner anyway.
UNUSABLE_PREFIX_SECONDS = 15


class MalformedAuthorization(ValueError):
    """An `Authorization: Bearer …` header that holds no usable key."""


def bearer_key(authorization: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header; None for no header or another
    scheme (left to other authenticators). Raises MalformedAuthorization for a Bearer header
    whose key cannot be one of ours."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    key = key.strip()
    prefix, dot, secret = key.partition(".")
    if (
        not dot
        or not secret
        or " " in key
        or len(key) > MAX_KEY_LENGTH
        or not (prefix.isascii() and prefix.isalnum())
    ):
        raise MalformedAuthorization("Malformed Authorization header; expected `Bearer <key>`.")
    return key


def key_prefix(key: str) -> str:
    return key.partition(".")[0]


# APIKey.Scope.values builds its list anew on each use: a hit checks the scope every time.
_SCOPES = frozenset(APIKey.Scope.values)


def scope_allows(*, scope: str, method: str, write_scope: str) -> bool:
    """Whether a key of `scope` may make this request where `write_scope` may write."""
    if scope not in _SCOPES:
        return False
    if method in permissions.SAFE_METHODS:
        return True
    return scope == write_scope


# What a key of each scope may do, as the staff permissions that allow the same. A write key
# also moves labels and rolls back (the rollback needs every config write, already listed).
SCOPE_PERMISSIONS = {
    APIKey.Scope.READ: READ_PERMISSIONS,
    APIKey.Scope.RUNTIME: [*READ_PERMISSIONS, *THREAD_WRITE_PERMISSIONS],
    APIKey.Scope.WRITE: [*READ_PERMISSIONS, *CONFIG_WRITE_PERMISSIONS, MOVE_LABEL],
}
# `protected` adds the labels in PROTECTED_LABELS. A pinned `label` adds nothing: it only
# changes which config a read gets when it names none, and any read key may name any label.
PROTECTED_PERMISSIONS = [MOVE_PROTECTED_LABEL]


def key_grant_problems(
    user, *, scope: str, protected: bool, expiry_date=None, before: APIKey | None = None
) -> dict[str, list[str]]:
    """What a key of this scope (protected or not) could do that `user` may not, as messages by
    the form field to blame; {} if the user may give a key this.

    `before`: the key being changed. What it could already do is not granted anew, unless the
    change lets it live longer (then it is, and `expiry_date` is blamed for it).
    """
    if before is not None and before.revoked:
        return {}  # a revoked key does nothing and is never usable again
    lives_longer = before is not None and _lives_longer(expiry_date, before.expiry_date)
    held = set()
    if before is not None and not lives_longer:
        held = {*SCOPE_PERMISSIONS.get(before.scope, []), *_protected_permissions(before.protected)}
    problems: dict[str, list[str]] = {}
    for field, value, needed, power in (
        (
            "scope",
            scope,
            SCOPE_PERMISSIONS.get(scope, []),
            gettext("A `%(scope)s` key") % {"scope": scope},
        ),
        ("protected", protected, _protected_permissions(protected), gettext("A protected key")),
    ):
        missing = [name for name in needed if name not in held and not user.has_perm(name)]
        if not missing:
            continue
        message = gettext(
            "%(power)s may do what %(permissions)s allow(s), and you lack that: a key may not "
            "do more than its maker."
        ) % {"power": power, "permissions": ", ".join(f"`{name}`" for name in missing)}
        if before is not None and getattr(before, field) == value:
            # Unchanged, so new only because the key would live longer.
            problems.setdefault("expiry_date", []).append(
                gettext("Living longer, anew: %(problem)s") % {"problem": message}
            )
        else:
            problems.setdefault(field, []).append(message)
    return problems


def _protected_permissions(protected: bool) -> list[str]:
    return PROTECTED_PERMISSIONS if protected else []


def _lives_longer(expiry_date, old_expiry_date) -> bool:
    if old_expiry_date is None:
        return False
    return expiry_date is None or expiry_date > old_expiry_date


def used_hour(timestamp: float) -> str:
    """The hour an API key's `last_used_at` is accurate to."""
    return time.strftime("%Y%m%d%H", time.gmtime(timestamp))


_this_hour = (0.0, 0.0, "")  # (start, end, used_hour) of the last hour current_hour saw


def current_hour(now: float) -> str:
    """used_hour(now), formatted once an hour rather than on every hit's key check."""
    global _this_hour
    start, end, hour = _this_hour
    if not start <= now < end:
        start = now - now % 3600  # UTC hours start at multiples of 3600 s of Unix time
        hour = used_hour(now)
        _this_hour = (start, start + 3600, hour)
    return hour


def key_record(*, api_key: APIKey, keys_revision: int, hour: str) -> bytes:
    """What the hit path needs to know of a key, tagged with the key revision read first."""
    expires = api_key.expiry_date.timestamp() if api_key.expiry_date else None
    return json.dumps(
        {
            "rev": keys_revision,
            "name": api_key.name,  # for the request log line of a hit (never the key)
            "hash": api_key.hashed_key,
            "scope": api_key.scope,
            "label": api_key.label or None,
            "protected": api_key.protected,
            "revoked": api_key.revoked,
            "expires": expires,
            "hour": hour,
        }
    ).encode()


def unusable_prefix_record(*, keys_revision: int) -> bytes:
    """The record of a prefix no usable key has, tagged with the key revision read first."""
    return json.dumps({"rev": keys_revision, "unusable": True}).encode()


def prefix_known_unusable(record: bytes | None, keys_revision: bytes | None) -> bool:
    """Whether the cached record says, as of the current key revision, that no usable key has
    this prefix (so the key is refused without a query)."""
    if record is None or keys_revision is None:
        return False
    fields = json.loads(record)
    return fields.get("unusable", False) and fields["rev"] == int(keys_revision)


# The fields of the records whose hash their key matched, by (key, record): a key's sha512 is
# computed once per record in a process, not on every hit (bench/RESULTS.md "Servers: a logged
# hit"). Only what the hash proves is remembered. The record's bytes hold the key revision they
# are tagged with, and every check still compares that with the mirror read in the same MGET,
# and the expiry and revocation with now: a key change stops the key at once, as before. A
# wrong secret is never remembered. Emptied when full (a worker serves a few keys).
_verified: Kept = Kept(1024)  # {(key, record): fields}


def verified_fields(record: bytes, key: str) -> dict | None:
    """The record's fields (shared: not to be changed) if `key` matches its hash; None if it
    does not, or if the record is an unusable prefix's."""
    fields = _verified.get((key, record))
    if fields is not None:
        return fields
    fields = json.loads(record)
    if fields.get("unusable") or not APIKey.objects.key_generator.verify(key, fields["hash"]):
        return None
    return _verified.keep((key, record), fields)


def current_record(record: bytes | None, key: str, keys_revision: bytes | None) -> dict | None:
    """The cached record's fields (shared: not to be changed) if they prove the key valid,
    current and used this hour already; else None (the caller asks the database, or refuses an
    unusable prefix)."""
    if record is None or keys_revision is None:
        return None
    fields = verified_fields(record, key)
    if fields is None:
        return None
    now = time.time()
    current = (
        fields["rev"] == int(keys_revision)
        and not fields["revoked"]
        and (fields["expires"] is None or fields["expires"] > now)
        and fields["hour"] == current_hour(now)
    )
    return fields if current else None


def key_from_record(record: bytes | None, key: str, keys_revision: bytes | None) -> APIKey | None:
    """The key's holder, for DRF, if its cached record is current (see current_record)."""
    fields = current_record(record, key, keys_revision)
    if fields is None:
        return None
    # An unsaved stand-in: all that authorization needs, without a query.
    return APIKey(
        prefix=key_prefix(key),
        name=fields.get("name", ""),
        scope=fields["scope"],
        hashed_key=fields["hash"],
        label=fields.get("label"),
        protected=fields.get("protected", False),
    )


def record_keys(key: str) -> list[str]:
    """The cache keys of what checking `key` needs: the key revision mirror, the record."""
    return [store.revision_key(ConfigRevision.API_KEYS), store.api_key_record_key(key_prefix(key))]


def usable_key_with_prefix(prefix: str) -> APIKey | None:
    """The key with this prefix if it is usable (not revoked, not expired), or None."""
    api_key = APIKey.objects.filter(prefix=prefix, revoked=False).first()
    if api_key is None or api_key.has_expired:
        return None
    return api_key


def api_key_for(key: str, *, cached: tuple[bytes | None, bytes | None] | None = None):
    """The key's holder, from its cached record (no SQL) or else from the database.

    `cached` is (key revision mirror, record) when this request already read them (see
    core.reads.fetch); otherwise they are read here. `last_used_at` is accurate to the hour:
    it is written when the key is first used in an hour, and the record then says so.
    """
    if not store.store().shared:
        cached = (None, None)  # the embedded default: records can't see other processes' changes
    elif cached is None:
        cached = store.try_cache(
            "reading an API key", lambda s: s.get_many(record_keys(key)), [None, None]
        )
    mirror, record = cached
    try:
        holder = key_from_record(record, key, mirror)
        if holder is None and prefix_known_unusable(record, mirror):
            return None
    except (ValueError, KeyError, TypeError):  # a record not of this format: ask the database
        holder = None
    if holder is not None:
        return holder

    # Read before the key row, so a record can only be tagged older than what it says.
    keys_revision = store.committed_counter(ConfigRevision.API_KEYS)
    api_key = usable_key_with_prefix(key_prefix(key))
    if api_key is None:
        if store.store().shared:  # (the embedded default never reads records)
            _store_record(
                key_prefix(key),
                unusable_prefix_record(keys_revision=keys_revision),
                UNUSABLE_PREFIX_SECONDS,
                mirror=mirror,
                keys_revision=keys_revision,
            )
        return None
    if not APIKey.objects.key_generator.verify(key, api_key.hashed_key):
        return None  # a wrong secret says nothing about the prefix: its key stays usable
    now = time.time()
    hour = used_hour(now)
    if api_key.last_used_at is None or used_hour(api_key.last_used_at.timestamp()) != hour:
        # update(), not save(): recording a use is not a key change (no revision bump).
        APIKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())

    # Bounded, so a revocation that moves no revision (a bare UPDATE) still takes effect.
    _store_record(
        api_key.prefix,
        key_record(api_key=api_key, keys_revision=keys_revision, hour=hour),
        settings.API_KEY_RECORD_SECONDS,
        mirror=mirror,
        keys_revision=keys_revision,
    )
    return api_key


def _store_record(
    prefix: str, record: bytes, seconds: int, *, mirror: bytes | None, keys_revision: int
) -> None:
    store.try_cache(
        "storing an API key record",
        lambda s: s.set(store.api_key_record_key(prefix), record, seconds),
    )
    # Missing (Redis restarted empty, or evicted it), or behind the database (a key change
    # committed while Redis was unreachable): raised, so older records stop counting and this
    # one, tagged with the database's revision, starts to.
    if mirror is None or int(mirror) < keys_revision:
        store.seed_mirror(ConfigRevision.API_KEYS)
