"""One conditional GET of the config bundle, with the standard library only.

Every outcome the poller has to tell apart comes back as a `Fetched` (200 or 304) or a
`FetchFailed` whose message says what to do about it; nothing here touches client state.
"""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from config_client._bundle import BundleError, check_bundle

BUNDLE_PATH = "/api/v1/config/"
USER_AGENT = "assistant-config-client/0.1"


class FetchFailed(Exception):
    """The server did not give a usable bundle; the message says why (never the API key)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Fetched:
    status: int  # 200: `bundle` is new; 304: the bundle held (If-None-Match) is current
    etag: str | None
    bundle: dict[str, Any] | None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # Following a redirect would resend the Bearer key to wherever it points; a moved
    # server is a configuration error to report, not to paper over.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def bundle_url(base_url: str, label: str | None) -> str:
    url = base_url.rstrip("/") + BUNDLE_PATH
    return url + "?" + urllib.parse.urlencode({"label": label}) if label else url


def fetch_bundle(
    url: str, api_key: str, *, etag: str | None, timeout: float, label: str | None
) -> Fetched:
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json",
        "Accept-Encoding": "gzip",
        "User-Agent": USER_AGENT,
    }
    if etag:
        headers["If-None-Match"] = etag
    # ConfigClient only accepts http:// and https:// base URLs.
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    try:
        with _opener.open(request, timeout=timeout) as response:
            status, answer_headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Fetched(304, exc.headers.get("ETag") or etag, None)
        raise FetchFailed(_refusal(exc, url, label), status=exc.code) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchFailed(f"cannot reach {url}: {reason or type(exc).__name__}") from None
    except OSError as exc:  # e.g. a connection reset while reading the body
        raise FetchFailed(f"reading {url} failed: {exc}") from None
    if status != 200:
        raise FetchFailed(f"{url} answered {status}, expected 200 or 304", status=status)
    try:
        if answer_headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        bundle = check_bundle(json.loads(body))
    except (OSError, ValueError, BundleError) as exc:
        raise FetchFailed(f"{url} answered 200 with an unusable bundle: {exc}") from None
    return Fetched(200, answer_headers.get("ETag"), bundle)


def _refusal(exc: urllib.error.HTTPError, url: str, label: str | None) -> str:
    detail = _detail(exc)
    if exc.code in (301, 302, 303, 307, 308):
        return f"{url} redirected to {exc.headers.get('Location')}: use that as the base URL"
    if exc.code == 401:
        return f"{url} refused the API key (401): {detail}"
    if exc.code == 403:
        return f"{url} refused the API key's scope (403; config reads need `read`): {detail}"
    if label and exc.code in (400, 404):
        return (
            f"{url} answered {exc.code} for label {label!r}: the label does not exist, or this "
            f"server does not serve labels: {detail}"
        )
    return f"{url} answered {exc.code}: {detail}"


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read(2000)
    except OSError:
        return str(exc.reason or "")
    try:
        parsed = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:200] or str(exc.reason)
    detail = parsed.get("detail") if isinstance(parsed, dict) else None
    return detail if isinstance(detail, str) else json.dumps(parsed)[:200]
