"""The cache-hit path of the two config endpoints: one cache round trip, zero SQL.

A hit needs four values, fetched with one MGET: the config revision mirror, the API-key
revision mirror, the caller's API-key record, and the config entry. When every one is present
and current, the stored bytes are the response. Anything else (no Bearer key, a miss, an old
entry, a key record due for its hourly `last_used_at` write, a cache error) returns None and the
request goes the normal way through Django and DRF, which builds, stores and authenticates.

`ConfigFastPath` wraps the WSGI application so a hit skips the middleware stack and DRF; the
security headers the middleware would add are added here from the same settings. Views call
`cached_response` too, so a hit is a hit whichever way the request came in.
"""

import functools
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpResponse
from django.http.request import split_domain_port, validate_host

from core import cache
from core.models import ConfigRevision

logger = logging.getLogger(__name__)

CONFIG_PATH = re.compile(  # used with fullmatch: `$` would also match before a final newline
    r"/api/v1/(?:assistants/(?P<assistant_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
    r"[0-9a-f]{4}-[0-9a-f]{12})/)?config/"
)


@dataclass(frozen=True)
class CachedResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


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


def used_hour(timestamp: float) -> str:
    """The hour an API key's `last_used_at` is accurate to."""
    return time.strftime("%Y%m%d%H", time.gmtime(timestamp))


def key_record(*, api_key, keys_revision: int, hour: str) -> bytes:
    """What the hit path needs to know of an API key, tagged with the key revision read first."""
    expires = api_key.expiry_date.timestamp() if api_key.expiry_date else None
    return json.dumps(
        {
            "rev": keys_revision,
            "hash": api_key.hashed_key,
            "scope": api_key.scope,
            "revoked": api_key.revoked,
            "expires": expires,
            "hour": hour,
        }
    ).encode()


def record_allows(record: bytes | None, raw_key: str, keys_revision: bytes | None) -> bool:
    """True when the cached record proves the key valid, current, and used this hour already."""
    if record is None or keys_revision is None:
        return False
    fields = json.loads(record)
    now = time.time()
    return (
        fields["rev"] == int(keys_revision)
        and not fields["revoked"]
        and (fields["expires"] is None or fields["expires"] > now)
        and fields["hour"] == used_hour(now)
        and hmac.compare_digest(
            fields["hash"], "sha512$$" + hashlib.sha512(raw_key.encode()).hexdigest()
        )
    )


def bearer_key(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or "." not in key or len(key) > 200:
        return None
    return key


def cached_response(
    *, assistant_id: str | None, authorization: str | None, if_none_match: str | None
) -> CachedResponse | None:
    """The response to a config GET if the cache can give it, else None."""
    raw_key = bearer_key(authorization)
    if raw_key is None or cache.breaker.is_open() or not settings.CONFIG_CACHE_ENTRIES:
        return None
    entry_key = (
        cache.assistant_config_key(assistant_id) if assistant_id else cache.BUNDLE_KEY
    )
    keys = [
        cache.revision_key(ConfigRevision.CONFIG),
        cache.revision_key(ConfigRevision.API_KEYS),
        cache.api_key_record_key(raw_key.partition(".")[0]),
        entry_key,
    ]
    values = cache.try_cache("reading a config", lambda s: s.get_many(keys))
    if values is None:
        return None
    try:
        return _response_from(values, raw_key, assistant_id, if_none_match)
    except (ValueError, KeyError, TypeError):  # an entry or record not of this format
        logger.warning("Unreadable cache entry for %s; answering from the database.", entry_key)
        return None


def _response_from(values, raw_key, assistant_id, if_none_match) -> CachedResponse | None:
    config_revision, keys_revision, record, entry = values
    if config_revision is None or not record_allows(record, raw_key, keys_revision):
        return None
    revision = int(config_revision)
    entry_revision, body = cache.split_entry(entry)
    if entry_revision != revision:
        return None  # also for a 304: a current entry proves the assistant is there and active
    headers = config_headers(revision, assistant_id)
    if etag_matches(if_none_match, config_etag(revision, assistant_id)):
        return CachedResponse(304, headers, b"")
    return CachedResponse(200, [("Content-Type", "application/json"), *headers], body)


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


_REASONS = {200: "200 OK", 304: "304 Not Modified"}


class ConfigFastPath:
    """WSGI wrapper: answer config GETs from the cache, hand everything else to Django."""

    def __init__(self, application):
        self.application = application
        self.allowed_hosts = list(settings.ALLOWED_HOSTS)
        proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
        self.proxy_header = proxy
        self.headers = {secure: security_headers(secure) for secure in (False, True)}

    def is_secure(self, environ) -> bool:
        """As HttpRequest.is_secure(): the proxy's header, when configured and sent, decides."""
        if self.proxy_header:
            header, value = self.proxy_header
            if header in environ:
                return environ[header].split(",")[0].strip() == value
        return environ.get("wsgi.url_scheme") == "https"

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "GET" and not environ.get("QUERY_STRING"):
            match = CONFIG_PATH.fullmatch(environ.get("PATH_INFO", ""))
            if match:
                response = self.try_hit(environ, match["assistant_id"])
                if response is not None:
                    start_response(_REASONS[response.status], response.headers)
                    return [response.body]
        return self.application(environ, start_response)

    def try_hit(self, environ, assistant_id) -> CachedResponse | None:
        domain, _ = split_domain_port(environ.get("HTTP_HOST", ""))
        if not domain or not validate_host(domain, self.allowed_hosts):
            return None  # Django answers 400
        secure = self.is_secure(environ)
        if settings.SECURE_SSL_REDIRECT and not secure:
            return None  # Django redirects
        response = cached_response(
            assistant_id=assistant_id,
            authorization=environ.get("HTTP_AUTHORIZATION"),
            if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
        )
        if response is None:
            return None
        return CachedResponse(
            response.status,
            response.headers + self.headers[secure] + [("Content-Length", str(len(response.body)))],
            response.body,
        )


def serve_cached_hits(view):
    """Wrap a config view so a request routed through Django is also a hit when it can be."""

    @functools.wraps(view)  # keeps `cls`/`initkwargs`, so the OpenAPI schema still sees DRF
    def wrapped(request, assistant_id=None):
        if request.method == "GET":
            hit = cached_response(
                assistant_id=str(assistant_id) if assistant_id else None,
                authorization=request.META.get("HTTP_AUTHORIZATION"),
                if_none_match=request.META.get("HTTP_IF_NONE_MATCH"),
            )
            if hit is not None:
                return HttpResponse(hit.body, status=hit.status, headers=dict(hit.headers))
        if assistant_id is None:
            return view(request)
        return view(request, assistant_id=assistant_id)

    return wrapped
