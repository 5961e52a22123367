"""The label requests API (docs/contract.md "Releases"; docs/approvals.md): list and read them,
approve, reject, cancel.

Reading needs any key, or staff with `config_backend.view_labelrequest`. Approving and
rejecting need a staff session with `config_backend.approve_label_move` (an API key never: 403),
and never the requester's own request. Cancelling is the requester's: the same staff user or
the same API key. A refusal is 403, 404 or 409 with a `detail` saying why; nothing changed,
except a request found expired or stale, which stays so.
"""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config_backend.history.approvals import (
    Requester,
    RequestRefused,
    approve_request,
    cancel_request,
    label_request_get,
    label_request_list,
    reject_request,
    request_json,
)
from config_backend.history.states import UnknownRevision
from core.api.auth import ScopeOrModelPermission
from core.api.errors import READ_ERRORS, error_responses
from core.api.permissions import APPROVE_LABEL_MOVE
from core.api.schemas import list_schema
from core.api.views import query_filters
from core.models import APIKey, LabelRequest


class RequesterSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The staff user's name, the API key's, or the OS user.")
    kind = serializers.ChoiceField(choices=LabelRequest.RequesterKind.choices)


class ApprovalSerializer(serializers.Serializer):
    user = serializers.CharField()
    at = serializers.DateTimeField()


class LabelChangeSerializer(serializers.Serializer):
    action = serializers.CharField(help_text="move, rollout, promote or abort.")
    revision = serializers.IntegerField(allow_null=True, help_text="The base target.")
    rollout = serializers.DictField(allow_null=True, help_text="{revision, percent, users}")


class LabelRequestSerializer(serializers.Serializer):
    """A label change request, as approvals.request_json makes it (webhooks send the same)."""

    id = serializers.IntegerField()
    label = serializers.CharField()
    status = serializers.ChoiceField(choices=LabelRequest.Status.choices)
    approvals = serializers.IntegerField(help_text="How many approved so far.")
    needed = serializers.IntegerField(help_text="How many approvals apply the change.")
    changes = serializers.ListField(
        child=serializers.DictField(),
        help_text="The diff readers would see, when the request was made (as GET /diff/).",
    )
    change = LabelChangeSerializer(help_text="The change asked for.")
    from_revision = serializers.IntegerField(
        allow_null=True, help_text="Where the label pointed when asked (null: no label yet)."
    )
    message = serializers.CharField()
    requester = RequesterSerializer()
    approved_by = ApprovalSerializer(many=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    decided_by = serializers.CharField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, instance):
        return request_json(instance)


class RequestFilters(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=LabelRequest.Status.choices, required=False, help_text="Only requests in it."
    )


class DecidePermission(ScopeOrModelPermission):
    """Approve and reject: staff with approve_label_move; an API key never."""

    def has_permission(self, request, view):
        if isinstance(request.auth, APIKey):
            self.message = "API keys may request label changes, never approve or reject them."
            return False
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            self.message = "Only staff users may use the API with a session; send an API key."
            return False
        if not user.has_perm(APPROVE_LABEL_MOVE):
            self.message = f"You need the `{APPROVE_LABEL_MOVE}` permission to do this."
            return False
        return True


class CancelPermission(ScopeOrModelPermission):
    """Any key or staff session; approvals.cancel_request checks it is the requester's."""

    def has_permission(self, request, view):
        if isinstance(request.auth, APIKey):
            return True
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            self.message = "Only staff users may use the API with a session; send an API key."
            return False
        return True


class RequestConflict(exceptions.APIException):
    status_code = 409


def refused(exc: RequestRefused) -> exceptions.APIException:
    """A refusal as the API answers it."""
    if exc.status_code == 403:
        return exceptions.PermissionDenied(exc.message)
    if exc.status_code == 404:
        return exceptions.NotFound(exc.message)
    return RequestConflict(exc.message)


@extend_schema_view(
    get=list_schema("label_requests_list", LabelRequestSerializer, filters=RequestFilters)
)
class LabelRequestListApi(generics.ListAPIView):
    """Label change requests, newest first (`?status=pending` for those waiting)."""

    permission_model = LabelRequest
    serializer_class = LabelRequestSerializer

    def get_queryset(self):
        return label_request_list(status=query_filters(RequestFilters, self.request).get("status"))


class LabelRequestDetailApi(APIView):
    permission_model = LabelRequest

    @extend_schema(
        operation_id="label_requests_retrieve",
        responses={200: LabelRequestSerializer, **error_responses(*READ_ERRORS, 404)},
    )
    def get(self, request, request_id):
        try:
            return Response(request_json(label_request_get(request_id)))
        except RequestRefused as exc:
            raise refused(exc) from None


class _DecisionApi(APIView):
    permission_model = LabelRequest
    decide = None

    def post(self, request, request_id):
        try:
            label_request = type(self).decide(request, request_id)
        except RequestRefused as exc:
            raise refused(exc) from None
        except UnknownRevision as exc:
            raise exceptions.NotFound(str(exc)) from None
        return Response(request_json(label_request))


def _decision_schema(operation_id: str, description: str):
    return extend_schema(
        operation_id=operation_id,
        description=description,
        request=None,
        responses={
            200: LabelRequestSerializer,
            **error_responses(400, *READ_ERRORS, 404, 409, 503),
        },
    )


class LabelRequestApproveApi(_DecisionApi):
    permission_classes = [DecidePermission]

    @staticmethod
    def decide(request, request_id):
        return approve_request(request_id, user=request.user)

    @_decision_schema(
        "label_requests_approve",
        "Approve (staff with `approve_label_move`, not the requester). The last approval needed "
        "applies the change: `status` becomes `approved`. 409: not pending (approved, rejected, "
        "cancelled, expired), already approved by you, or the label changed since the request "
        "(it becomes `stale`; nothing moves).",
    )
    def post(self, request, request_id):
        return super().post(request, request_id)


class LabelRequestRejectApi(_DecisionApi):
    permission_classes = [DecidePermission]

    @staticmethod
    def decide(request, request_id):
        return reject_request(request_id, user=request.user)

    @_decision_schema(
        "label_requests_reject",
        "Reject (staff with `approve_label_move`, not the requester). 409: not pending.",
    )
    def post(self, request, request_id):
        return super().post(request, request_id)


class LabelRequestCancelApi(_DecisionApi):
    permission_classes = [CancelPermission]

    @staticmethod
    def decide(request, request_id):
        return cancel_request(request_id, requester=Requester.of_request(request))

    @_decision_schema(
        "label_requests_cancel",
        "Cancel your own request (the same staff user or API key). 409: not pending.",
    )
    def post(self, request, request_id):
        return super().post(request, request_id)
