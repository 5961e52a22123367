"""One exception handler: the rules raise Django errors, the API answers with DRF's shapes.

- django ValidationError (from `full_clean()` in a service) → 400 `{"field": ["message"]}`
- a delete refused because something still references the object (core.services'
  StillReferenced from a service, or the database's PROTECT/RESTRICT when a reference was added
  concurrently) → 409 `{"detail": "...", "references": ["..."]}`
- a database constraint lost to a concurrent write → 409 `{"detail": "..."}`
- the cache or the database down (core.ops.middleware decides) → 503 with Retry-After

and every error body leaves in the one shape OpenAPI declares for its status
(`declared_error_body`), so that a generated client parses it into one type.
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

from core.ops.middleware import RETRY_AFTER_SECONDS, service_unavailable, unavailable_reason
from core.services import StillReferenced
from core.store import CacheUnavailable

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
    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = declared_error_body(response.status_code, response.data)
    return response


def declared_error_body(status_code: int, data):
    """`data` in the one shape OpenAPI declares for this status (ERROR_COMPONENTS below): a 400
    is `{"field": ["message"]}` (a list of messages per key, nested errors flattened to
    `field.key`), or DRF's `{"detail": "..."}` for a body that didn't parse; any other error has
    a string `detail` (and the 409's `references`)."""
    if status_code == status.HTTP_400_BAD_REQUEST:
        if isinstance(data, dict) and list(data) == ["detail"] and isinstance(data["detail"], str):
            return data
        return _field_errors(data, prefix=None)
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return data
    return {"detail": " ".join(_messages(data))}


def _field_errors(data, *, prefix: str | None) -> dict[str, list[str]]:
    if not isinstance(data, dict):
        return {prefix or api_settings.NON_FIELD_ERRORS_KEY: _messages(data)}
    errors: dict[str, list[str]] = {}
    for key, value in data.items():
        errors.update(_field_errors(value, prefix=f"{prefix}.{key}" if prefix else str(key)))
    return errors


def _messages(data) -> list[str]:
    if isinstance(data, dict):
        return [message for value in data.values() for message in _messages(value)]
    if isinstance(data, list | tuple):
        return [message for value in data for message in _messages(value)]
    return [str(data)]


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


# OpenAPI: the error bodies, as components (added by `add_error_components`). One component per
# status, so that a generated client parses each error into one type: 400 → BadRequest,
# 409 → ReferencedError, every other error → Error.
ERROR_COMPONENTS = {
    "Error": {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    "BadRequest": {
        "type": "object",
        "description": (
            "Invalid input. Either one key per invalid field (`non_field_errors` for the object "
            'as a whole), each with a list of messages: `{"name": ["This field is required."]}`; '
            "or, when the body itself is unusable (not JSON, or holding what cannot be stored: "
            'NUL characters, non-finite numbers, nesting too deep), `{"detail": "JSON parse '
            'error - ..."}`. Never both.'
        ),
        "properties": {
            "detail": {
                "type": "string",
                "description": "Set only when the body is not usable JSON; no field keys then.",
            },
            "non_field_errors": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Errors of the object as a whole.",
            },
        },
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "example": {"input_schema": ["/properties/city/type: 'strin' is not valid ..."]},
    },
    "ReferencedError": {
        "type": "object",
        "properties": {
            "detail": {"type": "string"},
            "references": {
                "type": "array",
                "items": {"type": "string"},
                "description": "What still references the object (absent when the conflict "
                "was with a concurrent change).",
            },
            "reasons": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Why a rollback was refused: the rules its target state breaks "
                "against today's data (only on a refused rollback).",
            },
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
        'Invalid input: `{"field": ["message"]}` for each invalid field (or header: '
        '`X-Change-Note`), or `{"detail": "..."}` for a body that is not storable JSON.',
    ),
    401: ("Error", "No credentials, or an invalid, expired or revoked API key."),
    403: (
        "Error",
        "The key's scope (or the staff user's permissions) doesn't allow this; `detail` names "
        "the scope (or the Django permission) needed.",
    ),
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
# Config changes (not thread writes) need the cache to be reachable: see core.store.
CONFIG_WRITE_ERRORS = (*WRITE_ERRORS, 503)
# 400: a delete takes a change note too (X-Change-Note, core.api.change_notes).
CONFIG_DELETE_ERRORS = (400, *READ_ERRORS, 404, 409, 503)
