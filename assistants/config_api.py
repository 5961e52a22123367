"""The resolved runtime configs: one assistant's and the bundle of all (SPEC "Resolved runtime
config"), cached (core.config_reads decides hit or miss; assistants.selectors builds)."""

from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from assistants.models import Assistant
from assistants.selectors import (
    active_assistant_exists,
    assistant_config_build,
    assistant_for_config,
    config_bundle_build,
)
from core.api.errors import READ_ERRORS, error_responses
from core.config_reads import (
    CACHE_HEADER,
    config_etag,
    config_headers,
    content_encoding,
    etag_matches,
    get_or_build,
    request_read,
    response_coding,
    revision_name,
)
from core.store import committed_counter
from tools.models import Tool


def config_response(request, *, assistant_id=None) -> HttpResponse:
    """One assistant's resolved config, or the bundle, from the cache or built and stored."""
    revision = committed_counter(revision_name(assistant_id))  # first: see core.config_reads
    coding = response_coding(request.headers.get("Accept-Encoding"))
    headers = config_headers(revision, assistant_id, coding)
    if etag_matches(request.headers.get("If-None-Match"), config_etag(revision, assistant_id)):
        if assistant_id is not None and not active_assistant_exists(assistant_id=assistant_id):
            raise NotFound("No active assistant with this id.")
        return HttpResponseNotModified(headers=dict(headers))

    def build():
        if assistant_id is None:
            return render_json(config_bundle_build(revision=revision))
        assistant = assistant_for_config(assistant_id=assistant_id)
        if assistant is None:
            return None
        return render_json(assistant_config_build(assistant=assistant, revision=revision))

    read = request_read(request.META)
    body, from_cache = get_or_build(
        assistant_id=assistant_id,
        revision=revision,
        build=build,
        cached=read.cached_entry(assistant_id, coding) if read else None,
        coding=coding,
    )
    if body is None:
        raise NotFound("No active assistant with this id.")
    headers += [*content_encoding(coding), (CACHE_HEADER, "hit" if from_cache else "miss")]
    return HttpResponse(body, content_type="application/json", headers=dict(headers))


def render_json(data) -> bytes:
    return JSONRenderer().render(data)


# Output documentation only: the shape itself is built by assistants.selectors.
class DelegateSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class ToolConfigSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    tool_type = serializers.ChoiceField(choices=Tool.Type.choices)
    description = serializers.CharField()
    input_schema = serializers.JSONField()
    strict = serializers.BooleanField(
        help_text="Send this tool in OpenAI strict mode (its input_schema is strict-valid)."
    )
    sub_assistant = DelegateSerializer(allow_null=True)


class ResolvedConfigSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    assistant_type = serializers.ChoiceField(choices=Assistant.Type.choices)
    model = serializers.CharField()
    instructions = serializers.CharField()
    openai_assistant_id = serializers.CharField(allow_null=True)
    is_secretary = serializers.BooleanField()
    revision = serializers.IntegerField()
    tools = ToolConfigSerializer(many=True, help_text="Active links to active tools, by name.")


class ConfigBundleSerializer(serializers.Serializer):
    revision = serializers.IntegerField()
    secretary = serializers.UUIDField(allow_null=True)
    assistants = ResolvedConfigSerializer(many=True, help_text="Every active assistant, by name.")


_CONFIG_HEADERS = [
    OpenApiParameter(
        "If-None-Match",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        description="The ETag of the config you hold: 304 if it is still current.",
    ),
    OpenApiParameter(
        "ETag",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        response=[200, 304],
        required=True,
        description="Strong ETag of this config.",
    ),
    OpenApiParameter(
        "X-Config-Revision",
        OpenApiTypes.INT,
        OpenApiParameter.HEADER,
        response=[200, 304],
        required=True,
        description="The config revision this answer reflects.",
    ),
    OpenApiParameter(
        CACHE_HEADER,
        str,
        OpenApiParameter.HEADER,
        response=[200],
        required=True,
        enum=["hit", "miss"],
        description="Whether the body came from the cache (`hit`) or was built (`miss`).",
    ),
]
_NOT_MODIFIED = OpenApiResponse(
    description="Not modified: your copy (If-None-Match) is current. No body; the headers "
    "are those of the 200."
)


class AssistantConfigApi(APIView):
    permission_model = Assistant

    @extend_schema(
        operation_id="assistants_config",
        parameters=_CONFIG_HEADERS,
        responses={
            200: ResolvedConfigSerializer,
            304: _NOT_MODIFIED,
            **error_responses(*READ_ERRORS, 404),
        },
    )
    def get(self, request, assistant_id):
        return config_response(request, assistant_id=str(assistant_id))


class ConfigBundleApi(APIView):
    permission_model = Assistant

    @extend_schema(
        operation_id="config_bundle",
        parameters=_CONFIG_HEADERS,
        responses={
            200: ConfigBundleSerializer,
            304: _NOT_MODIFIED,
            **error_responses(*READ_ERRORS),
        },
    )
    def get(self, request):
        return config_response(request)
