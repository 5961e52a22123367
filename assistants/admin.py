from django.contrib import admin
from django.db.models import Count, Q

from assistants.models import Assistant
from core.admin_actions import activate_selected, deactivate_selected
from tools.models import AssistantToolLink


class ToolLinkInline(admin.TabularInline):
    model = AssistantToolLink
    fk_name = "assistant"
    extra = 1
    autocomplete_fields = ["tool"]
    fields = ["tool", "is_active", "sub_assistant"]
    readonly_fields = ["sub_assistant"]
    verbose_name = "tool"
    verbose_name_plural = "tools"


@admin.register(Assistant)
class AssistantAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "assistant_type",
        "model",
        "is_secretary",
        "is_active",
        "tool_count",
        "updated_at",
    ]
    list_filter = ["assistant_type", "is_secretary", "is_active"]
    ordering = ["name"]
    search_fields = ["name", "model", "instructions", "openai_assistant_id"]
    readonly_fields = ["id", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "assistant_type", "is_secretary", "is_active"]}),
        ("Model", {"fields": ["model", "openai_assistant_id", "instructions"]}),
        ("Record", {"fields": ["id", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    inlines = [ToolLinkInline]
    actions = [activate_selected, deactivate_selected]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_tool_count=Count("tool_links", filter=Q(tool_links__is_active=True)))
        )

    @admin.display(description="tools", ordering="_tool_count")
    def tool_count(self, obj):
        return obj._tool_count
