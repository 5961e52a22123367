"""The two config endpoints with `?revision=N`: the resolved config as it was at revision N
(SPEC "Config as of a revision"), cached for good (core.config_reads decides hit or miss).

The views are assistants.config_api's, extended here (assistants cannot import the history):
without a point in the history they answer exactly as before. `point_config_response` is the
one place a config read at a point is answered; labels add `?label=` there.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound, ValidationError

from assistants.config_api import (
    _CONFIG_HEADERS,
    _NOT_MODIFIED,
    AssistantConfigApi,
    ConfigBundleApi,
    ConfigBundleSerializer,
    ResolvedConfigSerializer,
)
from config_backend.history.labels import UnknownLabel, checked_name, label_config
from config_backend.history.selectors import MalformedPoint, config_at, parse_revision
from config_backend.history.states import UnknownRevision
from core.api.errors import READ_ERRORS, error_responses
from core.config_reads import (
    CACHE_HEADER,
    config_at_etag,
    config_at_headers,
    etag_matches,
    label_headers,
    request_read,
)
from core.models import LIVE

REVISION_PARAMETER = "revision"
LABEL_PARAMETER = "label"

_REVISION_QUERY = OpenApiParameter(
    REVISION_PARAMETER,
    OpenApiTypes.INT,
    OpenApiParameter.QUERY,
    description=(
        "Serve the config as it was at this revision (`GET /api/v1/revisions/`), with "
        '`"revision": N`. Its content never changes: the response carries `Cache-Control: '
        "private, max-age=31536000, immutable` and may be kept for good."
    ),
)
_LABEL_QUERY = OpenApiParameter(
    LABEL_PARAMETER,
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    description=(
        "Serve the config at this label's revision (`GET /api/v1/labels/`); `live`: the current "
        "config. A key pinned to a label serves that label's when neither `label` nor "
        "`revision` is given. The ETag changes only when the label moves to content that "
        "differs."
    ),
)


def point_config_response(request, *, assistant_id=None) -> HttpResponse | None:
    """The response to a config read at a point in the history (`?revision=N`, `?label=NAME`,
    or a plain read with a key pinned to a label), or None for a live read."""
    text = request.query_params.get(REVISION_PARAMETER)
    label = request.query_params.get(LABEL_PARAMETER)
    if text is not None and label is not None:
        raise ValidationError({LABEL_PARAMETER: ["Ask for a revision or a label, not both."]})
    if text is None:
        if label is None:
            label = getattr(request.auth, "label", None)  # a key pinned to a label
        elif label != LIVE:
            try:
                checked_name(label)
            except DjangoValidationError as exc:
                raise ValidationError({LABEL_PARAMETER: exc.message_dict["name"]}) from None
        if not label or label == LIVE:
            return None
        return label_config_response(request, name=label, assistant_id=assistant_id)
    try:
        revision = parse_revision(text)
    except MalformedPoint as exc:
        raise ValidationError({REVISION_PARAMETER: [str(exc)]}) from None
    return revision_config_response(request, revision=revision, assistant_id=assistant_id)


def revision_config_response(request, *, revision: int, assistant_id=None) -> HttpResponse:
    """The config (or bundle) at `revision`: 404 for an unknown revision, or an assistant
    that did not exist or was inactive then."""
    headers = config_at_headers(revision, assistant_id)
    read = request_read(request.META)
    try:
        body, from_cache = config_at(
            revision,
            assistant_id,
            cached=read.cached_entry_at(assistant_id, revision) if read else None,
        )
    except UnknownRevision as exc:
        raise NotFound(str(exc)) from None
    if body is None:
        raise NotFound(f"No active assistant with this id at revision {revision}.")
    if etag_matches(request.headers.get("If-None-Match"), config_at_etag(revision, assistant_id)):
        return HttpResponseNotModified(headers=dict(headers))
    headers.append((CACHE_HEADER, "hit" if from_cache else "miss"))
    return HttpResponse(body, content_type="application/json", headers=dict(headers))


def label_config_response(request, *, name: str, assistant_id=None) -> HttpResponse:
    """The config (or bundle) at the label's revision: 404 for an unknown label, or an
    assistant that did not exist or was inactive there. Its ETag changes only with the content
    (config_backend.history.labels)."""
    read = request_read(request.META)
    try:
        entry, from_cache = label_config(
            name,
            assistant_id,
            cached=read.cached_label_entry(name, assistant_id) if read else None,
        )
    except UnknownLabel as exc:
        raise NotFound(str(exc)) from None
    if entry is None:
        raise NotFound(f"No active assistant with this id at label “{name}”.")
    headers = label_headers(entry.revision, entry.etag)
    if etag_matches(request.headers.get("If-None-Match"), entry.etag):
        return HttpResponseNotModified(headers=dict(headers))
    headers.append((CACHE_HEADER, "hit" if from_cache else "miss"))
    return HttpResponse(entry.body, content_type="application/json", headers=dict(headers))


class AssistantConfigAtApi(AssistantConfigApi):
    @extend_schema(
        operation_id="assistants_config",
        parameters=[*_CONFIG_HEADERS, _REVISION_QUERY, _LABEL_QUERY],
        responses={
            200: ResolvedConfigSerializer,
            304: _NOT_MODIFIED,
            **error_responses(400, *READ_ERRORS, 404),
        },
    )
    def get(self, request, assistant_id):
        response = point_config_response(request, assistant_id=str(assistant_id))
        return response or super().get(request, assistant_id)


class ConfigBundleAtApi(ConfigBundleApi):
    @extend_schema(
        operation_id="config_bundle",
        parameters=[*_CONFIG_HEADERS, _REVISION_QUERY, _LABEL_QUERY],
        responses={
            200: ConfigBundleSerializer,
            304: _NOT_MODIFIED,
            **error_responses(400, *READ_ERRORS, 404),
        },
    )
    def get(self, request):
        return point_config_response(request) or super().get(request)
