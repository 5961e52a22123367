"""Plumbing shared by every API view: request parsing, strict input, filters, pagination."""

import math
from collections.abc import Mapping

from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser

# Deep enough for any real argument schema, shallow enough that no recursive code (JSON
# decoding, JSON Schema checks) ever runs out of stack on a hostile body.
MAX_JSON_DEPTH = 32


class StorableJSONParser(JSONParser):
    """JSON bodies holding only values PostgreSQL can store, nested at most MAX_JSON_DEPTH.

    NUL characters and non-finite numbers are refused (text and jsonb can't hold them). The
    size limit is Django's DATA_UPLOAD_MAX_MEMORY_SIZE, applied when DRF reads the body
    (`api_errors` answers it with 413).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        problem = unstorable_json_problem(data)
        if problem:
            raise ParseError(problem)
        return data


def unstorable_json_problem(data) -> str | None:
    """Why this decoded JSON can't be stored (NUL, infinity, too deep), or None."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"JSON nested deeper than {MAX_JSON_DEPTH} levels."
        if isinstance(value, str):
            if "\x00" in value:
                return "NUL characters (\\u0000) are not allowed."
        elif isinstance(value, float):
            if not math.isfinite(value):
                return "Numbers must be finite."
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if "\x00" in key:
                    return "NUL characters (\\u0000) are not allowed."
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return None


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
