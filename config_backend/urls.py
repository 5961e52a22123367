from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from assistants.api import (
    AssistantDetailApi,
    AssistantListApi,
    AssistantToolLinkApi,
    AssistantToolsApi,
)
from assistants.config_api import AssistantConfigApi, ConfigBundleApi
from assistants.events_api import ConfigEventsApi
from assistants.render_api import AssistantRenderApi
from config_backend.history.api import (
    DiffApi,
    RevisionDetailApi,
    RevisionListApi,
    RollbackApi,
)
from config_backend.history.approval_api import (
    LabelRequestApproveApi,
    LabelRequestCancelApi,
    LabelRequestDetailApi,
    LabelRequestListApi,
    LabelRequestRejectApi,
)
from config_backend.history.label_api import (
    LabelAbortApi,
    LabelDetailApi,
    LabelHistoryApi,
    LabelListApi,
    LabelPromoteApi,
)
from core.ops.health import healthz, readyz
from core.ops.metrics import metrics_view
from core.reads.fast_path import serve_cached_hits
from outcomes.api import OutcomeListApi
from snippets.api import SnippetDetailApi, SnippetListApi
from threads.api import ThreadDetailApi, ThreadListApi
from tools.api import ToolDetailApi, ToolListApi
from webhooks.api import WebhookDetailApi, WebhookListApi

admin.site.site_header = _("Assistant configuration")
admin.site.site_title = _("Assistant configuration")
admin.site.index_title = _("Assistants, tools and threads")
# "View site" leads to the API's documentation: the service has no site of its own ("/" is a 404).
admin.site.site_url = "/api/docs/"
# The index links the delegation graph (assistants.admin.graph).
admin.site.index_template = "admin/index_with_graph.html"

api_v1 = [
    path("assistants/", AssistantListApi.as_view(), name="assistant-list"),
    path("assistants/<uuid:assistant_id>/", AssistantDetailApi.as_view(), name="assistant-detail"),
    path(
        "assistants/<uuid:assistant_id>/tools/",
        AssistantToolsApi.as_view(),
        name="assistant-tools",
    ),
    path(
        "assistants/<uuid:assistant_id>/tools/<uuid:tool_id>/",
        AssistantToolLinkApi.as_view(),
        name="assistant-tool-link",
    ),
    path(
        "assistants/<uuid:assistant_id>/config/",
        serve_cached_hits(AssistantConfigApi.as_view()),
        name="assistant-config",
    ),
    path(
        "assistants/<uuid:assistant_id>/render/",
        AssistantRenderApi.as_view(),
        name="assistant-render",
    ),
    path("config/", serve_cached_hits(ConfigBundleApi.as_view()), name="config-bundle"),
    path("revisions/", RevisionListApi.as_view(), name="revision-list"),
    path("revisions/<int:number>/", RevisionDetailApi.as_view(), name="revision-detail"),
    path("diff/", DiffApi.as_view(), name="diff"),
    path("labels/", LabelListApi.as_view(), name="label-list"),
    path("labels/<str:name>/", LabelDetailApi.as_view(), name="label-detail"),
    path("labels/<str:name>/history/", LabelHistoryApi.as_view(), name="label-history"),
    path("labels/<str:name>/promote/", LabelPromoteApi.as_view(), name="label-promote"),
    path("labels/<str:name>/abort/", LabelAbortApi.as_view(), name="label-abort"),
    path("label-requests/", LabelRequestListApi.as_view(), name="label-request-list"),
    path(
        "label-requests/<int:request_id>/",
        LabelRequestDetailApi.as_view(),
        name="label-request-detail",
    ),
    path(
        "label-requests/<int:request_id>/approve/",
        LabelRequestApproveApi.as_view(),
        name="label-request-approve",
    ),
    path(
        "label-requests/<int:request_id>/reject/",
        LabelRequestRejectApi.as_view(),
        name="label-request-reject",
    ),
    path(
        "label-requests/<int:request_id>/cancel/",
        LabelRequestCancelApi.as_view(),
        name="label-request-cancel",
    ),
    path("rollback/", RollbackApi.as_view(), name="rollback"),
    path("config/events/", ConfigEventsApi.as_view(), name="config-events"),
    path("tools/", ToolListApi.as_view(), name="tool-list"),
    path("tools/<uuid:tool_id>/", ToolDetailApi.as_view(), name="tool-detail"),
    path("snippets/", SnippetListApi.as_view(), name="snippet-list"),
    path("snippets/<uuid:snippet_id>/", SnippetDetailApi.as_view(), name="snippet-detail"),
    path("threads/", ThreadListApi.as_view(), name="thread-list"),
    path("threads/<uuid:thread_pk>/", ThreadDetailApi.as_view(), name="thread-detail"),
    path("webhooks/", WebhookListApi.as_view(), name="webhook-list"),
    path("webhooks/<uuid:webhook_id>/", WebhookDetailApi.as_view(), name="webhook-detail"),
    path("outcomes/", OutcomeListApi.as_view(), name="outcome-list"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
]

handler404 = "core.api.errors.json_not_found"
handler500 = "core.api.errors.json_server_error"
