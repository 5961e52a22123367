"""Tools. Thin: parse, call a service or selector, render.

(An assistant's tool set, `/assistants/{id}/tools/`, is the assistant's: assistants.api.)"""

from drf_spectacular.utils import OpenApiExample, extend_schema_view
from rest_framework import generics, serializers
from rest_framework.views import APIView

from core.api.schemas import documented_writes, list_schema
from core.api.views import (
    InputSerializer,
    ObjectCreateMixin,
    ObjectServices,
    ObjectWriteMixin,
    StrictBooleanField,
    query_filters,
)
from tools.models import Tool, default_input_schema
from tools.selectors import tool_list
from tools.services import tool_create, tool_delete, tool_update


class ToolSerializer(serializers.ModelSerializer):
    input_schema = serializers.JSONField(help_text="JSON Schema of the call's arguments.")

    class Meta:
        model = Tool
        fields = ["id", *Tool.CONFIG_FIELDS, "created_at", "updated_at"]
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
    strict = serializers.BooleanField(
        default=False,
        help_text="Send the tool in OpenAI strict mode. The input schema must then follow "
        'strict mode\'s rules: every object has "additionalProperties": false and lists every '
        'property in "required" (an optional one is nullable), only supported keywords, '
        "within the STRICT_SCHEMA_* limits. Errors name the JSON pointer of each problem.",
    )
    assistant = serializers.PrimaryKeyRelatedField(
        # The delegate's model, found through the field: tools import nothing from assistants.
        queryset=Tool._meta.get_field("assistant").related_model.objects.all(),
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


# What both tool views name: the model, the serializers and the services. (A comment: a
# docstring would become the views' OpenAPI description.)
class ToolApi:
    permission_model = Tool
    input_serializer_class = ToolInputSerializer
    output_serializer_class = ToolSerializer
    services = ObjectServices(create=tool_create, update=tool_update, delete=tool_delete)


@extend_schema_view(get=list_schema("tools_list", ToolSerializer, filters=ToolFilterSerializer))
@documented_writes("tools", example=TOOL_EXAMPLE)
class ToolListApi(ToolApi, ObjectCreateMixin, generics.ListAPIView):
    serializer_class = ToolSerializer

    def get_queryset(self):
        return tool_list(filters=query_filters(ToolFilterSerializer, self.request))


@documented_writes("tools", example=TOOL_EXAMPLE, deleted="Deleted.")
class ToolDetailApi(ToolApi, ObjectWriteMixin, APIView):
    lookup_url_kwarg = "tool_id"
