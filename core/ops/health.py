"""Liveness and readiness probes (plain Django views: no authentication, no DRF)."""

import logging

from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from core import store

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def healthz(request):
    """The process is up. Touches nothing else."""
    return JsonResponse({"status": "ok"})


def database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.warning("readiness: database unavailable", exc_info=True)
        return "down"
    return "ok"


def cache_status() -> str:
    """ "ok", or "degraded" while the cache is unreachable (reads then come from the database).
    A connection pool exhausted by a burst is not: Redis is there (core.store)."""
    if store.try_cache("readiness probe", lambda store: store.ping(), False, busy=True):
        return "ok"
    return "degraded"


@never_cache
@require_safe
def readyz(request):
    """Database and cache, each reported. Without the database nothing works (503);
    without the cache, reads still come from the database (200, cache "degraded")."""
    database = database_status()
    cache_state = cache_status()
    if database != "ok":
        overall, code = "unavailable", 503
    elif cache_state != "ok":
        overall, code = "degraded", 200
    else:
        overall, code = "ok", 200
    return JsonResponse(
        {"status": overall, "database": database, "cache": cache_state}, status=code
    )
