"""The one view of both config endpoints (GET /api/v1/config/ and
/api/v1/assistants/{id}/config/): live, at a revision, or through a label (docs/contract.md
"Resolved runtime config", "Config as of a revision", "Reading a label"), with their parameters and
headers documented once (`config_endpoint`: the upper floor gives the body's shape).
"""

from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.views import APIView

from core.api.errors import READ_ERRORS, error_responses
from core.models import USER_ID_MAX_LENGTH
from core.reads.codings import response_coding
from core.reads.fetch import request_read
from core.reads.points import (
    LABEL_PARAMETER,
    REVISION_PARAMETER,
    USER_PARAMETER,
    BadQuery,
    Point,
    point_asked,
)
from core.reads.reads import CACHE_HEADER, IMMUTABLE, VARIANT_HEADER, read_for


def config_response(request, assistant_id: str | None) -> HttpResponse:
    """One assistant's resolved config (None: the bundle) at the point the query asks for,
    from the cache or built and stored. A key pinned to a label reads it by default."""
    try:
        point = point_asked(request.META.get("QUERY_STRING"))
    except BadQuery as exc:
        raise ValidationError({exc.field: exc.messages}) from None
    if not point.asked:
        point = Point(label=getattr(request.auth, "label", None), user_id=point.user_id)
    read = read_for(assistant_id, point)
    coding = response_coding(request.headers.get("Accept-Encoding"))
    fetched = request_read(request.META)
    cached = fetched.cached_for(read, coding) if fetched else None
    if cached is not None:
        read = fetched.plan.read  # the same read, with what its plan decided (LabelRead.known)
    try:
        answer = read.get_or_build(coding, request.headers.get("If-None-Match"), cached)
    except LookupError as exc:  # an unknown revision or label; nothing active there
        raise NotFound(str(exc.args[0]) if exc.args else None) from None
    if answer.status == 304:
        return HttpResponseNotModified(headers=dict(answer.headers))
    return HttpResponse(answer.body, headers=dict(answer.headers))


# GET a resolved config; `config_endpoint` documents it per endpoint. (No docstring: it would
# be the operations' description in the OpenAPI document.)
class ConfigApi(APIView):
    def get(self, request, assistant_id=None):
        return config_response(request, str(assistant_id) if assistant_id else None)


def response_header(name: str, kind, description: str, *, responses=(200, 304), **more):
    """A header every one of `responses` carries."""
    return OpenApiParameter(
        name,
        kind,
        OpenApiParameter.HEADER,
        response=list(responses),
        required=True,
        description=description,
        **more,
    )


PARAMETERS = [
    OpenApiParameter(
        "If-None-Match",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        description="The ETag of the config you hold: 304 if it is still current.",
    ),
    response_header("ETag", OpenApiTypes.STR, "Strong ETag of this config."),
    response_header(
        "X-Config-Revision", OpenApiTypes.INT, "The config revision this answer reflects."
    ),
    response_header(
        CACHE_HEADER,
        str,
        "Whether the body came from the cache (`hit`) or was built (`miss`).",
        responses=[200],
        enum=["hit", "miss"],
    ),
    OpenApiParameter(
        VARIANT_HEADER,
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        response=[200, 304],
        required=False,
        enum=["base", "candidate"],
        description="On a label read only: the variant served under the label's rollout "
        "(`base` without `user_id`).",
    ),
    OpenApiParameter(
        REVISION_PARAMETER,
        OpenApiTypes.INT,
        OpenApiParameter.QUERY,
        description=(
            "Serve the config as it was at this revision (`GET /api/v1/revisions/`), with "
            '`"revision": N`. Its content never changes: the response carries `Cache-Control: '
            f"{IMMUTABLE}` and may be kept for good."
        ),
    ),
    OpenApiParameter(
        LABEL_PARAMETER,
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        description=(
            "Serve the config at this label's revision (`GET /api/v1/labels/`); `live`: the "
            "current config. A key pinned to a label serves that label's when neither `label` "
            "nor `revision` is given. The ETag changes only when the label moves to content "
            "that differs."
        ),
    ),
    OpenApiParameter(
        USER_PARAMETER,
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        description=(
            "With a label read (`label`, or a key pinned to one): serve this user's variant "
            "under the label's rollout (`X-Config-Variant`); without it, the base. Ignored by "
            f"live and revision reads. 1 to {USER_ID_MAX_LENGTH} characters."
        ),
    ),
]
NOT_MODIFIED = OpenApiResponse(
    description="Not modified: your copy (If-None-Match) is current. No body; the headers "
    "are those of the 200."
)


def config_endpoint(name: str, *, operation_id: str, body, permission_model) -> type[ConfigApi]:
    """ConfigApi as one endpoint documents it: its operation id and body (a serializer), and
    the model whose permissions a staff user needs (core.api.auth)."""

    def get(self, request, assistant_id=None):  # a function of its own: extend_schema marks it
        return ConfigApi.get(self, request, assistant_id)

    documented = extend_schema(
        operation_id=operation_id,
        parameters=PARAMETERS,
        responses={
            200: body,
            304: NOT_MODIFIED,
            **error_responses(400, *READ_ERRORS, 404),
        },
    )(get)
    return type(name, (ConfigApi,), {"get": documented, "permission_model": permission_model})
