"""Outcomes over the API (`/api/v1/outcomes/`; docs/outcomes.md). Thin: parse, call the service
or selector, render.

POST: a key of the `runtime` or `write` scope (or staff with the add permission): the runtime
reports what its configs did. GET: any key (read scope).
"""

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from core.api.auth import ScopeOrModelPermission
from core.api.errors import WRITE_ERRORS, error_responses
from core.api.schemas import list_schema
from core.api.views import query_filters
from core.models import APIKey
from outcomes.models import COUNTERS, OutcomeBucket, Variant
from outcomes.selectors import LIVE, derived, outcome_buckets
from outcomes.services import outcomes_add
from outcomes.validators import MAX_COUNT, MAX_ROWS

IDEMPOTENCY_KEY_MAX_LENGTH = 255
POSTING_SCOPES = (APIKey.Scope.RUNTIME, APIKey.Scope.WRITE)


class OutcomePermission(ScopeOrModelPermission):
    """A key of the runtime or write scope may POST; any key may GET (module docstring)."""

    def has_permission(self, request, view):
        key = request.auth
        if isinstance(key, APIKey) and request.method == "POST":
            if key.scope in POSTING_SCOPES:
                return True
            self.message = (
                f"This API key's scope `{key.scope}` does not allow POST here; "
                f"`{APIKey.Scope.RUNTIME}` or `{APIKey.Scope.WRITE}` scope needed."
            )
            return False
        return super().has_permission(request, view)


class OutcomeSerializer(serializers.ModelSerializer):
    label = serializers.SerializerMethodField()
    variant = serializers.SerializerMethodField()
    error_rate = serializers.SerializerMethodField(help_text="errors / runs; null without runs.")
    mean_latency_ms = serializers.SerializerMethodField(help_text="latency_ms / runs.")
    tokens_per_run = serializers.SerializerMethodField(
        help_text="(input_tokens + output_tokens) / runs."
    )
    feedback_score = serializers.SerializerMethodField(
        help_text="(feedback_up − feedback_down) / (feedback_up + feedback_down), from −1 to 1; "
        "null without feedback."
    )

    class Meta:
        model = OutcomeBucket
        fields = [
            "assistant",
            "revision",
            "label",
            "variant",
            "period_start",
            "hours",
            *COUNTERS,
            "error_rate",
            "mean_latency_ms",
            "tokens_per_run",
            "feedback_score",
        ]
        read_only_fields = fields

    def get_label(self, bucket) -> str | None:
        return bucket.label or None

    def get_variant(self, bucket) -> str | None:
        return bucket.variant or None

    def get_error_rate(self, bucket) -> float | None:
        return derived(bucket)["error_rate"]

    def get_mean_latency_ms(self, bucket) -> float | None:
        return derived(bucket)["mean_latency_ms"]

    def get_tokens_per_run(self, bucket) -> float | None:
        return derived(bucket)["tokens_per_run"]

    def get_feedback_score(self, bucket) -> float | None:
        return derived(bucket)["feedback_score"]


class OutcomeFilterSerializer(serializers.Serializer):
    assistant = serializers.UUIDField(required=False)
    label = serializers.CharField(
        required=False, max_length=32, help_text=f"A label's name; `{LIVE}` for live reads."
    )
    since = serializers.DateTimeField(required=False, help_text="Buckets starting at or after.")


class OutcomeRowSerializer(serializers.Serializer):
    """Documents a row (outcomes.validators reads it: one reader for every entry point)."""

    assistant = serializers.UUIDField()
    revision = serializers.IntegerField(min_value=0, help_text="A revision of the history.")
    label = serializers.CharField(allow_null=True, required=False, help_text="null: a live read.")
    variant = serializers.ChoiceField(Variant.choices, allow_null=True, required=False)
    period_start = serializers.DateTimeField(
        help_text="Any moment of the hour (with its offset); added to that UTC hour. At most "
        "OUTCOMES_MAX_AGE_HOURS old, at most an hour ahead."
    )
    runs = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    errors = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    tool_calls = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    tool_errors = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    output_tokens = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    latency_ms = serializers.IntegerField(
        min_value=0, max_value=MAX_COUNT, required=False, help_text="The sum over the runs."
    )
    feedback_up = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    feedback_down = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)


class OutcomeBatchSerializer(serializers.Serializer):
    outcomes = OutcomeRowSerializer(many=True, max_length=MAX_ROWS)


class OutcomesAddedSerializer(serializers.Serializer):
    rows = serializers.IntegerField(help_text="Rows added (0 for a repeated Idempotency-Key).")
    buckets = serializers.IntegerField(help_text="Hourly buckets they added to.")
    repeated = serializers.BooleanField(help_text="The Idempotency-Key was applied before.")


IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Any string of at most 255 printable ASCII characters (a UUID per batch): a "
    "batch repeated with the same key, on any server, adds nothing (200) for at least 24 h.",
)


def idempotency_key(request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > IDEMPOTENCY_KEY_MAX_LENGTH or not all(" " < c <= "~" for c in key):
        raise ValidationError(
            {
                "Idempotency-Key": [
                    _("1 to {limit} printable ASCII characters.").format(
                        limit=IDEMPOTENCY_KEY_MAX_LENGTH
                    )
                ]
            }
        )
    return key


@extend_schema_view(
    get=list_schema("outcomes_list", OutcomeSerializer, filters=OutcomeFilterSerializer),
    post=extend_schema(
        operation_id="outcomes_create",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request=OutcomeBatchSerializer,
        examples=[
            OpenApiExample(
                "An hour of one assistant on a rollout's candidate",
                value={
                    "outcomes": [
                        {
                            "assistant": "8f0e8c3e-3b7a-4a53-9d7f-2b1f0c1d5e6a",
                            "revision": 42,
                            "label": "production",
                            "variant": "candidate",
                            "runs": 120,
                            "errors": 3,
                            "tool_calls": 80,
                            "input_tokens": 96000,
                            "output_tokens": 24000,
                            "latency_ms": 180000,
                            "feedback_up": 9,
                            "feedback_down": 1,
                            "period_start": "2030-01-07T10:00:00Z",
                        }
                    ]
                },
                request_only=True,
            )
        ],
        responses={
            201: OutcomesAddedSerializer,
            200: OutcomesAddedSerializer,
            **error_responses(*WRITE_ERRORS, 409),
        },
    ),
)
class OutcomeListApi(generics.ListAPIView):
    permission_classes = [OutcomePermission]
    permission_model = OutcomeBucket
    serializer_class = OutcomeSerializer

    def get_queryset(self):
        return outcome_buckets(**query_filters(OutcomeFilterSerializer, self.request))

    def post(self, request):
        added = outcomes_add(body=request.data, idempotency_key=idempotency_key(request))
        answer = {"rows": added.rows, "buckets": added.buckets, "repeated": added.repeated}
        return Response(answer, status=status.HTTP_200_OK if added.repeated else 201)
