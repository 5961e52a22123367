"""Prometheus metrics, served at `/metrics` (docs/contract.md, "Operations"), right across
worker processes.

gunicorn runs several worker processes; each counts what it answers. With
PROMETHEUS_MULTIPROC_DIR set, prometheus-client keeps every process's values in memory-mapped
files in that directory, and a scrape, whichever worker answers it, adds them all up. The
project's gunicorn.conf.py sets the directory when it is unset and empties it when the server
starts (files left by an earlier run would be added to this one's). Without it (runserver, the
test client) values live in the one process.

Counting costs a few memory writes per request, and nothing when METRICS_ENABLED is off. The
request counts are gathered per process and written in batches (`count_request`, `flush`): every
BATCH_REQUESTS requests, BATCH_SECONDS after a batch's first request (a thread of the process),
at exit, and before a scrape answered by this process, so a scrape shows every request this
process answered, and another process's at most one batch (BATCH_SECONDS) late.
"""

import atexit
import bisect
import contextlib
import os
import threading
import time

from config_client.outcomes import COUNTERS
from django.conf import settings
from django.db import DatabaseError
from django.http import Http404, HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from core import store as config_store

_MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _MULTIPROCESS_DIR:
    # A command run beside the server (import_config) may be the first to use it.
    os.makedirs(_MULTIPROCESS_DIR, exist_ok=True)

REQUESTS = Counter(
    "config_requests",
    "Requests answered, by URL name and status code.",
    ["endpoint", "status"],
)
REQUEST_SECONDS = Histogram(
    "config_request_duration_seconds",
    "Time from a request's arrival in the app to its response, by URL name.",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CACHE_HITS = Counter("config_cache_hits", "Config reads answered from the cache.")
CACHE_MISSES = Counter("config_cache_misses", "Config reads built from the database.")
IMPORT_SECONDS = Histogram(
    "config_import_duration_seconds",
    "Duration of import_config runs that changed or checked the configuration.",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
# Per process (each worker has its own breaker); a scrape shows 1 when any live worker's was
# open when it last answered a request.
BREAKER_OPEN = Gauge(
    "config_cache_breaker_open",
    "1 while a worker skips the unreachable cache (its breaker is open), else 0.",
    multiprocess_mode="livemax",
)
EVENT_SUBSCRIBERS = Gauge(
    "config_event_subscribers",
    "Open config event streams (GET /api/v1/config/events/), all live workers together.",
    multiprocess_mode="livesum",
)
# What the runtime reported (outcomes.services, once a batch commits; a repeated
# Idempotency-Key counts nothing), per assistant (its name) and variant ("none" without a
# rollout): `counter` is runs, errors, tool_calls, … as in POST /api/v1/outcomes/.
OUTCOMES = Counter(
    "config_outcomes",
    "Outcomes reported by the runtime, by assistant, variant and counter.",
    ["assistant", "variant", "counter"],
)
# The counters of an outcome row, in the one order the client, the API and the buckets share.
OUTCOME_COUNTERS = COUNTERS

_breaker_state: bool | None = None
_children: dict[tuple[str, int], tuple] = {}

# A hit's four updates (request count, duration sum and bucket, cache outcome) are each a write
# to a memory-mapped file with a lock and a getpid: a tenth of a logged hit's server time. They
# are gathered here and written as one batch, in which each value is written once.
BATCH_REQUESTS = 256
BATCH_SECONDS = 0.1
_BOUNDS = REQUEST_SECONDS._upper_bounds  # with +Inf: the bucket of `s` is the first bound >= s
_lock = threading.Lock()
# {(endpoint, status): [requests, seconds, [count per bucket]]}, and [hits, misses]
_pending: dict[tuple[str, int], list] = {}
_pending_cache = [0, 0]
_pending_requests = 0
_batch_begun = threading.Event()
_flusher_pid: int | None = None


def count_request(*, endpoint: str, status: int, seconds: float, cache: str | None) -> None:
    """Count one answered request (core.ops.request_log.finish calls this for every request):
    added to this process's batch, written by `flush`."""
    global _pending_requests
    if not settings.METRICS_ENABLED:
        return
    with _lock:
        pending = _pending.get((endpoint, status))
        if pending is None:
            pending = _pending[endpoint, status] = [0, 0.0, [0] * len(_BOUNDS)]
        pending[0] += 1
        pending[1] += seconds
        pending[2][bisect.bisect_left(_BOUNDS, seconds)] += 1
        if cache == "hit":
            _pending_cache[0] += 1
        elif cache == "miss":
            _pending_cache[1] += 1
        _pending_requests += 1
        first, full = _pending_requests == 1, _pending_requests >= BATCH_REQUESTS
    if full:
        flush()
    elif first:
        _start_flusher()
    _note_breaker_state()


def flush() -> None:
    """Write this process's batch of request counts (each value once) and start a new one."""
    global _pending_requests
    with _lock:
        if not _pending_requests:
            return
        batch, cache = list(_pending.items()), tuple(_pending_cache)
        _pending.clear()
        _pending_cache[:] = [0, 0]
        _pending_requests = 0
    for (endpoint, status), (requests, seconds, buckets) in batch:
        children = _children.get((endpoint, status))
        if children is None:  # labels() costs more than the increments: looked up once per pair
            children = _children[endpoint, status] = (
                REQUESTS.labels(endpoint, str(status)),
                REQUEST_SECONDS.labels(endpoint),
            )
        children[0].inc(requests)
        # Histogram.observe, for many observations at once: the sum, then each bucket's count.
        children[1]._sum.inc(seconds)
        for bucket, count in enumerate(buckets):
            if count:
                children[1]._buckets[bucket].inc(count)
    if cache[0]:
        CACHE_HITS.inc(cache[0])
    if cache[1]:
        CACHE_MISSES.inc(cache[1])


def _start_flusher() -> None:
    """At a batch's first request: wakes this process's flushing thread (started once per
    process; a forked worker starts its own), which writes the batch BATCH_SECONDS later, so
    an idle process's counts are not held back."""
    global _flusher_pid
    if _flusher_pid != os.getpid():
        _flusher_pid = os.getpid()
        threading.Thread(target=_flush_after_each_batch, name="metrics-flush", daemon=True).start()
    _batch_begun.set()


def _flush_after_each_batch() -> None:
    while True:
        _batch_begun.wait()
        time.sleep(BATCH_SECONDS)
        _batch_begun.clear()
        flush()


def _forget_parents_batch() -> None:
    """In a forked child: the parent's batch is the parent's to write."""
    global _pending_requests, _lock, _batch_begun
    _lock, _batch_begun = threading.Lock(), threading.Event()
    _pending.clear()
    _pending_cache[:] = [0, 0]
    _pending_requests = 0


os.register_at_fork(after_in_child=_forget_parents_batch)
atexit.register(flush)


def count_outcomes(totals: dict[tuple[str, str], list[int]]) -> None:
    """Add a committed batch: {(assistant name, variant): counts in OUTCOME_COUNTERS' order}."""
    if not settings.METRICS_ENABLED:
        return
    for (assistant, variant), counts in totals.items():
        for counter, count in zip(OUTCOME_COUNTERS, counts, strict=True):
            if count:
                OUTCOMES.labels(assistant, variant, counter).inc(count)


def _note_breaker_state() -> None:
    """After each request and at each scrape; written only when it changed."""
    global _breaker_state
    state = config_store.breaker.is_open()
    if state is not _breaker_state:
        BREAKER_OPEN.set(1 if state else 0)
        _breaker_state = state


@contextlib.contextmanager
def import_timer():
    """Observe how long the import inside takes (whether it succeeds or is refused)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        if settings.METRICS_ENABLED:
            IMPORT_SECONDS.observe(time.perf_counter() - started)


class _RevisionCollector:
    """`config_revision`, read from the database at scrape time: the committed revision."""

    def collect(self):
        try:
            revision = config_store.committed_counter()
        except DatabaseError:
            return  # no value rather than a wrong one; /readyz says why
        family = GaugeMetricFamily("config_revision", "The committed config revision.")
        family.add_metric([], revision)
        yield family


def _scrape() -> bytes:
    flush()
    _note_breaker_state()
    if _MULTIPROCESS_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    revision = CollectorRegistry(auto_describe=False)
    revision.register(_RevisionCollector())
    # Two expositions of disjoint metric families concatenate into one valid exposition.
    return generate_latest(registry) + generate_latest(revision)


def _token_refusal(request) -> HttpResponse | None:
    """401 without `Authorization: Bearer <METRICS_TOKEN>`, 403 with a wrong one."""
    token = settings.METRICS_TOKEN
    if not token:
        return None
    scheme, _, sent = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not sent.strip():
        response = HttpResponse("Send Authorization: Bearer <METRICS_TOKEN>.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not constant_time_compare(sent.strip(), token):
        return HttpResponse("Wrong metrics token.\n", status=403)
    return None


@never_cache
@require_safe
def metrics_view(request):
    """Prometheus text format; 404 unless METRICS_ENABLED."""
    if not settings.METRICS_ENABLED:
        raise Http404
    refusal = _token_refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(_scrape(), content_type=CONTENT_TYPE_LATEST)
