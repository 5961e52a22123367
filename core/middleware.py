"""A request that failed because a service it needs is down answers 503, decided in one place.

`service_unavailable` is used by the middleware (exceptions raised in views, so Django's test
client gets the response too), by handler500 (exceptions raised outside views, e.g. a session
saved by its middleware), and, through `unavailable_reason`, by the API's exception handler.
"""

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse

from core.cache import CacheUnavailable

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE = "The database is unavailable. Retry in a few seconds."


def unavailable_reason(exception: BaseException | None) -> str | None:
    """The 503 message for an outage of the cache or the database, or None for other errors."""
    if isinstance(exception, CacheUnavailable):
        return str(exception)
    # Connection refused or lost, server shutting down, too many connections, a query cancelled:
    # the request may succeed as it is a moment later. (No claim that nothing changed: a
    # connection lost during COMMIT leaves that unknown.)
    if isinstance(exception, (OperationalError, InterfaceError)):
        logger.warning("Database unavailable: %s: %s", type(exception).__name__, exception)
        return DATABASE_UNAVAILABLE
    return None


def service_unavailable(request, exception: BaseException | None) -> HttpResponse | None:
    """503 with Retry-After (JSON `{"detail"}` under /api/, plain text elsewhere), or None."""
    reason = unavailable_reason(exception)
    if reason is None:
        return None
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": reason}, status=503)
    else:
        response = HttpResponse(reason, content_type="text/plain", status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class CacheUnavailableMiddleware:
    """An exception in a view that means the cache or the database is down: a 503, not a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        return service_unavailable(request, exception)
