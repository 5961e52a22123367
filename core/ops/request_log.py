"""One log line and the request metrics per request, however it was answered.

A config read the cache can answer is answered by core.reads.fast_path.ConfigFastPath, before
Django's middleware; every other request by Django, through
core.ops.middleware.RequestLogMiddleware.
Both call `begin` (the request id and the start time, kept in the WSGI environ, so a request the
fast path hands on to Django keeps its id) and `finish` (the line, and core.ops.metrics' counts).
With LOG_FORMAT=json as configured, the line is written by core.ops.log_formats.JsonLineWriter,
without a LogRecord (bench/RESULTS.md "Servers: a logged hit"); any other logging
set-up gets it through `logging` as usual, in the same shape.

What a line says about the caller is the API key's *name* or the username: never the key, its
hash, a password, a cookie or the Authorization header, none of which is ever handed to the
logger. (tests/secret_leaks.py fails a test run in which any key created during it was logged.)
"""

import logging
import random
import re
import time
from dataclasses import dataclass

from core.ops import metrics
from core.ops.log_formats import JsonLineWriter, current_request_id

logger = logging.getLogger(__name__)
# The container's case (LOG_FORMAT=json) without a LogRecord; any other, the usual way.
_lines = JsonLineWriter(logger)

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_META = "HTTP_X_REQUEST_ID"
# A client's id is kept when it is 1 to 128 visible ASCII characters. Anything else (longer,
# spaces, control characters, non-ASCII) could forge log lines or response headers, or bloat
# every line: that request gets a generated id instead. fullmatch: `$` would allow a final "\n".
_SANE_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
# Where a request carries its start in the WSGI environ (Django's request.META).
_START_KEY = "core.request_start"
# Where a cache hit answered outside DRF leaves the name of the key it checked.
_KEY_NAME_KEY = "core.api_key_name"


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID when it is sane, else a new random one."""
    if header and _SANE_REQUEST_ID.fullmatch(header):
        return header
    # 128 random bits as 32 hex digits (uuid4().hex's shape), from the process's Mersenne
    # Twister (seeded from the OS, again in each forked worker) rather than a system call per
    # request: an id must be unique, not unguessable.
    return f"{random.getrandbits(128):032x}"


@dataclass(frozen=True, slots=True)
class RequestStart:
    request_id: str
    started: float


def begin(meta: dict) -> RequestStart:
    """The request's id and start time: made on the first call, the same on later ones."""
    start = meta.get(_START_KEY)
    if start is None:
        start = meta[_START_KEY] = RequestStart(
            request_id_from(meta.get(_REQUEST_ID_META)), time.perf_counter()
        )
    current_request_id.set(start.request_id)
    return start


def note_api_key_name(meta: dict, name: str | None) -> None:
    """Record who a cache hit answered outside DRF (which otherwise sets `request.auth`)."""
    meta[_KEY_NAME_KEY] = name


def noted_api_key_name(meta: dict) -> str | None:
    return meta.get(_KEY_NAME_KEY)


def finish(
    start: RequestStart,
    *,
    endpoint: str,
    method: str,
    path: str,
    status: int,
    cache: str | None = None,
    api_key_name: str | None = None,
    user: str | None = None,
) -> None:
    """The request's log line and metrics. `endpoint` is the URL's name (a bounded label);
    `cache` is "hit" or "miss" for config reads."""
    seconds = time.perf_counter() - start.started
    metrics.count_request(endpoint=endpoint, status=status, seconds=seconds, cache=cache)
    if logger.isEnabledFor(logging.INFO):
        fields = {
            "request_id": start.request_id,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "cache": cache,
            "api_key_name": api_key_name,
            "user": user,
        }
        if not _lines.write("request", fields, time.time()):
            # makeRecord + handle is logger.info() without its stack walk for the caller's
            # file and line (which would always be this one).
            record = logger.makeRecord(
                logger.name, logging.INFO, __file__, 0, "request", (), None, extra=fields
            )
            logger.handle(record)
    current_request_id.set(None)
