"""`GET /api/v1/config/events/`: the Server-Sent Events stream of config changes (docs/contract.md
"Runtime delivery"; core.events has the stream and why it is prompt).

Under ASGI (the production server) a stream with an API key is served before Django, in the
event loop (core.asgi_app); this view serves the rest: every stream under WSGI (runserver, the
embedded default), a staff session's, and every refusal (401, 403) with its JSON body."""

from asgiref.sync import async_to_sync
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from assistants.models import Assistant
from core import events
from core.api.errors import READ_ERRORS, error_responses
from core.api.keys import bearer_key


class JSONErrors(BaseContentNegotiation):
    """Whatever the Accept header (`text/event-stream`), a refusal is the usual JSON error: the
    stream itself is not rendered by DRF."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return JSONRenderer(), JSONRenderer.media_type


EVENT_STREAM_DESCRIPTION = (
    "A Server-Sent Events stream (`text/event-stream`) of committed config changes:\n\n"
    '- `event: revision`, `data: {"revision": N, "assistants": [ids whose resolved config '
    "changed]}`, one per change set;\n"
    '- `event: label`, `data: {"label": name, "revision": N}`, one per label move;\n'
    '- `event: hello`, `data: {"revision": N}` first on a connection without Last-Event-ID;\n'
    '- `event: reset`, `data: {"revision": N}` instead of the missed events when a reconnect '
    "missed more than `SSE_MAX_REPLAY` (default 100) or its Last-Event-ID is unknown: fetch "
    "the config again.\n\n"
    "Every event has an `id:` (`<revision>.<label move>`); reconnect with it as Last-Event-ID to "
    "get what you missed, oldest first. A `: keep-alive` comment is written every "
    "`SSE_HEARTBEAT_SECONDS` (default 15) without events."
)


# One event of the stream, as an SSE parser hands it over (comments and `retry:` are not events).
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["hello", "revision", "label", "reset"]},
        "data": {
            "type": "string",
            "description": 'JSON: `{"revision": N, "assistants": [ids]}` (revision), '
            '`{"label": name, "revision": N}` (label), `{"revision": N}` (hello, reset).',
        },
        "id": {
            "type": "string",
            "pattern": r"^[0-9]+\.[0-9]+$",
            "description": "`<revision number>.<label move id>`: send it back as Last-Event-ID.",
        },
    },
    "required": ["event", "data", "id"],
}


class ConfigEventsApi(APIView):
    permission_model = Assistant
    content_negotiation_class = JSONErrors

    @extend_schema(
        operation_id="config_events",
        parameters=[
            OpenApiParameter(
                "Last-Event-ID",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="The `id` of the last event received: resume after it.",
            ),
            OpenApiParameter(
                "last_event_id",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                description="Last-Event-ID, for clients that cannot send the header.",
            ),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                response=EVENT_SCHEMA, description=EVENT_STREAM_DESCRIPTION
            ),
            **error_responses(*READ_ERRORS),
        },
    )
    def get(self, request):
        last_event_id = request.headers.get("Last-Event-ID") or request.query_params.get(
            "last_event_id"
        )
        # The key, to re-check while the stream is open (authenticated: well-formed); None for
        # a staff session.
        key = bearer_key(request.META.get("HTTP_AUTHORIZATION"))
        if isinstance(request._request, ASGIRequest):
            stream = events.AsyncStream(*async_to_sync(events.subscribe)(last_event_id, key))
        else:
            stream = events.SyncStream(last_event_id, key)
        if not connection.in_atomic_block:
            connection.close()  # the stream holds no database connection
        return StreamingHttpResponse(
            stream,
            content_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
