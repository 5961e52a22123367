"""Webhooks over the API (`/api/v1/webhooks/`). Thin: parse, call a service, render.

Write scope (or staff with the webhook permissions) for every method, reads included: a
webhook's URL often carries the receiver's own token (a chat's incoming-webhook URL)."""

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.auth import ScopeOrModelPermission
from core.api.errors import READ_ERRORS, WRITE_ERRORS, error_responses, page_not_found
from core.api.schemas import retrieve_schema
from core.api.views import InputSerializer, ObjectServices, ObjectWriteMixin
from core.models import APIKey
from webhooks.models import Event, Webhook, default_events
from webhooks.selectors import webhook_list
from webhooks.services import webhook_create, webhook_delete, webhook_update

EVENTS_HELP = (
    "Any of `revision` (a committed change set), `label` (a label created or moved) and "
    "`label_request` (accepted; nothing sends it yet)."
)


class WebhookPermission(ScopeOrModelPermission):
    """An API key needs the write scope for every method here (module docstring)."""

    def has_permission(self, request, view):
        key = request.auth
        if isinstance(key, APIKey) and key.scope != APIKey.Scope.WRITE:
            self.message = (
                f"This API key's scope `{key.scope}` does not allow {request.method} here; "
                f"`{APIKey.Scope.WRITE}` scope needed."
            )
            return False
        return super().has_permission(request, view)


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(Event.choices))

    class Meta:
        model = Webhook
        fields = [
            "id",
            "url",
            "events",
            "is_active",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class NewWebhookSerializer(WebhookSerializer):
    secret = serializers.CharField(
        help_text="The signing secret (`whsec_` + base64), shown in this answer only: verify "
        "each delivery's `webhook-signature` with it (Standard Webhooks)."
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookInputSerializer(InputSerializer):
    """Types only: the rules (events, the destination) are the model's (`full_clean()`)."""

    ignored_fields = (*InputSerializer.ignored_fields, "disabled_reason")

    url = serializers.CharField(
        trim_whitespace=False,
        help_text="An http:// or https:// URL whose host resolves to public addresses only "
        "(unless listed in WEBHOOK_ALLOWED_HOSTS). Redirects are not followed.",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(Event.choices),
        allow_empty=False,
        default=default_events,
        help_text=EVENTS_HELP,
    )
    is_active = serializers.BooleanField(default=True)


WEBHOOK_EXAMPLE = OpenApiExample(
    "Announce label moves",
    value={"url": "https://chat.example.com/hooks/T0001/B0002", "events": ["label"]},
    request_only=True,
)


class WebhookApiMixin:
    permission_classes = [WebhookPermission]
    permission_model = Webhook


@extend_schema_view(
    get=extend_schema(
        operation_id="webhooks_list",
        responses={
            200: WebhookSerializer(many=True),
            **error_responses(*READ_ERRORS),
            **page_not_found(),
        },
    )
)
class WebhookListApi(WebhookApiMixin, generics.ListAPIView):
    serializer_class = WebhookSerializer

    def get_queryset(self):
        return webhook_list()

    @extend_schema(
        operation_id="webhooks_create",
        request=WebhookInputSerializer,
        examples=[WEBHOOK_EXAMPLE],
        responses={201: NewWebhookSerializer, **error_responses(*WRITE_ERRORS)},
    )
    def post(self, request):
        serializer = WebhookInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhook = webhook_create(**serializer.validated_data)
        return Response(NewWebhookSerializer(webhook).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=retrieve_schema("webhooks_retrieve", WebhookSerializer),
    put=extend_schema(
        operation_id="webhooks_update",
        request=WebhookInputSerializer,
        examples=[WEBHOOK_EXAMPLE],
        responses={200: WebhookSerializer, **error_responses(*WRITE_ERRORS, 404)},
    ),
    patch=extend_schema(
        operation_id="webhooks_partial_update",
        request=WebhookInputSerializer(partial=True),
        responses={200: WebhookSerializer, **error_responses(*WRITE_ERRORS, 404)},
    ),
    delete=extend_schema(
        operation_id="webhooks_destroy",
        responses={
            204: OpenApiResponse(description="Deleted, with its deliveries."),
            **error_responses(*READ_ERRORS, 404),
        },
    ),
)
class WebhookDetailApi(WebhookApiMixin, ObjectWriteMixin, APIView):
    lookup_url_kwarg = "webhook_id"
    input_serializer_class = WebhookInputSerializer
    output_serializer_class = WebhookSerializer
    services = ObjectServices(update=webhook_update, delete=webhook_delete)
