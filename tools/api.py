"""Tools and an assistant's tool links. Thin: parse, call a service or selector, render."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from assistants.models import Assistant
from assistants.selectors import assistant_tool_links
from core.api import InputSerializer, StrictBooleanField, query_filters
from core.api_errors import (
    CONFIG_DELETE_ERRORS,
    CONFIG_WRITE_ERRORS,
    READ_ERRORS,
    StillReferenced,
    error_responses,
    page_not_found,
)
from tools.models import AssistantToolLink, Tool, default_input_schema
from tools.selectors import tool_list
from tools.services import (
    tool_create,
    tool_delete,
    tool_link,
    tool_references,
    tool_unlink,
    tool_update,
)


class ToolSerializer(serializers.ModelSerializer):
    input_schema = serializers.JSONField(help_text="JSON Schema of the call's arguments.")

    class Meta:
        model = Tool
        fields = [
            "id",
            "name",
            "tool_type",
            "description",
            "input_schema",
            "assistant",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ToolInputSerializer(InputSerializer):
    """Types only: the rules themselves are the model's (`full_clean()` in the service)."""

    name = serializers.CharField()
    tool_type = serializers.ChoiceField(choices=Tool.Type.choices)
    description = serializers.CharField(allow_blank=True, trim_whitespace=False, default="")
    input_schema = serializers.JSONField(
        default=default_input_schema,
        help_text='A JSON Schema object with top-level "type": "object" (a JSON string holding '
        "one is accepted too, and stored parsed).",
    )
    assistant = serializers.PrimaryKeyRelatedField(
        queryset=Assistant.objects.all(),
        pk_field=serializers.UUIDField(),
        allow_null=True,
        default=None,
        help_text="The delegate assistant's id: required for sub_assistant tools, else null.",
    )
    is_active = serializers.BooleanField(default=True)


TOOL_EXAMPLE = OpenApiExample(
    "A weather tool",
    value={
        "name": "get_weather",
        "tool_type": "weather",
        "description": "Current weather for a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    request_only=True,
)


class ToolFilterSerializer(serializers.Serializer):
    tool_type = serializers.ChoiceField(choices=Tool.Type.choices, required=False)
    is_active = StrictBooleanField(required=False)


class LinkSerializer(serializers.ModelSerializer):
    class Meta:
        model = AssistantToolLink
        fields = ["is_active", "sub_assistant", "created_at", "updated_at"]
        read_only_fields = fields


class LinkedToolSerializer(serializers.Serializer):
    """A tool linked to an assistant: the tool, and the link's own state."""

    tool = ToolSerializer()
    link = LinkSerializer(source="*")


class LinkInputSerializer(InputSerializer):
    is_active = serializers.BooleanField(default=True)


def _tool_or_404(tool_id) -> Tool:
    return get_object_or_404(Tool, pk=tool_id)


class ToolListApi(generics.ListAPIView):
    permission_model = Tool
    serializer_class = ToolSerializer

    def get_queryset(self):
        return tool_list(filters=query_filters(ToolFilterSerializer, self.request))

    @extend_schema(
        operation_id="tools_list",
        parameters=[ToolFilterSerializer],
        responses={
            200: ToolSerializer(many=True),
            **error_responses(400, *READ_ERRORS),
            **page_not_found(),
        },
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="tools_create",
        request=ToolInputSerializer,
        examples=[TOOL_EXAMPLE],
        responses={201: ToolSerializer, **error_responses(*CONFIG_WRITE_ERRORS)},
    )
    def post(self, request):
        serializer = ToolInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tool = tool_create(**serializer.validated_data)
        return Response(ToolSerializer(tool).data, status=status.HTTP_201_CREATED)


class ToolDetailApi(APIView):
    permission_model = Tool

    @extend_schema(
        operation_id="tools_retrieve",
        responses={200: ToolSerializer, **error_responses(*READ_ERRORS, 404)},
    )
    def get(self, request, tool_id):
        return Response(ToolSerializer(_tool_or_404(tool_id)).data)

    @extend_schema(
        operation_id="tools_update",
        request=ToolInputSerializer,
        examples=[TOOL_EXAMPLE],
        responses={200: ToolSerializer, **error_responses(*CONFIG_WRITE_ERRORS, 404)},
    )
    def put(self, request, tool_id):
        return self._update(request, tool_id, partial=False)

    @extend_schema(
        operation_id="tools_partial_update",
        request=ToolInputSerializer(partial=True),
        responses={200: ToolSerializer, **error_responses(*CONFIG_WRITE_ERRORS, 404)},
    )
    def patch(self, request, tool_id):
        return self._update(request, tool_id, partial=True)

    def _update(self, request, tool_id, *, partial: bool):
        tool = _tool_or_404(tool_id)
        serializer = ToolInputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        tool = tool_update(tool=tool, **serializer.validated_data)
        return Response(ToolSerializer(tool).data)

    @extend_schema(
        operation_id="tools_destroy",
        responses={
            204: OpenApiResponse(description="Deleted."),
            **error_responses(*CONFIG_DELETE_ERRORS),
        },
    )
    def delete(self, request, tool_id):
        tool = _tool_or_404(tool_id)
        try:
            tool_delete(tool=tool)
        except DjangoValidationError as exc:
            raise StillReferenced(" ".join(exc.messages), tool_references(tool=tool)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class AssistantToolsApi(generics.ListAPIView):
    """The assistant's linked tools (active or not), by tool name."""

    permission_model = AssistantToolLink
    serializer_class = LinkedToolSerializer

    def get_queryset(self):
        assistant = get_object_or_404(Assistant, pk=self.kwargs["assistant_id"])
        return assistant_tool_links(assistant=assistant)

    @extend_schema(
        operation_id="assistants_tools_list",
        responses={
            200: LinkedToolSerializer(many=True),
            **error_responses(*READ_ERRORS),
            **page_not_found("Unknown assistant id, or no such page."),
        },
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class AssistantToolLinkApi(APIView):
    """Link (POST) or unlink (DELETE) a tool. POSTing an existing link sets its `is_active`."""

    permission_model = AssistantToolLink

    @extend_schema(
        operation_id="assistants_tools_link",
        request=LinkInputSerializer,
        responses={
            201: OpenApiResponse(LinkedToolSerializer, description="Linked."),
            200: OpenApiResponse(LinkedToolSerializer, description="Was linked; link updated."),
            **error_responses(*CONFIG_WRITE_ERRORS, 404),
        },
    )
    def post(self, request, assistant_id, tool_id):
        assistant = get_object_or_404(Assistant, pk=assistant_id)
        tool = _tool_or_404(tool_id)
        serializer = LinkInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        link, created = tool_link(assistant=assistant, tool=tool, **serializer.validated_data)
        return Response(
            LinkedToolSerializer(link).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="assistants_tools_unlink",
        responses={
            204: OpenApiResponse(description="Unlinked."),
            **error_responses(*READ_ERRORS, 404, 503),
        },
    )
    def delete(self, request, assistant_id, tool_id):
        assistant = get_object_or_404(Assistant, pk=assistant_id)
        tool = _tool_or_404(tool_id)
        if not tool_unlink(assistant=assistant, tool=tool):
            return Response({"detail": "This tool is not linked."}, status=404)
        return Response(status=status.HTTP_204_NO_CONTENT)
