"""The labels API (docs/contract.md "Labels", "Rollout on a label"): list, create or move one,
set its rollout, promote or abort it, and its history.

Reading needs any key, or staff with `config_backend.view_label`. Every change (move, rollout,
promote, abort) needs the `write` scope, or staff with `config_backend.move_label`; a protected
label (settings.PROTECTED_LABELS) also needs a key created with `--protected`, or
`config_backend.move_protected_label`.

A promote or an abort of a label without a rollout is a 409 (the request is well formed; the
label's state is what refuses it), with nothing changed. Any change of a protected label under
LABEL_APPROVALS is a 202 with the change request made for it (config_backend.history.approvals),
nothing changed.
"""

from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import generics, permissions, serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from config_backend.history.approval_api import LabelRequestSerializer
from config_backend.history.approvals import Requester, request_json, request_or_change_label
from config_backend.history.labels import (
    LabelChange,
    NoRollout,
    UnknownLabel,
    is_protected,
    label_get,
    label_history,
    label_list,
    label_target,
    missing_move_permissions,
)
from config_backend.history.states import UnknownRevision
from core.api.auth import ScopeOrModelPermission
from core.api.change_notes import change_note_parameter
from core.api.errors import CONFIG_WRITE_ERRORS, READ_ERRORS, error_responses
from core.api.schemas import list_schema
from core.api.views import InputSerializer
from core.changes import MESSAGE_MAX_LENGTH, current_context
from core.models import LIVE, ROLLOUT_MAX_USERS, APIKey, Label, LabelMove, LabelRequest

ROLLOUT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {
            "type": "string",
            "readOnly": True,
            "description": "Changes only when the candidate revision does (not the percent).",
        },
        "revision": {"type": "integer", "description": "The candidate revision."},
        "percent": {
            "type": "number",
            "minimum": 0,
            "maximum": 100,
            "multipleOf": 0.01,
            "description": "The share of users on the candidate (two decimals at most).",
        },
        "users": {
            "type": "array",
            "items": {"type": "string"},
            "maxItems": ROLLOUT_MAX_USERS,
            "description": "User ids always on the candidate.",
        },
    },
    "required": ["revision", "percent"],
}


@extend_schema_field({**ROLLOUT_SCHEMA, "nullable": True})
class RolloutField(serializers.Field):
    """A label's rollout: null, or {"revision", "percent", "users"} (checked, field by field,
    by config_backend.history.labels.checked_rollout: one rule for every entry point)."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, **kwargs)

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


class LabelSerializer(serializers.Serializer):
    name = serializers.CharField()
    revision = serializers.IntegerField(help_text="The revision the label points at.")
    updated_at = serializers.DateTimeField()
    protected = serializers.SerializerMethodField(
        help_text="Listed in PROTECTED_LABELS: moving it needs `move_protected_label` (staff) or "
        "a key created with --protected."
    )

    rollout = RolloutField(
        read_only=True,
        help_text="The rollout: a candidate revision served to a share of users (null: none).",
    )

    def get_protected(self, label) -> bool:
        return is_protected(label.name)


LabelMoveSerializer = type(
    "LabelMoveSerializer",
    (serializers.Serializer,),
    {
        "from": serializers.IntegerField(
            source="from_revision",
            allow_null=True,
            help_text="Where the label pointed before (null: the move created it).",
        ),
        "to": serializers.IntegerField(source="to_revision", help_text="Where it points since."),
        "action": serializers.ChoiceField(
            choices=LabelMove.Action.choices,
            help_text="move (the base), rollout (set, changed or cleared), promote, abort.",
        ),
        "candidate": serializers.IntegerField(
            source="candidate_revision",
            allow_null=True,
            help_text="The rollout's candidate revision after the change (null: no rollout).",
        ),
        "percent": serializers.FloatField(
            allow_null=True, help_text="The rollout's percent after the change (null: none)."
        ),
        "author": serializers.CharField(help_text="Who moved it (username or API key name)."),
        "created_at": serializers.DateTimeField(help_text="When."),
        "message": serializers.CharField(),
    },
)


@extend_schema_field(
    {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "enum": [LIVE]}]}
)
class LabelTargetField(serializers.Field):
    """A revision number, or `live` (the newest revision when the label moves)."""

    default_error_messages = {"invalid": f"A revision number or `{LIVE}`."}

    def to_internal_value(self, data):
        if data == LIVE or (isinstance(data, int) and not isinstance(data, bool) and data >= 0):
            return data
        self.fail("invalid")

    def to_representation(self, value):
        return value


class LabelMessageInputSerializer(InputSerializer):
    """Why (a promote or an abort)."""

    message = serializers.CharField(
        allow_blank=True,
        required=False,
        default="",
        max_length=MESSAGE_MAX_LENGTH,
        help_text="Why (shown in the label's history); else the X-Change-Note header's.",
    )


class LabelMoveInputSerializer(LabelMessageInputSerializer):
    """Where to point the label, its rollout, and why."""

    ignored_fields = (*LabelMessageInputSerializer.ignored_fields, "name", "protected")
    revision = LabelTargetField(
        required=False,
        help_text=f"The base revision to point at, or `{LIVE}` (kept if omitted with `rollout`).",
    )
    rollout = RolloutField(
        required=False,
        help_text="Set the rollout (null: clear it); omitted: the rollout is kept.",
    )


class NoRolloutConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "no_rollout"


def apply_change(request, name: str, change: LabelChange, message: str) -> Response | Label:
    """Apply a change asked for through the API, as its caller (404: an unknown revision or
    label; 409: no rollout to promote or abort). A protected label under LABEL_APPROVALS gets
    a change request instead: the 202 answer to send, nothing changed."""
    context = current_context()
    try:
        outcome = request_or_change_label(
            name,
            change,
            author=context.author,
            message=message or context.message,
            requester=Requester.of_request(request),
        )
    except (UnknownRevision, UnknownLabel) as exc:
        raise NotFound(str(exc)) from None
    except NoRollout as exc:
        raise NoRolloutConflict(str(exc)) from None
    if isinstance(outcome, LabelRequest):
        return Response(request_json(outcome), status=status.HTTP_202_ACCEPTED)
    return outcome


class LabelPermission(ScopeOrModelPermission):
    """Reads as every API read; a move as the module docstring says, naming what is missing."""

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return super().has_permission(request, view)
        name = view.kwargs["name"]
        protected = is_protected(name)
        if isinstance(request.auth, APIKey):
            if request.auth.scope != APIKey.Scope.WRITE:
                self.message = (
                    f"This API key's scope `{request.auth.scope}` does not allow moving labels; "
                    "`write` scope needed."
                )
                return False
            if protected and not request.auth.protected:
                self.message = (
                    f"“{name}” is a protected label: only API keys created with --protected "
                    "may move it."
                )
                return False
            return True
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            self.message = "Only staff users may use the API with a session; send an API key."
            return False
        missing = missing_move_permissions(user, name)
        if missing:
            self.message = (
                f"You need the {', '.join(f'`{name}`' for name in missing)} permission(s) to "
                "move this label."
            )
            return False
        return True


@extend_schema_view(get=list_schema("labels_list", LabelSerializer))
class LabelListApi(generics.ListAPIView):
    """Every label, by name: where it points and whether it is protected."""

    permission_model = Label
    serializer_class = LabelSerializer

    def get_queryset(self):
        return label_list()


class LabelDetailApi(APIView):
    permission_classes = [LabelPermission]
    permission_model = Label

    @extend_schema(
        operation_id="labels_retrieve",
        responses={200: LabelSerializer, **error_responses(*READ_ERRORS, 404)},
    )
    def get(self, request, name):
        return Response(LabelSerializer(label_or_404(name)).data)

    @extend_schema(
        operation_id="labels_move",
        description="Create the label, or move it, to a revision or `live`. 404: the revision "
        "is not in the history; 400: the name is not a label name (or is `live`). 202: the "
        "label is protected and LABEL_APPROVALS is on: a change request was made (see "
        "/label-requests/), nothing changed.",
        request=LabelMoveInputSerializer,
        parameters=[
            change_note_parameter("Why (the label's history), when the body has no `message`.")
        ],
        responses={
            200: LabelSerializer,
            201: LabelSerializer,
            202: LabelRequestSerializer,
            **error_responses(*CONFIG_WRITE_ERRORS, 404),
        },
    )
    def put(self, request, name):
        serializer = LabelMoveInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            revision = label_target(data["revision"]) if "revision" in data else None
        except UnknownRevision as exc:
            raise NotFound(str(exc)) from None
        if "rollout" in data:
            change = LabelChange("rollout", revision, data["rollout"])
        else:
            change = LabelChange("move", revision)
        label = apply_change(request, name, change, data["message"])
        if isinstance(label, Response):  # a change request (202)
            return label
        return Response(
            LabelSerializer(label).data,
            status=status.HTTP_201_CREATED if label.created else status.HTTP_200_OK,
        )


class LabelActionApi(APIView):
    """POST promote/ or abort/: one step each, recorded in the label's history."""

    permission_classes = [LabelPermission]
    permission_model = Label
    action: str = ""

    def post(self, request, name):
        serializer = LabelMessageInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        label = apply_change(
            request, name, LabelChange(self.action), serializer.validated_data["message"]
        )
        if isinstance(label, Response):  # a change request (202)
            return label
        return Response(LabelSerializer(label).data)


def label_action_api(action: str, description: str) -> type[LabelActionApi]:
    post = extend_schema(
        operation_id=f"labels_{action}",
        description=description,
        request=LabelMessageInputSerializer,
        parameters=[change_note_parameter("Why (the label's history), when the body has none.")],
        responses={
            200: LabelSerializer,
            202: LabelRequestSerializer,
            **error_responses(*CONFIG_WRITE_ERRORS, 404, 409),
        },
    )(lambda self, request, name: LabelActionApi.post(self, request, name))
    return type(f"Label{action.title()}Api", (LabelActionApi,), {"action": action, "post": post})


LabelPromoteApi = label_action_api(
    "promote",
    "Move the label to its rollout's candidate and clear the rollout, in one step. 409: the "
    "label has no rollout. 202: the label is protected and LABEL_APPROVALS is on: a change "
    "request was made, nothing changed.",
)
LabelAbortApi = label_action_api(
    "abort",
    "Clear the label's rollout, keeping its base, in one step. 409: the label has no rollout. "
    "202: the label is protected and LABEL_APPROVALS is on: a change request was made.",
)


@extend_schema_view(
    get=list_schema(
        "labels_history", LabelMoveSerializer, not_found="No such label, or no such page."
    )
)
class LabelHistoryApi(generics.ListAPIView):
    """Every move of the label, newest first: from, to, who, when and why."""

    permission_model = Label
    serializer_class = LabelMoveSerializer

    def get_queryset(self):
        try:
            return label_history(self.kwargs["name"])
        except UnknownLabel as exc:
            raise NotFound(str(exc)) from None


def label_or_404(name: str) -> Label:
    try:
        return label_get(name)
    except UnknownLabel as exc:
        raise NotFound(str(exc)) from None
