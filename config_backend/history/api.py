"""The history over the API: revisions, the diff between two points, rollback (docs/contract.md,
"Revisions, history, labels, diff, rollback"). Thin: parse, call a selector or service, render.

Reads need the `read` scope, or staff with `config_backend.view_revision`. A rollback needs the
`write` scope, or staff with every add/change/delete permission on assistants, tools and their
links: what an import may do.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import exceptions, generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from config_backend.history.selectors import (
    FIELD_SHOWN_CHARS,
    MalformedPoint,
    change_json,
    diff,
    resolve_point,
    revision_detail,
    revision_list,
)
from config_backend.history.services import (
    RollbackRefused,
    missing_rollback_permissions,
    rollback,
)
from core.api.auth import ScopeOrModelPermission
from core.api.change_notes import change_note_parameter
from core.api.errors import CONFIG_WRITE_ERRORS, READ_ERRORS, error_responses
from core.api.schemas import list_schema
from core.api.views import InputSerializer, StrictBooleanField, query_filters
from core.changes import MESSAGE_MAX_LENGTH
from core.models import APIKey, Revision, RevisionChange

# --- output -------------------------------------------------------------------------------------


class FieldChangeSerializer(serializers.Serializer):
    old = serializers.JSONField(allow_null=True, help_text="The value before (null: none).")
    new = serializers.JSONField(allow_null=True, help_text="The value after (null: none).")
    truncated = serializers.BooleanField(
        required=False,
        help_text=f"Present (true) only when `old` or `new` was cut: a value longer than "
        f"{FIELD_SHOWN_CHARS:,} characters is shown as its first {FIELD_SHOWN_CHARS:,} (an "
        "object or array: the start of its JSON text, as a string). Ask with `?full=1` for "
        "every value whole.",
    )


class ChangeSerializer(serializers.Serializer):
    entity = serializers.ChoiceField(choices=RevisionChange.Entity.choices)
    id = serializers.CharField(help_text="The row's id; a link's is \"<assistant id>:<tool id>\".")
    name = serializers.CharField(help_text='A link\'s is "<assistant> → <tool>".')
    action = serializers.ChoiceField(choices=RevisionChange.Action.choices)
    fields = serializers.DictField(
        child=FieldChangeSerializer(),
        help_text="Each changed field's old and new value (every field, for a row created or "
        "deleted).",
    )


class CountsSerializer(serializers.Serializer):
    assistants = serializers.IntegerField(source="count_assistants")
    tools = serializers.IntegerField(source="count_tools")
    links = serializers.IntegerField(source="count_links")
    snippets = serializers.IntegerField(source="count_snippets")


class RevisionSerializer(serializers.Serializer):
    revision = serializers.IntegerField(source="number")
    created_at = serializers.DateTimeField()
    author = serializers.CharField(
        help_text="The user's username, the API key's name, or the OS user of a command."
    )
    source = serializers.ChoiceField(choices=Revision.Source.choices)
    message = serializers.CharField(allow_blank=True)
    counts = CountsSerializer(source="*", help_text="The rows of each entity it changed.")


class RevisionDetailSerializer(RevisionSerializer):
    changes = ChangeSerializer(many=True, source="change_list")


DiffSerializer = type(
    "DiffSerializer",
    (serializers.Serializer,),
    {
        "from": serializers.IntegerField(help_text="The revision diffed from (`live`: current)."),
        "to": serializers.IntegerField(help_text="The revision diffed to (`live`: current)."),
        "changes": ChangeSerializer(many=True, help_text="The net change from `from` to `to`."),
    },
)


class RowSerializer(serializers.Serializer):
    entity = serializers.ChoiceField(choices=["assistant", "tool", "snippet"])
    id = serializers.UUIDField()
    name = serializers.CharField()


class RollbackResultSerializer(serializers.Serializer):
    revision = serializers.IntegerField(
        allow_null=True, help_text="The revision the rollback made; null if nothing changed."
    )
    kept = RowSerializer(many=True, help_text="Rows created after the target, kept (no prune).")
    deleted = RowSerializer(
        many=True, help_text="Rows created after the target, deleted with their threads (prune)."
    )


# --- input --------------------------------------------------------------------------------------


@extend_schema_field({"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]})
class PointField(serializers.CharField):
    """A point in the history: a revision number, or `live`."""


class RollbackInputSerializer(InputSerializer):
    to = PointField(help_text="The revision to roll back to (a number).")
    message = serializers.CharField(
        allow_blank=True,
        required=False,
        default="",
        max_length=MESSAGE_MAX_LENGTH,
        help_text="The new revision's note (else the X-Change-Note header's).",
    )
    prune = serializers.BooleanField(
        default=False,
        help_text="Delete the assistants and tools created after the target (with their links "
        "and threads); else they are kept.",
    )


class FullValuesSerializer(serializers.Serializer):
    full = StrictBooleanField(
        required=False,
        default=False,
        help_text=f"true (1): every changed value whole. Else a value longer than "
        f'{FIELD_SHOWN_CHARS:,} characters is cut, and its field marked `"truncated": true`.',
    )


def point_or_error(text, *, parameter: str) -> int | None:
    """The revision a point names (None: live): 400 naming `parameter` when malformed, 404
    when unknown."""
    try:
        return resolve_point(text)
    except MalformedPoint as exc:
        raise exceptions.ValidationError({parameter: [str(exc)]}) from None
    except LookupError as exc:
        raise NotFound(str(exc)) from None


# --- views --------------------------------------------------------------------------------------


@extend_schema_view(get=list_schema("revisions_list", RevisionSerializer))
class RevisionListApi(generics.ListAPIView):
    """Every committed change set, newest first, with the rows of each entity it changed."""

    permission_model = Revision
    serializer_class = RevisionSerializer

    def get_queryset(self):
        return revision_list()


class RevisionDetailApi(APIView):
    permission_model = Revision

    @extend_schema(
        operation_id="revisions_retrieve",
        parameters=[FullValuesSerializer],
        responses={200: RevisionDetailSerializer, **error_responses(400, *READ_ERRORS, 404)},
    )
    def get(self, request, number):
        """One revision with its field-level changes (long values cut unless `?full=1`)."""
        full = query_filters(FullValuesSerializer, request)["full"]
        try:
            revision = revision_detail(number, full=full)
        except LookupError as exc:
            raise NotFound(str(exc)) from None
        return Response(RevisionDetailSerializer(revision).data)


_POINT_HELP = "A revision number, or `live` (the current configuration)."


class DiffApi(APIView):
    permission_model = Revision

    @extend_schema(
        operation_id="diff",
        parameters=[
            OpenApiParameter("from", OpenApiTypes.STR, required=True, description=_POINT_HELP),
            OpenApiParameter("to", OpenApiTypes.STR, required=True, description=_POINT_HELP),
            FullValuesSerializer,
        ],
        responses={200: DiffSerializer, **error_responses(400, *READ_ERRORS, 404)},
    )
    def get(self, request):
        """The net change from one point in the history to another (long values cut unless
        `?full=1`)."""
        full = query_filters(FullValuesSerializer, request)["full"]
        points = {}
        for parameter in ("from", "to"):
            text = request.query_params.get(parameter)
            if text is None:
                raise exceptions.ValidationError({parameter: ["This parameter is required."]})
            points[parameter] = point_or_error(text, parameter=parameter)
        result = diff(points["from"], points["to"])
        return Response(
            {
                "from": result.from_revision,
                "to": result.to_revision,
                "changes": [change_json(change, full=full) for change in result.changes],
            }
        )


class RollbackPermission(ScopeOrModelPermission):
    """A key: the `write` scope (as for any config write). Staff: ROLLBACK_PERMISSIONS."""

    def has_permission(self, request, view):
        if isinstance(request.auth, APIKey):
            return super().has_permission(request, view)
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            self.message = "Only staff users may use the API with a session; send an API key."
            return False
        missing = missing_rollback_permissions(user)
        if missing:
            self.message = f"You need the {', '.join(f'`{m}`' for m in missing)} permission(s)."
            return False
        return True


class RollbackApi(APIView):
    permission_classes = [RollbackPermission]
    permission_model = Revision

    @extend_schema(
        operation_id="rollback",
        request=RollbackInputSerializer,
        examples=[
            OpenApiExample(
                "Undo the last change",
                value={"to": 41, "message": "Bad instructions", "prune": False},
                request_only=True,
            )
        ],
        parameters=[
            change_note_parameter("The new revision's note, when the body has no `message`.")
        ],
        responses={
            200: RollbackResultSerializer,
            **error_responses(*CONFIG_WRITE_ERRORS, 404, 409),
        },
    )
    def post(self, request):
        """Make the live configuration equal to the state at a revision, as one new revision
        (source `rollback`), through the import's validated atomic path. A target that breaks
        a rule against today's data is refused with 409 and the reasons; nothing changes."""
        serializer = RollbackInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        to = point_or_error(data["to"], parameter="to")
        try:
            result = rollback(to=to, prune=data["prune"], message=data["message"])
        except RollbackRefused as exc:
            return Response(
                {
                    "detail": "The rollback was refused; nothing was changed.",
                    "reasons": exc.reasons,
                },
                status=status.HTTP_409_CONFLICT,
            )
        except LookupError as exc:
            raise NotFound(str(exc)) from None
        return Response(
            {"revision": result.revision, "kept": result.kept, "deleted": result.deleted}
        )
