"""Assistants, their resolved runtime configs and the config bundle.

Thin: parse, call a service or selector, render. The config endpoints share
`config_response`, which serves from the cache (config_backend.cache) or builds and stores.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from assistants.models import Assistant
from assistants.selectors import (
    active_assistant_exists,
    assistant_config_build,
    assistant_for_config,
    assistant_list,
    assistant_with_tools,
    config_bundle_build,
)
from assistants.services import (
    assistant_create,
    assistant_delete,
    assistant_references,
    assistant_update,
)
from config_backend.api import InputSerializer, StrictBooleanField, query_filters
from config_backend.api_errors import (
    CONFIG_DELETE_ERRORS,
    CONFIG_WRITE_ERRORS,
    READ_ERRORS,
    StillReferenced,
    error_responses,
    page_not_found,
)
from config_backend.cache import BUNDLE_KEY, assistant_config_key, current_revision, get_or_build
from config_backend.fast_path import config_etag, config_headers, etag_matches
from tools.api import LinkedToolSerializer
from tools.models import Tool


class AssistantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Assistant
        fields = [
            "id",
            "name",
            "is_secretary",
            "assistant_type",
            "model",
            "instructions",
            "openai_assistant_id",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AssistantDetailSerializer(AssistantSerializer):
    tools = LinkedToolSerializer(source="tool_links", many=True, read_only=True)

    class Meta(AssistantSerializer.Meta):
        fields = [*AssistantSerializer.Meta.fields, "tools"]
        read_only_fields = fields


class AssistantInputSerializer(InputSerializer):
    """Types only: the rules themselves are the model's (`full_clean()` in the service)."""

    ignored_fields = (*InputSerializer.ignored_fields, "tools")

    name = serializers.CharField()
    is_secretary = serializers.BooleanField(default=False)
    assistant_type = serializers.ChoiceField(
        choices=Assistant.Type.choices, default=Assistant.Type.LLM
    )
    model = serializers.CharField(allow_blank=True, default="")
    instructions = serializers.CharField(allow_blank=True, trim_whitespace=False, default="")
    openai_assistant_id = serializers.CharField(allow_blank=True, allow_null=True, default=None)
    is_active = serializers.BooleanField(default=True)


ASSISTANT_EXAMPLE = OpenApiExample(
    "An LLM assistant",
    value={
        "name": "Travel assistant",
        "assistant_type": "llm",
        "model": "gpt-4o-mini",
        "instructions": "Plan trips: flights, trains and hotels.",
    },
    request_only=True,
)


class AssistantFilterSerializer(serializers.Serializer):
    is_active = StrictBooleanField(required=False)
    is_secretary = StrictBooleanField(required=False)


class AssistantListApi(generics.ListAPIView):
    permission_model = Assistant
    serializer_class = AssistantSerializer

    def get_queryset(self):
        return assistant_list(filters=query_filters(AssistantFilterSerializer, self.request))

    @extend_schema(
        operation_id="assistants_list",
        parameters=[AssistantFilterSerializer],
        responses={
            200: AssistantSerializer(many=True),
            **error_responses(400, *READ_ERRORS),
            **page_not_found(),
        },
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="assistants_create",
        request=AssistantInputSerializer,
        examples=[ASSISTANT_EXAMPLE],
        responses={201: AssistantDetailSerializer, **error_responses(*CONFIG_WRITE_ERRORS)},
    )
    def post(self, request):
        serializer = AssistantInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        assistant = assistant_create(**serializer.validated_data)
        return Response(AssistantDetailSerializer(assistant).data, status=status.HTTP_201_CREATED)


def _assistant_or_404(assistant_id) -> Assistant:
    return get_object_or_404(Assistant, pk=assistant_id)


class AssistantDetailApi(APIView):
    permission_model = Assistant

    @extend_schema(
        operation_id="assistants_retrieve",
        responses={200: AssistantDetailSerializer, **error_responses(*READ_ERRORS, 404)},
    )
    def get(self, request, assistant_id):
        assistant = assistant_with_tools(assistant_id=assistant_id)
        if assistant is None:
            raise NotFound()
        return Response(AssistantDetailSerializer(assistant).data)

    @extend_schema(
        operation_id="assistants_update",
        request=AssistantInputSerializer,
        examples=[ASSISTANT_EXAMPLE],
        responses={200: AssistantDetailSerializer, **error_responses(*CONFIG_WRITE_ERRORS, 404)},
    )
    def put(self, request, assistant_id):
        return self._update(request, assistant_id, partial=False)

    @extend_schema(
        operation_id="assistants_partial_update",
        request=AssistantInputSerializer(partial=True),
        responses={200: AssistantDetailSerializer, **error_responses(*CONFIG_WRITE_ERRORS, 404)},
    )
    def patch(self, request, assistant_id):
        return self._update(request, assistant_id, partial=True)

    def _update(self, request, assistant_id, *, partial: bool):
        assistant = _assistant_or_404(assistant_id)
        serializer = AssistantInputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        assistant = assistant_update(assistant=assistant, **serializer.validated_data)
        return Response(AssistantDetailSerializer(assistant).data)

    @extend_schema(
        operation_id="assistants_destroy",
        responses={
            204: OpenApiResponse(description="Deleted, with its tool links and threads."),
            **error_responses(*CONFIG_DELETE_ERRORS),
        },
    )
    def delete(self, request, assistant_id):
        assistant = _assistant_or_404(assistant_id)
        try:
            assistant_delete(assistant=assistant)
        except DjangoValidationError as exc:
            references = assistant_references(assistant=assistant)
            raise StillReferenced(" ".join(exc.messages), references) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Resolved runtime config -------------------------------------------------------------


def config_response(request, *, assistant_id=None) -> HttpResponse:
    """One assistant's resolved config, or the bundle, from the cache or built and stored."""
    revision = current_revision()  # first: see config_backend.cache
    headers = config_headers(revision, assistant_id)
    if etag_matches(request.headers.get("If-None-Match"), config_etag(revision, assistant_id)):
        if assistant_id is not None and not active_assistant_exists(assistant_id=assistant_id):
            raise NotFound("No active assistant with this id.")
        return HttpResponseNotModified(headers=dict(headers))
    if assistant_id is None:
        body = get_or_build(
            key=BUNDLE_KEY,
            revision=revision,
            build=lambda: render_json(config_bundle_build(revision=revision)),
        )
    else:

        def build():
            assistant = assistant_for_config(assistant_id=assistant_id)
            if assistant is None:
                return None
            return render_json(assistant_config_build(assistant=assistant, revision=revision))

        body = get_or_build(key=assistant_config_key(assistant_id), revision=revision, build=build)
    if body is None:
        raise NotFound("No active assistant with this id.")
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
]
_NOT_MODIFIED = OpenApiResponse(description="Not modified: your copy (If-None-Match) is current.")


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
