"""Plumbing shared by every API view: request parsing, strict input, filters, pagination,
"not found", and the PUT/PATCH/DELETE of one object."""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.db.models import Model, QuerySet
from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.fields import empty
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from core.api.json_input import JSONInputError, parse_json

ModelT = TypeVar("ModelT", bound=Model)


class StorableJSONParser(JSONParser):
    """JSON bodies read by core.api.json_input: no repeated keys, nothing PostgreSQL can't store
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
    """Documents what InputSerializer enforces: a key that isn't a field is refused.

    And no `default` in the request schema: a generated client (openapi-python-client) fills
    a property's `default` into the models it builds, so a PATCH of one field would send the
    others' defaults and overwrite them. The server still applies its defaults to a POST or PUT
    that omits a field; the description says which.
    """

    target_class = InputSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        properties = {}
        for name, prop in schema.get("properties", {}).items():
            prop = {key: value for key, value in prop.items() if key != "default"}
            field = self.target.fields.get(name)
            if not self.target.partial and field is not None and field.default is not empty:
                default = field.default() if callable(field.default) else field.default
                said = f"Default if omitted: `{json.dumps(default)}`."
                prop["description"] = " ".join(filter(None, [prop.get("description"), said]))
            properties[name] = prop
        return {**schema, "properties": properties, "additionalProperties": False}


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


def object_or_404(
    queryset: QuerySet[ModelT] | type[ModelT], *, detail: str | None = None, **lookup
) -> ModelT:
    """The object matching `lookup`, else 404 `{"detail": ...}`: the API's one way to say "not
    found". The detail is Django's ("No Tool matches the given query.") unless one is given."""
    if not isinstance(queryset, QuerySet):
        queryset = queryset._default_manager.all()
    try:
        return queryset.get(**lookup)
    except queryset.model.DoesNotExist:
        object_name = queryset.model._meta.object_name
        raise NotFound(detail or f"No {object_name} matches the given query.") from None


@dataclass(frozen=True)
class ObjectServices:
    """The services that write one kind of object, as the views below call them:
    `create(**fields)`, `update(<name>=instance, **fields)` and `delete(<name>=instance)`, where
    <name> is the model's name (`tool_update(tool=..., ...)`, `assistant_delete(assistant=...)`)."""

    create: Callable[..., Model] | None = None
    update: Callable[..., Model] | None = None
    delete: Callable[..., None] | None = None

    def keyword(self, instance: Model) -> dict:
        return {instance._meta.model_name: instance}


# POST of a new object to a list view: parse the input, call the service, render (201).
#
# A view names the input and output serializers and its `services` (their `create`), or calls its
# service in `perform_create`; core.api.schemas.documented_writes documents it. A mixin, not an
# APIView subclass: DRF imports this module (parser, pagination) while it defines APIView. No
# docstring: the views' OpenAPI descriptions would inherit it.
class ObjectCreateMixin:
    input_serializer_class: type[serializers.Serializer]
    output_serializer_class: type[serializers.Serializer]
    services: ObjectServices

    def perform_create(self, data: dict) -> Model:
        return self.services.create(**data)

    def post(self, request, **kwargs):
        serializer = self.input_serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        instance = self.perform_create(serializer.validated_data)
        return Response(self.output_serializer_class(instance).data, status=status.HTTP_201_CREATED)


# GET, PUT (every field), PATCH (the fields sent) and DELETE of one object, for an APIView: find
# it, parse the input, call the service, render.
#
# A view names its `permission_model` (the object's model: the one its permissions are about) and
# the URL keyword holding the id (`lookup_url_kwarg`), the input and output serializers, and its
# `services` (their `update` and `delete`); `retrieve_queryset` is what a GET reads from (to
# prefetch what the output shows). core.api.schemas.documented_writes documents
# get/put/patch/delete. A mixin, as ObjectCreateMixin.
class ObjectWriteMixin:
    permission_model: type[Model]
    lookup_url_kwarg: str
    input_serializer_class: type[serializers.Serializer]
    output_serializer_class: type[serializers.Serializer]
    services: ObjectServices

    def perform_update(self, instance: Model, data: dict) -> Model:
        return self.services.update(**self.services.keyword(instance), **data)

    def perform_delete(self, instance: Model) -> None:
        self.services.delete(**self.services.keyword(instance))

    def retrieve_queryset(self) -> QuerySet:
        return self.permission_model._default_manager.all()

    def get_object(self, queryset: QuerySet | None = None) -> Model:
        found_in = self.permission_model if queryset is None else queryset
        return object_or_404(found_in, pk=self.kwargs[self.lookup_url_kwarg])

    def get(self, request, **kwargs):
        instance = self.get_object(self.retrieve_queryset())
        return Response(self.output_serializer_class(instance).data)

    def put(self, request, **kwargs):
        return self._update(request, partial=False)

    def patch(self, request, **kwargs):
        return self._update(request, partial=True)

    def delete(self, request, **kwargs):
        self.perform_delete(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request, *, partial: bool):
        instance = self.get_object()
        serializer = self.input_serializer_class(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        instance = self.perform_update(instance, serializer.validated_data)
        return Response(self.output_serializer_class(instance).data)
