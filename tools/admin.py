import json

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db import models
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.admin.actions import SaveOnlyChangesAdmin, activate_selected, deactivate_selected
from core.admin.history import RevisionHistoryAdmin
from core.api.json_input import JSONInputError, parse_json
from core.models import RevisionChange
from tools.models import AssistantToolLink, Tool
from tools.strict_schema import strict_schema_problems
from tools.validators import input_schema_problems


class PrettyJSONFormField(forms.JSONField):
    """Shows the stored JSON indented, so staff can read and edit a schema; reads what staff
    type with the API's reader (core.api.json_input), so the same limits and messages apply."""

    def to_python(self, value):
        if self.disabled or value in self.empty_values or not isinstance(value, str):
            return super().to_python(value)
        try:
            return parse_json(value, max_depth=settings.JSON_MAX_DEPTH)
        except JSONInputError as exc:
            raise forms.ValidationError([str(problem) for problem in exc.problems]) from None

    def bound_data(self, data, initial):
        # Shown again as typed when it can't be read (Django's own would raise on deep input).
        if self.disabled or data is None:
            return super().bound_data(data, initial)
        try:
            return parse_json(data, max_depth=settings.JSON_MAX_DEPTH)
        except JSONInputError:
            return forms.fields.InvalidJSONInput(data)

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)


@admin.register(Tool)
class ToolAdmin(RevisionHistoryAdmin, SaveOnlyChangesAdmin):
    list_display = [
        "name",
        "tool_type",
        "assistant",
        "is_active",
        "strict",
        "strict_ready",
        "used_by_count",
        "updated_at",
    ]
    ordering = ["name"]
    list_filter = ["tool_type", "is_active", "strict"]
    list_select_related = ["assistant"]
    search_fields = ["name", "description"]
    autocomplete_fields = ["assistant"]
    readonly_fields = ["id", "strict_readiness", "used_by", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "tool_type", "assistant", "is_active", "description"]}),
        (_("Arguments"), {"fields": ["input_schema", "strict", "strict_readiness"]}),
        (_("Used by"), {"fields": ["used_by"]}),
        (_("Record"), {"fields": ["id", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    formfield_overrides = {
        models.JSONField: {
            "form_class": PrettyJSONFormField,
            "widget": forms.Textarea(
                attrs={"rows": 16, "cols": 80, "style": "font-family: monospace"}
            ),
        }
    }
    actions = [activate_selected, deactivate_selected]
    history_entity = RevisionChange.Entity.TOOL

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_used_by_count=Count("assistant_links"))

    @admin.display(description=_("used by"), ordering="_used_by_count")
    def used_by_count(self, obj):
        return obj._used_by_count

    @admin.display(description=_("strict-ready"), boolean=True)
    def strict_ready(self, obj):
        return not _strict_mode_problems(obj)

    @admin.display(description=_("strict-mode readiness"))
    def strict_readiness(self, obj):
        """Rule 8's findings: errors for a strict tool (it can't be saved with any), warnings
        for one that isn't, so staff see what making it strict needs."""
        if obj.pk is None:
            return "—"
        problems = _strict_mode_problems(obj)
        if not problems:
            return gettext(
                "✓ Ready: the runtime can send this tool in OpenAI strict mode as it is."
            )
        return format_html(
            "{}<ul>{}</ul>",
            gettext(
                "✗ Not ready for strict mode; marking it strict is refused until these are fixed:"
            ),
            format_html_join(
                "",
                "<li><code>{}</code>: {}</li>",
                ((problem.pointer, problem.message) for problem in problems),
            ),
        )

    @admin.display(description=_("assistants using this tool"))
    def used_by(self, obj):
        links = obj.assistant_links.select_related("assistant").order_by("assistant__name")
        if obj.pk is None or not links:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">{}</a>{}</li>',
                (
                    (
                        reverse("admin:assistants_assistant_change", args=[link.assistant_id]),
                        link.assistant.name,
                        "" if link.is_active else gettext(" (inactive link)"),
                    )
                    for link in links
                ),
            ),
        )


def _strict_mode_problems(tool: Tool) -> list:
    """What keeps the stored schema from strict mode (rule 1's problems first, if any)."""
    schema, problems = input_schema_problems(tool.input_schema)
    return problems or strict_schema_problems(schema)


@admin.register(AssistantToolLink)
class AssistantToolLinkAdmin(RevisionHistoryAdmin, SaveOnlyChangesAdmin):
    list_display = ["__str__", "assistant", "tool", "sub_assistant", "is_active", "updated_at"]
    list_filter = ["is_active", "tool__tool_type"]
    list_select_related = ["assistant", "tool", "sub_assistant"]
    search_fields = ["assistant__name", "tool__name"]
    autocomplete_fields = ["assistant", "tool"]
    readonly_fields = ["sub_assistant", "created_at", "updated_at"]
    actions = [activate_selected, deactivate_selected]
    history_entity = RevisionChange.Entity.LINK

    def history_filter(self, obj):
        return Q(
            entity=self.history_entity, object_id=obj.history_id(obj.assistant_id, obj.tool_id)
        )
