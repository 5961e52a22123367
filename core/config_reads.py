"""The read path of the two config endpoints: hit or miss is decided once per request.

A hit needs four values, fetched with one MGET (`ConfigRead.fetch`): the entry's revision mirror
(the assistant's own config revision, or the config revision for the bundle: `revision_name`),
the API-key revision mirror, the caller's key record, and the config entry. When every one is
present and current, the stored bytes are the response: one cache round trip, zero SQL.

`ConfigFastPath` wraps the WSGI application (and core.asgi_app, its async twin, the ASGI one:
both through `FastPath`), so a hit skips the middleware and DRF; the security headers the
middleware would add are added here from the same settings. A request that is not a hit goes on
to Django carrying what the MGET fetched (`request.META[READ_KEY]`): the key check
(core.api.keys) and `get_or_build` use it instead of asking Redis again, so a miss too costs
one MGET before it builds. Requests that did not come through a wrapper (the test client,
another server) are decided by `serve_cached_hits` in the same way.

A read of the config as it was at a revision (exactly `?revision=N`, config_backend.history)
is decided the same way, with one difference: its entry (`config_at_key`) never changes, so it
needs no revision mirror and no tag; present means current, for good (`IMMUTABLE`).

Two freshness checks, one per path, both sound because a change raises the revision mirror
*before* it commits (core.store) and an entry is tagged with the database revision read
*before* its data was read:
- the hit path compares the entry's tag with the mirror (no SQL): equal means no change has
  committed since the entry's data was read, because any such change raised the mirror above;
- the miss path compares it with the database revision, read first thing in the view: equal
  means the entry holds data at least that new, and nothing newer had committed when we looked.
A change that raised the mirror and then rolled back leaves the mirror one ahead of the
database: no entry equals it, so hits become misses (the miss path still serves the stored
entry, tag = database revision, for one query) until the next committed change catches the
database up. Nothing stale is ever served; it only costs a query per read meanwhile.

Misses are built once (`get_or_build`). A miss takes the entry's build lock for its database
revision (`SET NX PX`, core.store.build_lock_key, a random token), builds, then stores the entry
and releases the lock in one pipeline (release: a Lua compare-and-delete, so a builder whose
lock expired never releases the next one's). A miss that finds the lock taken waits: it polls
the entry and the lock (one MGET, 2 ms doubling to 50 ms) and serves the entry only when its
tag *equals* the revision it read from the database first: the miss path's check above, so a
waiter is never served bytes older than the committed state, e.g. the entry the last change
left behind, which is present all along. It builds itself when the lock goes without a current
entry (the holder had nothing to store: an inactive assistant; or its lock expired: it died),
when a newer entry appears, when Redis fails (core.store.try_cache: the breaker, no error), or
after CONFIG_BUILD_WAIT_MS (2 s), which is also the lock's lifetime. The lock is per revision:
a reader of a newer revision never waits for an older build. The embedded default (LocalStore)
runs the same code: its lock is the local-memory cache's atomic `add`, which is all that the
threads of the one process sharing it need.

Compression. An entry is stored in three content codings at once, identity, gzip and zstd
(`encode`: compressed when stored, never per request), under sibling keys (`entry_key`), each
tagged with the same revision, written in the same pipeline. Every body is compressed, small
ones too (a few bytes lost at worst), so a response's coding is a function of its request
alone (`response_coding`: zstd, else gzip, among the codings Accept-Encoding accepts with
q > 0, else identity) and a 304, which has no body, carries the ETag its 200 would. The hit's
one MGET asks for the chosen coding's key: still one round trip. Each coding has its own strong
ETag (`"<revision>-<id>-gzip"`: its bytes differ, as RFC 9110 wants of a strong validator),
and If-None-Match matches the config in any coding (`etag_matches`): a client holds the
decoded config, which is the same. Every config response varies on Accept-Encoding. No brotli:
the runtime clients (ours sends `gzip`; urllib3 and httpx decode zstd with `zstandard`
installed) gain nothing from a third compressed copy of every entry in Redis.
"""

import functools
import gzip
import logging
import re
import secrets
import time
from dataclasses import dataclass, field

import zstandard
from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.http.request import split_domain_port, validate_host

from core import store
from core.api.keys import (
    MalformedAuthorization,
    bearer_key,
    current_record,
    key_prefix,
    record_keys,
    scope_allows,
)
from core.models import LABEL_NAME, LIVE, APIKey, ConfigRevision
from core.ops import request_log

logger = logging.getLogger(__name__)

CONFIG_PATH = re.compile(  # used with fullmatch: `$` would also match before a final newline
    r"/api/v1/(?:assistants/(?P<assistant_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
    r"[0-9a-f]{4}-[0-9a-f]{12})/)?config/"
)
# Where a request carries what its one MGET fetched (the WSGI environ is Django's META).
READ_KEY = "core.config_read"
# Says whether the cache answered ("hit") or the config was built ("miss").
CACHE_HEADER = "X-Config-Cache"
# The URL names (config_backend/urls.py) of the two config endpoints, by "has an assistant id":
# the `endpoint` label of the request metrics, the same for a hit here and a miss in Django.
ENDPOINTS = {False: "config-bundle", True: "assistant-config"}

# Content codings of a config response (module docstring, "Compression"): each is stored, and
# a response picks the first of CODINGS the client accepts, else identity.
IDENTITY, GZIP, ZSTD = "identity", "gzip", "zstd"
CODINGS = (ZSTD, GZIP)
GZIP_LEVEL, ZSTD_LEVEL = 6, 6  # 300 KB of config: 1.5 ms and 3.6 ms, once per build
VARY = "Authorization, Cookie, Accept-Encoding"


@functools.lru_cache(maxsize=256)  # a hit parses the few headers its clients send once
def response_coding(accept_encoding: str | None) -> str:
    """The coding for a request's Accept-Encoding: zstd, else gzip, if the client accepts it
    (listed, or `*`, with q > 0: `q=0` refuses), else identity. No header: identity. When
    the client refuses identity too, identity all the same (RFC 9110 allows it)."""
    if not accept_encoding:
        return IDENTITY
    weights = {}
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0  # unreadable: not a yes
        coding = coding.strip().lower()
        weights["gzip" if coding == "x-gzip" else coding] = weight
    for coding in CODINGS:
        if weights.get(coding, weights.get("*", 0.0)) > 0:
            return coding
    return IDENTITY


def encode(body: bytes, coding: str) -> bytes:
    """`body` in `coding`: called when an entry is stored, never for a hit."""
    if coding == GZIP:
        return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
    if coding == ZSTD:
        # A compressor is not for concurrent use: one per call (its set-up is microseconds).
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(body)
    return body


def content_encoding(coding: str) -> list[tuple[str, str]]:
    """The Content-Encoding header of a 200 in `coding` (identity: none)."""
    return [] if coding == IDENTITY else [("Content-Encoding", coding)]


@dataclass(frozen=True)
class CachedResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    key_name: str | None = None  # whose key the hit answered, for the request log


def config_etag(revision: int, assistant_id=None, coding: str = IDENTITY) -> str:
    """Strong, so per coding (its bytes differ): `"<revision>-<id>"`, `…-gzip"`, `…-zstd"`."""
    tag = f"{revision}-{assistant_id}" if assistant_id else f"{revision}"
    return f'"{tag}"' if coding == IDENTITY else f'"{tag}-{coding}"'


def config_headers(revision: int, assistant_id=None, coding: str = IDENTITY) -> list:
    """Headers every config response carries, hit or miss, 200 or 304 (a 200 in a coding
    adds its Content-Encoding: `content_encoding`)."""
    return [
        ("ETag", config_etag(revision, assistant_id, coding)),
        ("X-Config-Revision", str(revision)),
        ("Cache-Control", "private, no-cache"),
        ("Vary", VARY),
    ]


_CODING_SUFFIX = re.compile(r'-(?:gzip|zstd)"$')


def _same_config(tag: str) -> str:
    """An ETag without its coding suffix: the config it names, in whichever coding."""
    return _CODING_SUFFIX.sub('"', tag.strip().removeprefix("W/"))


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether If-None-Match names this config, in any coding: the client holds the same
    config (decoded), so a 304 is right whichever coding it was sent in."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return _same_config(etag) in (_same_config(tag) for tag in if_none_match.split(","))


def entry_key(assistant_id: str | None, coding: str = IDENTITY) -> str:
    """The entry of a config in a coding: identity's key, or a sibling key (`…:gzip`)."""
    variant = () if coding == IDENTITY else (coding,)
    if assistant_id:
        return store.assistant_config_key(assistant_id, *variant)
    return store.bundle_key(*variant)


def forget_live_entries_at_commit(assistant_ids) -> None:
    """Once the current transaction commits, delete the live entries (every coding) of these
    deleted assistants: live entries never expire (core.store) and no build replaces these any
    more. A read that began before the deletion may store one again (rare, and never served:
    its tag is below the mirror the deletion raised)."""
    keys = [entry_key(str(pk), coding) for pk in assistant_ids for coding in (IDENTITY, *CODINGS)]

    def delete(store):
        for key in keys:
            store.delete(key)

    transaction.on_commit(lambda: store.try_cache("forgetting deleted assistants' entries", delete))


# The config as it was at a revision (`?revision=N`, config_backend.history): its content never
# changes, so its entry needs no revision tag and a client may keep it for good.
IMMUTABLE = "private, max-age=31536000, immutable"
# The query string the fast path decides besides none: exactly `revision=N` (N a bigint).
REVISION_QUERY = re.compile(r"revision=(?P<revision>[0-9]{1,18})")


def config_at_key(revision: int, assistant_id: str | None) -> str:
    """The entry of the config at a revision: one assistant's, or the bundle. The bytes alone:
    they never change."""
    return store.cache_key("config", "at", revision, assistant_id or "bundle")


def config_at_etag(revision: int, assistant_id=None) -> str:
    # "at-": never equal to a live config's ETag, whose body differs (its own revisions).
    return f'"at-{revision}-{assistant_id}"' if assistant_id else f'"at-{revision}"'


def config_at_headers(revision: int, assistant_id=None) -> list[tuple[str, str]]:
    """Headers every response with the config at a revision carries, hit or miss."""
    return [
        ("ETag", config_at_etag(revision, assistant_id)),
        ("X-Config-Revision", str(revision)),
        ("Cache-Control", IMMUTABLE),
        ("Vary", "Authorization, Cookie"),
    ]


def revision_asked(query_string) -> int | None:
    """N when the query string is exactly `revision=N`; else None (bytes or text)."""
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin1")
    match = REVISION_QUERY.fullmatch(query_string or "")
    return int(match["revision"]) if match else None


# The other query string the fast path decides: exactly `label=NAME` (a valid label name).
LABEL_QUERY = re.compile(r"label=(?P<label>[a-z][a-z0-9-]{0,31})")


def label_asked(query_string) -> str | None:
    """NAME when the query string is exactly `label=NAME` (not `live`); else None."""
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin1")
    match = LABEL_QUERY.fullmatch(query_string or "")
    if match is None or match["label"] == LIVE or not LABEL_NAME.match(match["label"]):
        return None
    return match["label"]


def label_entry_key(label: str, assistant_id: str | None) -> str:
    """The entry of a config read through a label (config_backend.history.labels)."""
    return store.cache_key("config", "label", label, assistant_id or "bundle")


def label_headers(revision: int, etag: str) -> list[tuple[str, str]]:
    """Headers of a config read through a label, hit or miss: its ETag changes only with the
    content (config_backend.history.labels.content_etag); the revision is the label's."""
    return [
        ("ETag", etag),
        ("X-Config-Revision", str(revision)),
        ("Cache-Control", "private, no-cache"),
        ("Vary", "Authorization, Cookie"),
    ]


@dataclass(frozen=True)
class LabelEntry:
    """A cached label read, tagged with the label's move counter read before the label's row:
    stored as b"<moves>\\n<label's revision> <ETag>\\n<bytes>"."""

    moves: int
    revision: int
    etag: str
    body: bytes

    def stored(self) -> bytes:
        return b"%d\n%d %s\n%s" % (self.moves, self.revision, self.etag.encode(), self.body)


def split_label_entry(entry: bytes | None) -> LabelEntry | None:
    """A label entry's parts; None when missing or not of this format."""
    moves, rest = split_entry(entry)
    head, _, body = (rest or b"").partition(b"\n")
    revision, _, etag = head.partition(b" ")
    if moves is None or not revision.isdigit() or not etag:
        return None
    return LabelEntry(moves, int(revision), etag.decode(), body)


# The label each key was last seen pinned to (None: not pinned), by key prefix, learned from
# its record: a plain read by a pinned key then fetches its label's entry in its one MGET. A
# stale guess (the key was re-pinned) costs one miss: `hit` checks the record. Per process.
_pinned_labels: dict[str, str | None] = {}
PINNED_LABELS_MAX = 10_000


def read_point(key: str, *, at: int | None = None, label: str | None = None) -> dict:
    """What a config read fetches, as `ConfigRead.cache_names`/`from_values` take it: the
    `?revision=` or `?label=` it asks for, else (a plain read) the label its key is pinned to."""
    if at is not None or label is not None:
        return {"at": at, "label": label, "query_point": True}
    return {"label": _pinned_labels.get(key_prefix(key)), "query_point": False}


def learn_pin(key: str, holder: dict) -> None:
    """Remember the label a current key record says its key is pinned to."""
    if len(_pinned_labels) >= PINNED_LABELS_MAX:
        _pinned_labels.clear()
    _pinned_labels[key_prefix(key)] = holder.get("label")


def revision_name(assistant_id: str | None) -> str:
    """The revision an entry is tagged with: the assistant's own (it moves only when its
    config changes, core.changes), or the config revision for the bundle."""
    return ConfigRevision.for_assistant(assistant_id) if assistant_id else ConfigRevision.CONFIG


def split_entry(entry: bytes | None) -> tuple[int | None, bytes | None]:
    """An entry is b"<revision>\\n<bytes>": the revision read before its data was read."""
    revision, _, body = (entry or b"").partition(b"\n")
    if not revision.isdigit():
        return None, None  # missing, or not of this format: a miss
    return int(revision), body


@dataclass(frozen=True)
class ConfigRead:
    """What one config GET fetched from the cache, in one MGET.

    `at`: the revision a `?revision=N` read asks for. Its entry (`config_at_key`) never changes,
    so the read fetches no revision mirror: the key check's two values and the entry.
    `label`: the label a read goes through (its `?label=`, or the label its key is pinned to);
    it fetches the label's move-counter mirror as `revision_mirror` and the label's entry.
    `query_point`: the request named what to read; a plain read is a hit only when the key's
    record is pinned to the label read (None: live), so a pinned key never gets live config.
    """

    assistant_id: str | None
    key: str = field(repr=False)  # never in a log line
    revision_mirror: bytes | None = None
    keys_mirror: bytes | None = None
    key_record: bytes | None = field(default=None, repr=False)  # holds the key's hash
    entry: bytes | None = None
    at: int | None = None
    label: str | None = None
    query_point: bool = False
    coding: str = IDENTITY  # of a live read: its entry is the variant in this coding

    @staticmethod
    def cache_names(
        *,
        assistant_id: str | None,
        key: str,
        at: int | None = None,
        label: str | None = None,
        query_point: bool = False,
        coding: str = IDENTITY,
    ) -> list[str]:
        """The cache keys of this read's one MGET, in the order `from_values` takes them."""
        if at is not None:
            return [*record_keys(key), config_at_key(at, assistant_id)]
        if label is not None:
            return [
                store.revision_key(ConfigRevision.for_label(label)),
                *record_keys(key),
                label_entry_key(label, assistant_id),
            ]
        return [
            store.revision_key(revision_name(assistant_id)),
            *record_keys(key),
            entry_key(assistant_id, coding),
        ]

    @classmethod
    def from_values(
        cls,
        *,
        assistant_id: str | None,
        key: str,
        values: list[bytes | None] | None,
        at: int | None = None,
        label: str | None = None,
        query_point: bool = False,
        coding: str = IDENTITY,
    ) -> "ConfigRead":
        """The read made of the MGET's answer to `cache_names` (None, no answer: all missing)."""
        if at is not None:
            keys_mirror, key_record, entry = values or (None, None, None)
            return cls(
                assistant_id, key, None, keys_mirror, key_record, entry, at=at, query_point=True
            )
        coding = IDENTITY if label is not None else coding  # only live entries are encoded
        return cls(
            assistant_id, key, *(values or ()), label=label, query_point=query_point, coding=coding
        )

    @classmethod
    def fetch(cls, *, assistant_id: str | None, key: str, **point) -> "ConfigRead":
        """`point`: what `read_point` says this read asks for."""
        names = cls.cache_names(assistant_id=assistant_id, key=key, **point)
        values = store.try_cache("reading a config", lambda s: s.get_many(names))
        return cls.from_values(assistant_id=assistant_id, key=key, values=values, **point)

    def hit(self, if_none_match: str | None) -> CachedResponse | None:
        """The response if the cache holds a current answer for this caller, else None."""
        try:
            if (self.entry if self.at is not None else self.revision_mirror) is None:
                return None
            # The record's fields, not a model instance: building one costs a hit 6 %.
            holder = current_record(self.key_record, self.key, self.keys_mirror)
            # Every scope may read configs today; checked all the same, with the rule DRF uses.
            if holder is None or not scope_allows(
                scope=holder["scope"], method="GET", write_scope=APIKey.Scope.WRITE
            ):
                return None
            if not self.query_point and holder.get("label") != self.label:
                learn_pin(self.key, holder)
                return None  # a plain read serves the key's label (or live), not this one
            if self.at is not None:
                return self._hit_at(if_none_match, holder.get("name", ""))
            if self.label is not None:
                return self._hit_label(if_none_match, holder.get("name", ""))
            revision = int(self.revision_mirror)
            entry_revision, body = split_entry(self.entry)
        except (ValueError, KeyError, TypeError):  # an entry or record not of this format
            logger.warning(
                "Unreadable cache entry or key record (reading %s); answering from the database.",
                self.assistant_id or "the bundle",
            )
            return None
        if entry_revision != revision:
            return None  # also for a 304: a current entry proves the assistant is active
        headers = [
            *config_headers(revision, self.assistant_id, self.coding),
            (CACHE_HEADER, "hit"),
        ]
        if etag_matches(if_none_match, config_etag(revision, self.assistant_id)):
            return CachedResponse(304, headers, b"", holder.get("name", ""))
        return CachedResponse(
            200,
            [("Content-Type", "application/json"), *content_encoding(self.coding), *headers],
            body,
            holder.get("name", ""),
        )

    def _hit_at(self, if_none_match: str | None, key_name: str) -> CachedResponse:
        """The config at `at`: present means built (the revision existed, the assistant was
        active at it), and it never changes."""
        headers = [*config_at_headers(self.at, self.assistant_id), (CACHE_HEADER, "hit")]
        if etag_matches(if_none_match, config_at_etag(self.at, self.assistant_id)):
            return CachedResponse(304, headers, b"", key_name)
        return CachedResponse(
            200, [("Content-Type", "application/json"), *headers], self.entry, key_name
        )

    def _hit_label(self, if_none_match: str | None, key_name: str) -> CachedResponse | None:
        """The label's entry, if tagged with the label's current move counter (its mirror)."""
        entry = split_label_entry(self.entry)
        if entry is None or entry.moves != int(self.revision_mirror):
            return None
        headers = [*label_headers(entry.revision, entry.etag), (CACHE_HEADER, "hit")]
        if etag_matches(if_none_match, entry.etag):
            return CachedResponse(304, headers, b"", key_name)
        return CachedResponse(
            200, [("Content-Type", "application/json"), *headers], entry.body, key_name
        )

    def cached_label_entry(
        self, label: str, assistant_id: str | None
    ) -> tuple[bytes | None, bytes | None] | None:
        """(label entry, the label's move-counter mirror) as fetched, if this read was for it."""
        if (assistant_id, label) != (self.assistant_id, self.label) or self.at is not None:
            return None
        return self.entry, self.revision_mirror

    def cached_entry_at(self, assistant_id: str | None, at: int) -> bytes | None:
        """The entry of the config at `at` as fetched, if this read was for it."""
        if (assistant_id, at) != (self.assistant_id, self.at):
            return None
        return self.entry

    def cached_entry(
        self, assistant_id: str | None, coding: str = IDENTITY
    ) -> tuple[bytes | None, bytes | None] | None:
        """(entry, its revision mirror) as fetched, if this read was for that entry in that
        coding."""
        if assistant_id != self.assistant_id or self.at is not None or self.label is not None:
            return None
        if coding != self.coding:
            return None
        return self.entry, self.revision_mirror


def cache_read_key(meta: dict) -> str | None:
    """The API key to read the cache for, when the cache may decide this request; else None."""
    if READ_KEY in meta or not settings.CONFIG_CACHE_ENTRIES or store.breaker.is_open():
        return None  # already decided (a request is fetched once), or the cache is not asked
    if not store.store().shared:
        return None  # the embedded default: see LocalStore
    try:
        return bearer_key(meta.get("HTTP_AUTHORIZATION"))  # None: a session, or no credentials
    except MalformedAuthorization:
        return None  # DRF answers 401


def keep_read(meta: dict, read: ConfigRead) -> CachedResponse | None:
    """Keep what the MGET fetched in `meta` for the rest of the request (which goes on to
    Django on a miss); the answer on a hit, else None."""
    meta[READ_KEY] = read
    return read.hit(meta.get("HTTP_IF_NONE_MATCH"))


def read_request(
    meta: dict, assistant_id: str | None, at: int | None = None, label: str | None = None
) -> dict | None:
    """What this request's one MGET reads, as `ConfigRead.cache_names`/`from_values` take it,
    when the cache may decide it; else None. `at`: the revision a `?revision=N` read asks
    for; `label`: the label a `?label=NAME` read asks for."""
    key = cache_read_key(meta)
    if key is None:
        return None
    point = read_point(key, at=at, label=label)
    coding = response_coding(meta.get("HTTP_ACCEPT_ENCODING"))
    return {"assistant_id": assistant_id, "key": key, "coding": coding, **point}


def decide(
    meta: dict, assistant_id: str | None, at: int | None = None, label: str | None = None
) -> CachedResponse | None:
    """Decide hit or miss, once per request: the answer on a hit, else None (see
    `read_request`; core.asgi_app decides the same with an asynchronous MGET)."""
    what = read_request(meta, assistant_id, at, label)
    if what is None:
        return None
    return keep_read(meta, ConfigRead.fetch(**what))


def request_read(meta: dict) -> ConfigRead | None:
    """What this request's MGET fetched, if it made one."""
    return meta.get(READ_KEY)


def get_or_build(
    *,
    assistant_id: str | None,
    revision: int,
    build,
    cached: tuple[bytes | None, bytes | None] | None = None,
    coding: str = IDENTITY,
) -> tuple[bytes | None, bool]:
    """The config entry of this assistant (None: the bundle) for this committed revision, in
    `coding`, built and stored on a miss; returns (bytes, whether they came from the cache).

    `revision` is its database revision, read by the caller *before* anything else (see the
    module docstring). `cached` is (entry, revision mirror) when this request already fetched
    them (in `coding`). `build()` returns the serialized bytes, or None when there is nothing to
    serve (an inactive assistant; not cached). Concurrent misses build once: `_build_once`.
    """
    if not settings.CONFIG_CACHE_ENTRIES:
        body = build()
        return (None if body is None else encode(body, coding)), False
    key = entry_key(assistant_id, coding)
    if cached is None:
        names = [key, store.revision_key(revision_name(assistant_id))]
        cached = store.try_cache("reading a config", lambda s: s.get_many(names), [None, None])
    entry, mirror = cached
    entry_revision, body = split_entry(entry)
    if entry_revision == revision:
        return body, True
    return _build_once(assistant_id, revision, build, coding, seed=mirror is None)


def _build_once(assistant_id, revision: int, build, coding: str, *, seed: bool):
    """A miss: one request builds the entry for this revision, holding its lock; the others
    wait for it (`_wait_for_entry`), then build themselves if it did not come."""
    key = entry_key(assistant_id, coding)
    lock = store.build_lock_key(entry_key(assistant_id), revision)
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
    entry_revision, body = split_entry(entry)
    if entry_revision == revision:
        let_go()
        return body, True
    if locked is False:
        body = _wait_for_entry(key, lock, revision, wait_ms)
        if body is not None:
            return body, True

    try:
        body = build()
    except BaseException:
        let_go()
        raise
    if body is None:  # nothing to store: the waiters see the lock go and build (a 404) too
        let_go()
        return None, False
    variants = {one: encode(body, one) for one in (IDENTITY, *CODINGS)}
    entries = {
        entry_key(assistant_id, one): b"%d\n%s" % (revision, encoded)
        for one, encoded in variants.items()
    }
    store.try_cache(
        "storing a config",
        lambda s: s.set_many(entries, store.LIVE_ENTRY_SECONDS, release=release),
    )
    if seed:
        store.seed_mirror(revision_name(assistant_id))
    return variants[coding], False


def _wait_for_entry(key: str, lock: str, revision: int, wait_ms: int) -> bytes | None:
    """The entry at `key` once the lock holder has stored it for `revision`; None when it
    stores nothing (released without, or died and its lock expired), a newer change got there
    first, Redis fails, or `wait_ms` pass. Never an entry tagged other than `revision`."""
    deadline = time.monotonic() + wait_ms / 1000
    pause = 0.002
    while True:
        time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
        values = store.try_cache("waiting for a config build", lambda s: s.get_many([key, lock]))
        if values is None:
            return None
        entry_revision, body = split_entry(values[0])
        if entry_revision == revision:
            return body
        if values[1] is None or (entry_revision or 0) > revision:
            return None
        if time.monotonic() >= deadline:
            logger.warning(
                "Waited %d ms for another request to build a config entry (%s); building it.",
                wait_ms,
                key,
            )
            return None
        pause = min(pause * 2, 0.05)


def security_headers(secure: bool) -> list[tuple[str, str]]:
    """The headers Django's SecurityMiddleware and XFrameOptionsMiddleware would add."""
    headers = []
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        headers.append(("Referrer-Policy", settings.SECURE_REFERRER_POLICY))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    headers.append(("X-Frame-Options", settings.X_FRAME_OPTIONS))
    if secure and settings.SECURE_HSTS_SECONDS:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        headers.append(("Strict-Transport-Security", value))
    return headers


class FastPath:
    """What the two server wrappers, WSGI (ConfigFastPath) and ASGI (core.asgi_app), share
    around `decide`: which requests the cache may answer, the checks Django's middleware would
    make before a view (allowed host, SSL redirect), and a hit's headers, log line and counts.
    A hit skips Django's middleware, so it gets its id, line and counts here; a request handed
    on keeps its id (and start) through RequestLogMiddleware."""

    def __init__(self):
        self.allowed_hosts = list(settings.ALLOWED_HOSTS)
        self.proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
        self.headers = {secure: security_headers(secure) for secure in (False, True)}

    @staticmethod
    def target(method: str, query_string, path: str) -> re.Match | None:
        """The config endpoint a plain GET (no query string, or exactly `revision=N` or
        `label=NAME`: see `revision_asked`, `label_asked`) asks for (its `assistant_id` group),
        else None."""
        if method != "GET":
            return None
        if query_string and revision_asked(query_string) is None and not label_asked(query_string):
            return None
        return CONFIG_PATH.fullmatch(path)

    def secure_if_servable(self, meta: dict, scheme: str | None) -> bool | None:
        """None when Django must answer first (a host it refuses: 400; plain HTTP it
        redirects); else whether the request came over TLS, as HttpRequest.is_secure() says
        (the proxy's header, when configured and sent, decides)."""
        domain, _ = split_domain_port(meta.get("HTTP_HOST", ""))
        if not domain or not validate_host(domain, self.allowed_hosts):
            return None
        secure = scheme == "https"
        if self.proxy_header and self.proxy_header[0] in meta:
            secure = meta[self.proxy_header[0]].split(",")[0].strip() == self.proxy_header[1]
        if settings.SECURE_SSL_REDIRECT and not secure:
            return None
        return secure

    def hit_headers(self, hit: CachedResponse, secure: bool, start) -> list[tuple[str, str]]:
        """Every header of a hit: the entry's, the security headers, length, request id."""
        return [
            *hit.headers,
            *self.headers[secure],
            ("Content-Length", str(len(hit.body))),
            (request_log.REQUEST_ID_HEADER, start.request_id),
        ]

    @staticmethod
    def log_hit(start, match: re.Match, path: str, hit: CachedResponse) -> None:
        request_log.finish(
            start,
            endpoint=ENDPOINTS[match["assistant_id"] is not None],
            method="GET",
            path=path,
            status=hit.status,
            cache="hit",
            api_key_name=hit.key_name,
        )


_REASONS = {200: "200 OK", 304: "304 Not Modified"}


class ConfigFastPath:
    """WSGI wrapper: answer config GETs from the cache, hand everything else to Django."""

    def __init__(self, application):
        self.application = application
        self.fast_path = FastPath()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        match = FastPath.target(environ["REQUEST_METHOD"], environ.get("QUERY_STRING"), path)
        if match:
            start = request_log.begin(environ)
            secure = self.fast_path.secure_if_servable(environ, environ.get("wsgi.url_scheme"))
            query_string = environ.get("QUERY_STRING")
            at, label = revision_asked(query_string), label_asked(query_string)
            hit = None if secure is None else decide(environ, match["assistant_id"], at, label)
            if hit is not None:
                start_response(_REASONS[hit.status], self.fast_path.hit_headers(hit, secure, start))
                self.fast_path.log_hit(start, match, path, hit)
                return [hit.body]
        return self.application(environ, start_response)


def serve_cached_hits(view):
    """Wrap a config view so a request that did not come through ConfigFastPath is decided
    the same way (a request that did is not fetched again)."""

    @functools.wraps(view)  # keeps `cls`/`initkwargs`, so the OpenAPI schema still sees DRF
    def wrapped(request, assistant_id=None):
        query_string = request.META.get("QUERY_STRING")
        at, label = revision_asked(query_string), label_asked(query_string)
        if request.method == "GET" and (not query_string or at is not None or label is not None):
            hit = decide(request.META, str(assistant_id) if assistant_id else None, at, label)
            if hit is not None:
                request_log.note_api_key_name(request.META, hit.key_name)
                return HttpResponse(hit.body, status=hit.status, headers=dict(hit.headers))
        if assistant_id is None:
            return view(request)
        return view(request, assistant_id=assistant_id)

    return wrapped
