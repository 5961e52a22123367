"""Snippets (`/api/v1/snippets/`). Thin: parse, call a service or selector, render."""

from drf_spectacular.utils import OpenApiExample, extend_schema_view
from rest_framework import generics, serializers
from rest_framework.views import APIView

from core.api.schemas import documented_writes, list_schema
from core.api.views import (
    InputSerializer,
    ObjectCreateMixin,
    ObjectWriteMixin,
    StrictBooleanField,
    query_filters,
)
from snippets.models import Snippet
from snippets.selectors import snippet_list
from snippets.services import snippet_create, snippet_delete, snippet_update


class SnippetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Snippet
        fields = ["id", *Snippet.CONFIG_FIELDS, "created_at", "updated_at"]
        read_only_fields = fields


class SnippetInputSerializer(InputSerializer):
    """Types only: the rules themselves are the model's (`full_clean()` in the service)."""

    name = serializers.CharField(
        trim_whitespace=False,
        help_text="Included as {{> name }}: matches ^[a-z][a-z0-9_-]{0,63}$.",
    )
    text = serializers.CharField(
        allow_blank=True,
        trim_whitespace=False,
        default="",
        help_text="The fragment: placeholders {{ variable }} and includes {{> snippet }} allowed; "
        "every include names an active snippet, no include cycles, and the instructions "
        "including it stay within MAX_INSTRUCTIONS_BYTES once expanded.",
    )
    description = serializers.CharField(allow_blank=True, trim_whitespace=False, default="")
    is_active = serializers.BooleanField(
        default=True,
        help_text="Deactivating a snippet that something includes is refused, naming what does.",
    )


SNIPPET_EXAMPLE = OpenApiExample(
    "A shared tone of voice",
    value={
        "name": "tone",
        "text": "Answer briefly and politely, in the user's language.",
        "description": "Included by every user-facing assistant.",
    },
    request_only=True,
)


class SnippetFilterSerializer(serializers.Serializer):
    is_active = StrictBooleanField(required=False)


@extend_schema_view(
    get=list_schema("snippets_list", SnippetSerializer, filters=SnippetFilterSerializer)
)
@documented_writes("snippets", example=SNIPPET_EXAMPLE)
class SnippetListApi(ObjectCreateMixin, generics.ListAPIView):
    permission_model = Snippet
    serializer_class = SnippetSerializer
    input_serializer_class = SnippetInputSerializer
    output_serializer_class = SnippetSerializer

    def get_queryset(self):
        return snippet_list(filters=query_filters(SnippetFilterSerializer, self.request))

    def perform_create(self, data: dict) -> Snippet:
        return snippet_create(**data)


@documented_writes("snippets", example=SNIPPET_EXAMPLE, deleted="Deleted.")
class SnippetDetailApi(ObjectWriteMixin, APIView):
    permission_model = Snippet
    lookup_url_kwarg = "snippet_id"
    input_serializer_class = SnippetInputSerializer
    output_serializer_class = SnippetSerializer

    def perform_update(self, instance: Snippet, data: dict) -> Snippet:
        return snippet_update(snippet=instance, **data)

    def perform_delete(self, instance: Snippet) -> None:
        snippet_delete(snippet=instance)
