"""The read path of the two config endpoints: hit or miss is decided once per request.

A hit needs four values, fetched with one MGET (`ConfigRead.fetch`): the entry's revision mirror
(the assistant's own config revision, or the config revision for the bundle: `revision_name`),
the API-key revision mirror, the caller's key record, and the config entry. When every one is
present and current, the stored bytes are the response: one cache round trip, zero SQL.

`ConfigFastPath` wraps the WSGI application (and core.asgi_app, its async twin, the ASGI one:
both through `FastPath`), so a hit skips the middleware and DRF; the security headers the
middleware would add are added here from the same settings. A request that is not a hit goes on
to Django carrying what the MGET fetched (`request.META[READ_KEY]`): the key check
(core.api_keys) and `get_or_build` use it instead of asking Redis again, so a miss too costs
one MGET before it builds. Requests that did not come through a wrapper (the test client,
another server) are decided by `serve_cached_hits` in the same way.

Two freshness checks, one per path, both sound because a change raises the revision mirror
*before* it commits (core.cache) and an entry is tagged with the database revision read
*before* its data was read:
- the hit path compares the entry's tag with the mirror (no SQL): equal means no change has
  committed since the entry's data was read, because any such change raised the mirror above;
- the miss path compares it with the database revision, read first thing in the view: equal
  means the entry holds data at least that new, and nothing newer had committed when we looked.
A change that raised the mirror and then rolled back leaves the mirror one ahead of the
database: no entry equals it, so hits become misses (the miss path still serves the stored
entry, tag = database revision, for one query) until the next committed change catches the
database up. Nothing stale is ever served; it only costs a query per read meanwhile.
"""

import functools
import logging
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.http import HttpResponse
from django.http.request import split_domain_port, validate_host

from core import cache, request_log
from core.api_keys import (
    MalformedAuthorization,
    bearer_key,
    current_record,
    record_keys,
    scope_allows,
)
from core.models import APIKey, ConfigRevision

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


@dataclass(frozen=True)
class CachedResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    key_name: str | None = None  # whose key the hit answered, for the request log


def config_etag(revision: int, assistant_id=None) -> str:
    return f'"{revision}-{assistant_id}"' if assistant_id else f'"{revision}"'


def config_headers(revision: int, assistant_id=None) -> list[tuple[str, str]]:
    """Headers every config response carries, hit or miss."""
    return [
        ("ETag", config_etag(revision, assistant_id)),
        ("X-Config-Revision", str(revision)),
        ("Cache-Control", "private, no-cache"),
        ("Vary", "Authorization, Cookie"),
    ]


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return etag in (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))


def entry_key(assistant_id: str | None) -> str:
    return cache.assistant_config_key(assistant_id) if assistant_id else cache.BUNDLE_KEY


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
    """What one config GET fetched from the cache, in one MGET."""

    assistant_id: str | None
    key: str = field(repr=False)  # never in a log line
    revision_mirror: bytes | None = None
    keys_mirror: bytes | None = None
    key_record: bytes | None = field(default=None, repr=False)  # holds the key's hash
    entry: bytes | None = None

    @staticmethod
    def cache_names(*, assistant_id: str | None, key: str) -> list[str]:
        """The cache keys of this read's one MGET, in the order `from_values` takes them."""
        return [
            cache.revision_key(revision_name(assistant_id)),
            *record_keys(key),
            entry_key(assistant_id),
        ]

    @classmethod
    def from_values(
        cls, *, assistant_id: str | None, key: str, values: list[bytes | None] | None
    ) -> "ConfigRead":
        """The read made of the MGET's answer to `cache_names` (None, no answer: all missing)."""
        return cls(assistant_id, key, *(values or ()))

    @classmethod
    def fetch(cls, *, assistant_id: str | None, key: str) -> "ConfigRead":
        names = cls.cache_names(assistant_id=assistant_id, key=key)
        values = cache.try_cache("reading a config", lambda s: s.get_many(names))
        return cls.from_values(assistant_id=assistant_id, key=key, values=values)

    def hit(self, if_none_match: str | None) -> CachedResponse | None:
        """The response if the cache holds a current answer for this caller, else None."""
        try:
            if self.revision_mirror is None:
                return None
            # The record's fields, not a model instance: building one costs a hit 6 %.
            holder = current_record(self.key_record, self.key, self.keys_mirror)
            # Every scope may read configs today; checked all the same, with the rule DRF uses.
            if holder is None or not scope_allows(
                scope=holder["scope"], method="GET", write_scope=APIKey.Scope.WRITE
            ):
                return None
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
        headers = [*config_headers(revision, self.assistant_id), (CACHE_HEADER, "hit")]
        if etag_matches(if_none_match, config_etag(revision, self.assistant_id)):
            return CachedResponse(304, headers, b"", holder.get("name", ""))
        return CachedResponse(
            200, [("Content-Type", "application/json"), *headers], body, holder.get("name", "")
        )

    def cached_entry(self, assistant_id: str | None) -> tuple[bytes | None, bytes | None] | None:
        """(entry, its revision mirror) as fetched, if this read was for that entry."""
        if assistant_id != self.assistant_id:
            return None
        return self.entry, self.revision_mirror


def cache_read_key(meta: dict) -> str | None:
    """The API key to read the cache for, when the cache may decide this request; else None."""
    if READ_KEY in meta or not settings.CONFIG_CACHE_ENTRIES or cache.breaker.is_open():
        return None  # already decided (a request is fetched once), or the cache is not asked
    if not cache.store().shared:
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


def decide(meta: dict, assistant_id: str | None) -> CachedResponse | None:
    """Decide hit or miss, once per request: the answer on a hit, else None."""
    key = cache_read_key(meta)
    if key is None:
        return None
    return keep_read(meta, ConfigRead.fetch(assistant_id=assistant_id, key=key))


def request_read(meta: dict) -> ConfigRead | None:
    """What this request's MGET fetched, if it made one."""
    return meta.get(READ_KEY)


def get_or_build(
    *,
    assistant_id: str | None,
    revision: int,
    build,
    cached: tuple[bytes | None, bytes | None] | None = None,
) -> tuple[bytes | None, bool]:
    """The config entry of this assistant (None: the bundle) for this committed revision,
    built and stored on a miss; returns (bytes, whether they came from the cache).

    `revision` is its database revision, read by the caller *before* anything else (see the
    module docstring). `cached` is (entry, revision mirror) when this request already fetched
    them. `build()` returns the serialized bytes, or None when there is nothing to serve (an
    inactive assistant; not cached).
    """
    if not settings.CONFIG_CACHE_ENTRIES:
        return build(), False
    key = entry_key(assistant_id)
    if cached is None:
        names = [key, cache.revision_key(revision_name(assistant_id))]
        cached = cache.try_cache("reading a config", lambda s: s.get_many(names), [None, None])
    entry, mirror = cached
    entry_revision, body = split_entry(entry)
    if entry_revision == revision:
        return body, True
    body = build()
    if body is not None:
        cache.try_cache(
            "storing a config",
            lambda s: s.set(key, b"%d\n%s" % (revision, body), cache.ENTRY_SECONDS),
        )
        if mirror is None:
            cache.seed_mirror(revision_name(assistant_id))
    return body, False


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
        """The config endpoint a plain GET asks for (its `assistant_id` group), else None."""
        if method != "GET" or query_string:
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
            hit = None if secure is None else decide(environ, match["assistant_id"])
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
        if request.method == "GET":
            hit = decide(request.META, str(assistant_id) if assistant_id else None)
            if hit is not None:
                request_log.note_api_key_name(request.META, hit.key_name)
                return HttpResponse(hit.body, status=hit.status, headers=dict(hit.headers))
        if assistant_id is None:
            return view(request)
        return view(request, assistant_id=assistant_id)

    return wrapped
