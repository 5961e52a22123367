"""One exception handler: the rules raise Django errors, the API answers with DRF's shapes.

- django ValidationError (from `full_clean()` in a service) → 400 `{"field": ["message"]}`
- a delete refused because something still references the object (core.services'
  StillReferenced from a service, or the database's PROTECT/RESTRICT when a reference was added
  concurrently) → 409 `{"detail": "...", "references": ["..."]}`
- a database constraint lost to a concurrent write → 409 `{"detail": "..."}`
- the cache or the database down (core.middleware decides) → 503 with Retry-After
"""

import logging
import sys

from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import JsonResponse
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, status
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from core.cache import CacheUnavailable
from core.middleware import RETRY_AFTER_SECONDS, service_unavailable, unavailable_reason
from core.services import StillReferenced

logger = logging.getLogger(__name__)


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "request_too_large"


class ReferencedConflict(exceptions.APIException):
    """The 409 of rule 7: a delete refused, with what still references the object."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "still_referenced"

    def __init__(self, message: str, references: list[str]):
        super().__init__({"detail": message, "references": references})


def validation_error_detail(exc: DjangoValidationError) -> dict:
    """A Django ValidationError as DRF's `{"field": ["message"]}`."""
    non_field_key = api_settings.NON_FIELD_ERRORS_KEY
    if hasattr(exc, "error_dict"):
        return {
            (non_field_key if field == NON_FIELD_ERRORS else field): messages
            for field, messages in exc.message_dict.items()
        }
    return {non_field_key: exc.messages}


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = CacheUnavailable.default_message


def api_exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, StillReferenced):
        exc = ReferencedConflict(exc.message, exc.references)
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(validation_error_detail(exc))
    elif isinstance(exc, (ProtectedError, RestrictedError)):
        # The service found no reference, then one was committed before the DELETE ran.
        objects = getattr(exc, "protected_objects", None) or exc.restricted_objects
        exc = ReferencedConflict(
            "Still referenced.", sorted(f"{obj._meta.verbose_name} “{obj}”" for obj in objects)
        )
    elif isinstance(exc, IntegrityError):
        # The rules were checked before saving; a concurrent write got there first.
        logger.info("integrity error answered as 409: %s", exc)
        exc = exceptions.APIException(
            {"detail": "Conflicts with a concurrent change; read the current state and retry."}
        )
        exc.status_code = status.HTTP_409_CONFLICT
    elif (reason := unavailable_reason(exc)) is not None:
        response = drf_exception_handler(ServiceUnavailable(reason), context)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    elif isinstance(exc, DataError):
        logger.warning("data error answered as 400: %s", exc)
        exc = exceptions.ValidationError(
            {api_settings.NON_FIELD_ERRORS_KEY: ["A value cannot be stored as given."]}
        )
    return drf_exception_handler(exc, context)


def json_not_found(request, exception=None):
    """handler404: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def json_server_error(request):
    """handler500: JSON under /api/, Django's page elsewhere; a 503 when the exception being
    handled means the cache or the database is down (raised outside a view, e.g. by the session
    middleware, where the middleware's process_exception does not see it)."""
    unavailable = service_unavailable(request, sys.exc_info()[1])
    if unavailable is not None:
        return unavailable
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Server error."}, status=500)
    from django.views.defaults import server_error

    return server_error(request)


# OpenAPI: the error bodies, as components (added by `add_error_components`).
ERROR_COMPONENTS = {
    "Error": {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    "ValidationError": {
        "type": "object",
        "description": (
            "One key per invalid field (`non_field_errors` for the object as a whole), "
            "each with a list of messages."
        ),
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "example": {"input_schema": ["/properties/city/type: 'strin' is not valid ..."]},
    },
    "BadRequest": {
        "description": (
            "Invalid input: one key per invalid field with its messages (`ValidationError`), "
            "or, for a body that is not JSON or holds what cannot be stored (NUL characters, "
            'non-finite numbers, nesting too deep), `{"detail": "..."}`.'
        ),
        "anyOf": [
            {"$ref": "#/components/schemas/ValidationError"},
            {"$ref": "#/components/schemas/Error"},
        ],
    },
    "ReferencedError": {
        "type": "object",
        "properties": {
            "detail": {"type": "string"},
            "references": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["detail"],
    },
}


def add_error_components(result, generator, request, public):
    """drf-spectacular post-processing hook: add the error bodies' schemas."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(ERROR_COMPONENTS)
    return result


_ERROR_RESPONSES = {
    400: (
        "BadRequest",
        "Invalid input: each invalid field with its messages, or a body that is not storable JSON.",
    ),
    401: ("Error", "No credentials, or an invalid, expired or revoked API key."),
    403: ("Error", "The key's scope (or the staff user's permissions) doesn't allow this."),
    404: ("Error", "Unknown (or, for configs, inactive) id."),
    409: ("ReferencedError", "Refused: still referenced, or lost to a concurrent change."),
    413: ("Error", "Request body too large."),
    415: ("Error", "Only application/json bodies are accepted."),
    503: (
        "Error",
        "The config cache (Redis) is unreachable or refused the command (the change was "
        "refused, nothing changed), or the database is unavailable. Retry after `Retry-After` "
        "seconds.",
    ),
}


def error_responses(*codes: int) -> dict:
    """OpenAPI responses for these error status codes, for `extend_schema(responses=...)`."""
    return {
        code: OpenApiResponse(
            response={"$ref": f"#/components/schemas/{_ERROR_RESPONSES[code][0]}"},
            description=_ERROR_RESPONSES[code][1],
        )
        for code in codes
    }


def page_not_found(description: str = "No such page (past the last one, or not a number).") -> dict:
    """The 404 of a paginated list, for `extend_schema(responses=...)`."""
    return {
        404: OpenApiResponse(
            response={"$ref": "#/components/schemas/Error"}, description=description
        )
    }


READ_ERRORS = (401, 403)
WRITE_ERRORS = (400, 401, 403, 413, 415)
# Config changes (not thread writes) need the cache to be reachable: see core.cache.
CONFIG_WRITE_ERRORS = (*WRITE_ERRORS, 503)
CONFIG_DELETE_ERRORS = (*READ_ERRORS, 404, 409, 503)
