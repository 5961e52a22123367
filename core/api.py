"""Plumbing shared by every API view: request parsing, strict input, filters, pagination."""

from collections.abc import Mapping

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser

from core.json_input import JSONInputError, parse_json


class StorableJSONParser(JSONParser):
    """JSON bodies read by core.json_input: no repeated keys, nothing PostgreSQL can't store
    (NUL characters, lone surrogates, non-finite or endless numbers), at most JSON_MAX_DEPTH
    levels deep. Each problem is named with its JSON pointer.

    The size limit is Django's DATA_UPLOAD_MAX_MEMORY_SIZE, applied when DRF reads the body
    (`api_errors` answers it with 413).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return parse_json(stream.read() if stream else b"", max_depth=settings.JSON_MAX_DEPTH)
        except JSONInputError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


class InputSerializer(serializers.Serializer):
    """Input of a write: refuses keys it doesn't know, which are usually typos.

    The read-only fields of our own output are let through (and ignored), so a client may send
    back what it read.
    """

    ignored_fields: tuple[str, ...] = ("id", "created_at", "updated_at")

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields) - set(self.ignored_fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class InputSerializerScheme(OpenApiSerializerExtension):
    """Documents what InputSerializer enforces: a key that isn't a field is refused."""

    target_class = InputSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        return {**schema, "additionalProperties": False}


def query_filters(filter_serializer_class, request) -> dict:
    """The validated filters of a list request; an invalid value is a 400, not ignored."""
    fields = filter_serializer_class().fields
    data = {
        name: value
        for name, value in request.query_params.items()
        if name in fields and value != ""
    }
    serializer = filter_serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class StrictBooleanField(serializers.BooleanField):
    """A query-string boolean: true/false or 1/0, anything else is an error."""

    TRUE_VALUES = {"true", "True", "TRUE", "1", 1}
    FALSE_VALUES = {"false", "False", "FALSE", "0", 0}
    default_error_messages = {"invalid": "Must be true or false."}


class ApiPagination(PageNumberPagination):
    """`?page=` and `?page_size=`; a page that doesn't exist (past the end, not a number) is 404."""

    page_size = 50
    page_size_query_param = "page_size"
    page_size_query_description = "Number of results to return per page (default 50, at most 500)."
    max_page_size = 500

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters
