"""Rendering an assistant's instructions with variable values, live or at a revision or label
(docs/agent-config.md). Thin: parse, read the resolved config the way the config endpoints do
(core.reads: cached, the same point rules), render with the one grammar (assistants.prompts →
config_client.templates), answer."""

import json

from config_client.templates import TemplateError
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from assistants.models import Assistant
from assistants.prompts import rendered_instructions
from core.api.errors import READ_ERRORS, error_responses
from core.api.views import InputSerializer
from core.reads.codings import IDENTITY
from core.reads.points import BadQuery, Point, point_of
from core.reads.reads import read_for


class RenderInputSerializer(InputSerializer):
    variables = serializers.DictField(
        child=serializers.JSONField(),
        default=dict,
        help_text="Values by variable name: strings, numbers and booleans as declared. A "
        "required variable without default must be given; an undeclared one is refused.",
    )
    revision = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="Render the instructions as they were at this revision.",
    )
    label = serializers.CharField(
        required=False,
        help_text="Render the instructions at this label's revision (`live`: the current "
        "ones). A key pinned to a label renders that label's when neither is given.",
    )


class RenderedSerializer(serializers.Serializer):
    instructions = serializers.CharField(help_text="The rendered instructions.")
    revision = serializers.IntegerField(help_text="The revision of the config rendered.")


class AssistantRenderApi(APIView):
    """Render the assistant's instructions (snippets included) with these variables. Strict:
    a missing required variable, an undeclared one, or a value of the wrong type is a 400
    naming it (`{"variables.NAME": ["…"]}`). Needs only the `read` scope."""

    permission_model = Assistant
    post_reads_only = True

    @extend_schema(
        operation_id="assistants_render",
        request=RenderInputSerializer,
        responses={
            200: RenderedSerializer,
            **error_responses(400, *READ_ERRORS, 404),
        },
        examples=[
            OpenApiExample(
                "Render for a user",
                value={"variables": {"user_name": "Ann"}, "label": "production"},
                request_only=True,
            )
        ],
    )
    def post(self, request, assistant_id):
        serializer = RenderInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            point = point_of(revision=data.get("revision"), label=data.get("label"))
        except BadQuery as exc:
            raise ValidationError({exc.field: exc.messages}) from None
        if not point.asked:
            point = Point(label=getattr(request.auth, "label", None))
        try:
            answer = read_for(str(assistant_id), point).get_or_build(IDENTITY, None)
        except LookupError as exc:  # an unknown revision or label; nothing active there
            raise NotFound(str(exc.args[0]) if exc.args else None) from None
        config = json.loads(answer.body)
        try:
            text = rendered_instructions(config, data["variables"])
        except TemplateError as exc:
            where = {exc.variable: [str(exc)]} if exc.variable else [str(exc)]
            raise ValidationError({"variables": where}) from None
        return Response({"instructions": text, "revision": config["revision"]})
