"""The OpenAPI declarations (drf-spectacular) that the resources share: a paginated list, and the
writes of core.api.views' ObjectCreateMixin and ObjectWriteMixin. Written once, so every
resource documents its list and its writes alike."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view

from core.api.change_notes import REVISION_NOTE_PARAMETER
from core.api.errors import (
    CONFIG_DELETE_ERRORS,
    CONFIG_WRITE_ERRORS,
    READ_ERRORS,
    error_responses,
    page_not_found,
)


def list_schema(operation_id: str, serializer_class, *, filters=None, not_found: str = ""):
    """The GET of a paginated list, for `extend_schema_view(get=...)`: a page of
    `serializer_class`, 400 for a bad value of the `filters` serializer's query parameters (if it
    has any), 404 for a page that isn't there (`not_found`: what else makes it a 404)."""
    return extend_schema(
        operation_id=operation_id,
        parameters=[filters] if filters else None,
        responses={
            200: serializer_class(many=True),
            **error_responses(*([400] if filters else []), *READ_ERRORS),
            **(page_not_found(not_found) if not_found else page_not_found()),
        },
    )


def retrieve_schema(operation_id: str, serializer_class):
    """The GET of one object (ObjectWriteMixin's), for `extend_schema_view(get=...)`."""
    return extend_schema(
        operation_id=operation_id,
        responses={200: serializer_class, **error_responses(*READ_ERRORS, 404)},
    )


def documented_writes(resource: str, *, example: OpenApiExample, deleted: str = ""):
    """Class decorator: documents the writes a view has from ObjectCreateMixin (POST) or
    ObjectWriteMixin (PUT, PATCH, DELETE), with its input and output serializers, as the
    operations `<resource>_create`, `_update`, `_partial_update` and `_destroy`. Each changes
    the configuration, so it takes the revision's note; `deleted` describes a DELETE's 204.
    ObjectWriteMixin's GET is documented too, as `<resource>_retrieve`."""

    def decorate(view):
        request, output = view.input_serializer_class, view.output_serializer_class
        note = [REVISION_NOTE_PARAMETER]
        schemas = {}
        if hasattr(view, "perform_create"):
            schemas["post"] = extend_schema(
                operation_id=f"{resource}_create",
                parameters=note,
                request=request,
                examples=[example],
                responses={201: output, **error_responses(*CONFIG_WRITE_ERRORS)},
            )
        if hasattr(view, "perform_update"):
            schemas["get"] = retrieve_schema(f"{resource}_retrieve", output)
            written = {200: output, **error_responses(*CONFIG_WRITE_ERRORS, 404)}
            schemas["put"] = extend_schema(
                operation_id=f"{resource}_update",
                parameters=note,
                request=request,
                examples=[example],
                responses=written,
            )
            schemas["patch"] = extend_schema(
                operation_id=f"{resource}_partial_update",
                parameters=note,
                request=request(partial=True),
                responses=written,
            )
            schemas["delete"] = extend_schema(
                operation_id=f"{resource}_destroy",
                parameters=note,
                responses={
                    204: OpenApiResponse(description=deleted),
                    **error_responses(*CONFIG_DELETE_ERRORS),
                },
            )
        return extend_schema_view(**schemas)(view)

    return decorate
