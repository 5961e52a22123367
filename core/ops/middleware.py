"""Middleware: the request log (RequestLogMiddleware, first of all), and the 503 for an outage.

A request that failed because a service it needs is down answers 503, decided in one place.

`service_unavailable` is used by the middleware (exceptions raised in views, so Django's test
client gets the response too), by handler500 (exceptions raised outside views, e.g. a session
saved by its middleware), and, through `unavailable_reason`, by the API's exception handler.
"""

import logging
from functools import partial

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.utils.functional import SimpleLazyObject, empty

from core.api.change_notes import (
    CHANGE_NOTE_HEADER,
    MalformedChangeNote,
    change_note_from_header,
)
from core.changes import ChangeContext, change_context
from core.models import Revision
from core.ops import request_log
from core.ops.admin_language import in_admin
from core.reads.reads import CACHE_HEADER
from core.store import CacheUnavailable

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE = "The database is unavailable. Retry in a few seconds."
SERVER_BUSY = "The server is busy. Retry in a few seconds."


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
    return unavailable_response(request, reason)


def unavailable_response(request, reason: str) -> HttpResponse:
    """The 503 saying `reason`, with Retry-After (JSON under /api/, plain text elsewhere)."""
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


def _username(request) -> str | None:
    """The logged-in user's name, if this request already looked the user up.

    Django's AuthenticationMiddleware leaves a lazy user that costs a session query when first
    touched; a request that never touched it (a health probe, an API-key call) is not made to.
    """
    user = request.__dict__.get("user")  # DRF sets the user it authenticated here directly
    if isinstance(user, SimpleLazyObject):
        user = None if user._wrapped is empty else user._wrapped
    if user is None or not user.is_authenticated:
        return None
    return user.get_username()


class RequestLogMiddleware:
    """First of all middleware: every request Django answers gets an id (echoed in
    X-Request-ID), one log line and the request metrics (core.ops.request_log)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = request_log.begin(request.META)
        response = self.get_response(request)
        response[request_log.REQUEST_ID_HEADER] = start.request_id
        match = request.resolver_match
        api_key = getattr(request, "auth", None)  # DRF's request.auth: our APIKey, or None
        request_log.finish(
            start,
            endpoint=(match.url_name or "unnamed") if match else "unmatched",
            method=request.method,
            path=request.path,
            status=response.status_code,
            cache=response.get(CACHE_HEADER),
            api_key_name=getattr(api_key, "name", None)
            or request_log.noted_api_key_name(request.META),
            user=_username(request),
        )
        return response


# The admin's form field for a change note (the API's header: core.api.change_notes).
CHANGE_NOTE_FIELD = "change_note"


def request_change_context(request, *, header_note: str = "") -> ChangeContext:
    """Who makes a request's changes, from where, and why; asked when its first change is
    recorded, so after DRF has authenticated the caller. `header_note`: the API's note, read
    from its header by the middleware."""
    if in_admin(request):
        source = Revision.Source.ADMIN
        message = request.POST.get(CHANGE_NOTE_FIELD, "") if request.method == "POST" else ""
    else:
        source = Revision.Source.API
        message = header_note
    api_key = getattr(request, "auth", None)  # DRF's request.auth: our APIKey, or None
    author = getattr(api_key, "name", None) or _username(request) or "anonymous"
    return ChangeContext(source=source, author=author, message=message.strip())


class ChangeContextMiddleware:
    """Changes a request makes are recorded with its user or key, source and note. A write
    whose X-Change-Note is not UTF-8 is a 400 before anything runs (core.api.change_notes)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        header_note = ""
        if request.method not in ("GET", "HEAD", "OPTIONS") and not in_admin(request):
            try:
                header_note = change_note_from_header(request.headers.get(CHANGE_NOTE_HEADER, ""))
            except MalformedChangeNote as exc:
                return JsonResponse({CHANGE_NOTE_HEADER: [str(exc)]}, status=400)
        with change_context(partial(request_change_context, request, header_note=header_note)):
            return self.get_response(request)
