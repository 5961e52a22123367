"""Assistants and their tool sets: list, detail, writes, linking tools. Thin: parse, call a
service or selector, render.

The resolved runtime configs are in assistants.config_api."""

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from assistants.models import Assistant
from assistants.selectors import (
    assistant_list,
    assistant_tool_links,
    assistants_with_tools,
)
from assistants.services import (
    assistant_create,
    assistant_delete,
    assistant_update,
    tool_link,
    tool_unlink,
)
from core.api.change_notes import REVISION_NOTE_PARAMETER
from core.api.errors import CONFIG_WRITE_ERRORS, READ_ERRORS, error_responses
from core.api.schemas import documented_writes, list_schema
from core.api.views import (
    InputSerializer,
    ObjectCreateMixin,
    ObjectServices,
    ObjectWriteMixin,
    StrictBooleanField,
    object_or_404,
    query_filters,
)
from tools.api import ToolSerializer
from tools.models import AssistantToolLink, Tool


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


class AssistantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Assistant
        fields = ["id", *Assistant.CONFIG_FIELDS, "created_at", "updated_at"]
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
    model_settings = serializers.JSONField(
        default=dict,
        help_text="temperature (0–2), top_p (0–1), max_output_tokens (1–MAX_OUTPUT_TOKENS), "
        "reasoning_effort, verbosity (low, medium, high), tool_choice (auto, required, none or "
        "the name of an active linked tool), parallel_tool_calls, frequency_penalty and "
        "presence_penalty (−2–2). Any other key is an error; {} means the provider's defaults.",
    )
    output = serializers.JSONField(
        allow_null=True,
        default=None,
        help_text='Structured output: null, or {"name", "schema" (JSON Schema, top-level '
        '"type": "object"), "strict"}; errors name the JSON pointer of each problem.',
    )
    variables = serializers.JSONField(
        default=list,
        help_text="The variables the instructions' placeholders use: a list of {name, type "
        "(string, integer, number, boolean, enum), required, default, enum, description}.",
    )


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


# What both assistant views name: the model, the serializers and the services. (A comment: a
# docstring would become the views' OpenAPI description.)
class AssistantApi:
    permission_model = Assistant
    input_serializer_class = AssistantInputSerializer
    output_serializer_class = AssistantDetailSerializer
    services = ObjectServices(
        create=assistant_create, update=assistant_update, delete=assistant_delete
    )


@extend_schema_view(
    get=list_schema("assistants_list", AssistantSerializer, filters=AssistantFilterSerializer)
)
@documented_writes("assistants", example=ASSISTANT_EXAMPLE)
class AssistantListApi(AssistantApi, ObjectCreateMixin, generics.ListAPIView):
    serializer_class = AssistantSerializer

    def get_queryset(self):
        return assistant_list(filters=query_filters(AssistantFilterSerializer, self.request))


@documented_writes(
    "assistants", example=ASSISTANT_EXAMPLE, deleted="Deleted, with its tool links and threads."
)
class AssistantDetailApi(AssistantApi, ObjectWriteMixin, APIView):
    lookup_url_kwarg = "assistant_id"

    def retrieve_queryset(self):
        return assistants_with_tools()


@extend_schema_view(
    get=list_schema(
        "assistants_tools_list",
        LinkedToolSerializer,
        not_found="Unknown assistant id, or no such page.",
    )
)
class AssistantToolsApi(generics.ListAPIView):
    """The assistant's linked tools (active or not), by tool name."""

    permission_model = AssistantToolLink
    serializer_class = LinkedToolSerializer

    def get_queryset(self):
        assistant = object_or_404(Assistant, pk=self.kwargs["assistant_id"])
        return assistant_tool_links(assistant=assistant)


class AssistantToolLinkApi(APIView):
    """Link (POST) or unlink (DELETE) a tool. POSTing an existing link sets its `is_active`."""

    permission_model = AssistantToolLink

    @extend_schema(
        operation_id="assistants_tools_link",
        parameters=[REVISION_NOTE_PARAMETER],
        request=LinkInputSerializer,
        responses={
            201: OpenApiResponse(LinkedToolSerializer, description="Linked."),
            200: OpenApiResponse(LinkedToolSerializer, description="Was linked; link updated."),
            **error_responses(*CONFIG_WRITE_ERRORS, 404),
        },
    )
    def post(self, request, assistant_id, tool_id):
        assistant = object_or_404(Assistant, pk=assistant_id)
        tool = object_or_404(Tool, pk=tool_id)
        serializer = LinkInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        link, created = tool_link(assistant=assistant, tool=tool, **serializer.validated_data)
        return Response(
            LinkedToolSerializer(link).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="assistants_tools_unlink",
        parameters=[REVISION_NOTE_PARAMETER],
        responses={
            204: OpenApiResponse(description="Unlinked."),
            **error_responses(400, *READ_ERRORS, 404, 503),
        },
    )
    def delete(self, request, assistant_id, tool_id):
        assistant = object_or_404(Assistant, pk=assistant_id)
        tool = object_or_404(Tool, pk=tool_id)
        link = object_or_404(
            AssistantToolLink, assistant=assistant, tool=tool, detail="This tool is not linked."
        )
        tool_unlink(link=link)
        return Response(status=status.HTTP_204_NO_CONTENT)
