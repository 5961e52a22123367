"""Assistants: list, detail, writes. Thin: parse, call a service or selector, render.

The resolved runtime configs are in assistants.config_api."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from assistants.models import Assistant
from assistants.selectors import (
    assistant_list,
    assistant_with_tools,
)
from assistants.services import (
    assistant_create,
    assistant_delete,
    assistant_references,
    assistant_update,
)
from core.api import InputSerializer, StrictBooleanField, query_filters
from core.api_errors import (
    CONFIG_DELETE_ERRORS,
    CONFIG_WRITE_ERRORS,
    READ_ERRORS,
    StillReferenced,
    error_responses,
    page_not_found,
)
from tools.api import LinkedToolSerializer


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
