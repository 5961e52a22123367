"""The fast path: a config GET the cache can answer is answered before Django.

`FastPath` is the one place that decides whether the fast path may answer a request (`target`:
a GET of a config endpoint whose query parses, core.reads.points), makes the checks Django's
middleware would make before a view (allowed host, SSL redirect), and gives a hit its headers
(the security headers the middleware would add, from the same settings), log line and counts.
Two server wrappers use it: `ConfigFastPath` (WSGI, here) and core.reads.asgi (ASGI); a request
that came through neither (the test client, another server) is decided by `serve_cached_hits`
in the same way. A hit skips the middleware and DRF; a request handed on to Django keeps its id
(and start) through RequestLogMiddleware, and what its MGET fetched (core.reads.fetch).
"""

import functools
import re
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpResponse
from django.http.request import split_domain_port, validate_host

from core.kept import Kept
from core.ops import request_log
from core.reads.fetch import decide
from core.reads.points import BadQuery, Point, parse_query
from core.reads.reads import ConfigAnswer

CONFIG_PATH = re.compile(  # used with fullmatch: `$` would also match before a final newline
    r"/api/v1/(?:assistants/(?P<assistant_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
    r"[0-9a-f]{4}-[0-9a-f]{12})/)?config/"
)
# The URL names (config_backend/urls.py) of the two config endpoints, by "has an assistant id":
# the `endpoint` label of the request metrics, the same for a hit here and a miss in Django.
ENDPOINTS = {False: "config-bundle", True: "assistant-config"}
_REASONS = {200: "200 OK", 304: "304 Not Modified"}
HOSTS_KEPT = 64
_RAW_REQUEST_ID_HEADER = request_log.REQUEST_ID_HEADER.encode()


@dataclass(frozen=True)
class Target:
    """A config GET the fast path may answer: whose config (None: the bundle), at what point."""

    assistant_id: str | None
    point: Point

    @property
    def endpoint(self) -> str:
        return ENDPOINTS[self.assistant_id is not None]


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
    """What the two server wrappers share: which requests the cache may answer, the checks
    Django's middleware would make before a view, and a hit's headers, log line and counts."""

    def __init__(self):
        self.allowed_hosts = list(settings.ALLOWED_HOSTS)
        self.proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
        self.headers = {secure: security_headers(secure) for secure in (False, True)}
        # Whether each Host header seen is allowed (validate_host), by its value: a hit asks
        # for the same few every time. Emptied when full (a client may send any).
        self._allowed_hosts_seen = Kept(HOSTS_KEPT)

    @staticmethod
    def target(method: str, query_string, path: str) -> Target | None:
        """The config read a GET asks for, else None: not a GET of a config endpoint, or a
        query string with more than the point read (Django decides: a 400, DRF's `?format=`)."""
        if method != "GET":
            return None
        match = CONFIG_PATH.fullmatch(path)
        if match is None:
            return None
        try:
            point, only = parse_query(query_string)
        except BadQuery:
            return None
        return Target(match["assistant_id"], point) if only else None

    def secure_if_servable(self, meta: dict, scheme: str | None) -> bool | None:
        """None when Django must answer first (a host it refuses: 400; plain HTTP it
        redirects); else whether the request came over TLS, as HttpRequest.is_secure() says
        (the proxy's header, when configured and sent, decides)."""
        if not self.host_allowed(meta.get("HTTP_HOST", "")):
            return None
        secure = scheme == "https"
        if self.proxy_header and self.proxy_header[0] in meta:
            secure = meta[self.proxy_header[0]].split(",")[0].strip() == self.proxy_header[1]
        if settings.SECURE_SSL_REDIRECT and not secure:
            return None
        return secure

    def host_allowed(self, host: str) -> bool:
        """Whether Django would accept this Host header (ALLOWED_HOSTS), remembered per value."""
        allowed = self._allowed_hosts_seen.get(host)
        if allowed is None:
            domain, _ = split_domain_port(host)
            allowed = bool(domain) and validate_host(domain, self.allowed_hosts)
            self._allowed_hosts_seen.keep(host, allowed)
        return allowed

    def hit_headers(self, hit: ConfigAnswer, secure: bool, start) -> list[tuple[str, str]]:
        """Every header of a hit: the entry's, the security headers, length, request id."""
        return [
            *hit.headers,
            *self.headers[secure],
            ("Content-Length", str(len(hit.body))),
            (request_log.REQUEST_ID_HEADER, start.request_id),
        ]

    def raw_hit_headers(self, hit: ConfigAnswer, secure: bool, start) -> list[tuple]:
        """hit_headers as an ASGI server takes them (bytes). The block of the entry's headers
        and the security headers is encoded once per entry and kept beside its headers (the
        answer's head, core.reads.reads); length and id are not."""
        block = hit.head.made.get((self, secure))
        if block is None:
            headers = [*hit.headers, *self.headers[secure]]
            block = [(name.encode("latin1"), value.encode("latin1")) for name, value in headers]
            hit.head.made[self, secure] = block
        return [
            *block,
            (b"Content-Length", b"%d" % len(hit.body)),
            (_RAW_REQUEST_ID_HEADER, start.request_id.encode("latin1")),
        ]

    @staticmethod
    def log_hit(start, target: Target, path: str, hit: ConfigAnswer) -> None:
        request_log.finish(
            start,
            endpoint=target.endpoint,
            method="GET",
            path=path,
            status=hit.status,
            cache="hit",
            api_key_name=hit.key_name,
        )


class ConfigFastPath:
    """WSGI wrapper: answer config GETs from the cache, hand everything else to Django."""

    def __init__(self, application):
        self.application = application
        self.fast_path = FastPath()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        target = FastPath.target(environ["REQUEST_METHOD"], environ.get("QUERY_STRING"), path)
        if target:
            start = request_log.begin(environ)
            secure = self.fast_path.secure_if_servable(environ, environ.get("wsgi.url_scheme"))
            hit = None if secure is None else decide(environ, target.assistant_id, target.point)
            if hit is not None:
                start_response(_REASONS[hit.status], self.fast_path.hit_headers(hit, secure, start))
                self.fast_path.log_hit(start, target, path, hit)
                return [hit.body]
        return self.application(environ, start_response)


def serve_cached_hits(view):
    """Wrap a config view so a request that did not come through a wrapper is decided the
    same way (a request that did is not fetched again)."""

    @functools.wraps(view)  # keeps `cls`/`initkwargs`, so the OpenAPI schema still sees DRF
    def wrapped(request, assistant_id=None):
        target = FastPath.target(
            request.method, request.META.get("QUERY_STRING"), request.path_info
        )
        if target is not None:
            hit = decide(request.META, target.assistant_id, target.point)
            if hit is not None:
                request_log.note_api_key_name(request.META, hit.key_name)
                return HttpResponse(hit.body, status=hit.status, headers=dict(hit.headers))
        if assistant_id is None:
            return view(request)
        return view(request, assistant_id=assistant_id)

    return wrapped
