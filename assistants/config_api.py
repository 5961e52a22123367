"""The resolved runtime configs: one assistant's and the bundle of all (docs/contract.md "Resolved
runtime config"). core.reads serves them (one view for both endpoints, live or at a point in the
history); this module gives it what needs the assistants: the live config built from the rows
(`live_config`, registered at start by assistants.apps), and the body's documented shape.
"""

from rest_framework import serializers

from assistants.models import Assistant
from assistants.selectors import (
    active_assistant_exists,
    assistant_config_build,
    assistant_for_config,
    config_bundle_build,
)
from core.reads.view import config_endpoint
from tools.models import Tool


def live_config(assistant_id: str | None, revision: int) -> dict | None:
    """The live resolved config of an assistant (None: the bundle) tagged with `revision`;
    None when no active assistant has this id."""
    if assistant_id is None:
        return config_bundle_build(revision=revision)
    assistant = assistant_for_config(assistant_id=assistant_id)
    if assistant is None:
        return None
    return assistant_config_build(assistant=assistant, revision=revision)


def is_active(assistant_id: str) -> bool:
    return active_assistant_exists(assistant_id=assistant_id)


# Output documentation only: the shape itself is built by assistants.selectors. Every object in
# a config starts with its id and name.
class NamedObjectSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class DelegateSerializer(NamedObjectSerializer):
    pass


class ToolConfigSerializer(NamedObjectSerializer):
    tool_type = serializers.ChoiceField(choices=Tool.Type.choices)
    description = serializers.CharField()
    input_schema = serializers.JSONField()
    strict = serializers.BooleanField(
        help_text="Send this tool in OpenAI strict mode (its input_schema is strict-valid)."
    )
    sub_assistant = DelegateSerializer(allow_null=True)


class ResolvedConfigSerializer(NamedObjectSerializer):
    assistant_type = serializers.ChoiceField(choices=Assistant.Type.choices)
    model = serializers.CharField()
    instructions = serializers.CharField()
    openai_assistant_id = serializers.CharField(allow_null=True)
    is_secretary = serializers.BooleanField()
    model_settings = serializers.JSONField(
        help_text="The model's parameters (docs/agent-config.md); {}: the provider's defaults."
    )
    output = serializers.JSONField(
        allow_null=True, help_text='Structured output {"name", "schema", "strict"}, or null.'
    )
    variables = serializers.JSONField(
        help_text="The declared variables the instructions' placeholders use."
    )
    revision = serializers.IntegerField()
    tools = ToolConfigSerializer(many=True, help_text="Active links to active tools, by name.")


class ConfigBundleSerializer(serializers.Serializer):
    revision = serializers.IntegerField()
    secretary = serializers.UUIDField(allow_null=True)
    assistants = ResolvedConfigSerializer(many=True, help_text="Every active assistant, by name.")


AssistantConfigApi = config_endpoint(
    "AssistantConfigApi",
    operation_id="assistants_config",
    body=ResolvedConfigSerializer,
    permission_model=Assistant,
)
ConfigBundleApi = config_endpoint(
    "ConfigBundleApi",
    operation_id="config_bundle",
    body=ConfigBundleSerializer,
    permission_model=Assistant,
)
