from config_client.templates import TemplateError
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from assistants.admin.forms import AssistantForm, VariablesWidget, typed_default
from assistants.admin.graph import GraphUnavailable, delegation_graph, graph_svg
from assistants.models import Assistant
from assistants.prompts import (
    rendered_instructions,
    strictly_expanded,
    unused_variables,
    unused_variables_warning,
    variables_problems,
)
from core.admin.actions import SaveOnlyChangesAdmin, activate_selected, deactivate_selected
from core.admin.history import RevisionHistoryAdmin
from core.models import RevisionChange
from tools.models import AssistantToolLink, Tool
from tools.validators import counts_as_active_tool, tool_limit_problems


class ToolLinkFormSet(BaseInlineFormSet):
    """Rule 9 over the whole tool set as submitted: each link's own clean() sees only the
    stored links, so several rows added at once could pass it one by one."""

    def clean(self):
        super().clean()
        stored = {
            pk: counts_as_active_tool(link_is_active=is_active, tool_is_active=tool_is_active)
            for pk, is_active, tool_is_active in AssistantToolLink.objects.filter(
                assistant_id=self.instance.pk
            ).values_list("pk", "is_active", "tool__is_active")
        }
        # Stored links the submitted forms leave out stay as they are.
        in_forms = {form.instance.pk for form in self.initial_forms}
        after = sum(counted for pk, counted in stored.items() if pk not in in_forms)
        rows = [
            data
            for data in (getattr(form, "cleaned_data", None) for form in self.forms)
            if data
            and data.get("tool") is not None
            and not (self.can_delete and data.get("DELETE"))
        ]
        # A read-only inline (the user may only view links) holds tool ids, not tools.
        tool_ids = [getattr(data["tool"], "pk", data["tool"]) for data in rows]
        tool_active = dict(Tool.objects.filter(pk__in=tool_ids).values_list("pk", "is_active"))
        for data, tool_id in zip(rows, tool_ids, strict=True):
            after += counts_as_active_tool(
                link_is_active=data.get("is_active", False),
                tool_is_active=tool_active.get(tool_id, False),
            )
        over = tool_limit_problems({self.instance.pk: after})
        if over and after > sum(stored.values()):
            raise ValidationError(
                gettext("This assistant would have %(problem)s")
                % {"problem": over[self.instance.pk]}
            )
        # Rule 10 for a link removed here (a deactivated one is refused by its own clean()).
        for form in self.initial_forms:
            if self.can_delete and self._should_delete_form(form) and form.instance.pk:
                refusal = form.instance.tool_choice_refusal()
                if refusal:
                    raise ValidationError(refusal)


class ToolLinkInline(admin.TabularInline):
    model = AssistantToolLink
    formset = ToolLinkFormSet
    fk_name = "assistant"
    extra = 1
    autocomplete_fields = ["tool"]
    fields = ["tool", "is_active", "sub_assistant"]
    readonly_fields = ["sub_assistant"]
    verbose_name = _("tool")
    verbose_name_plural = _("tools")


@admin.register(Assistant)
class AssistantAdmin(RevisionHistoryAdmin, SaveOnlyChangesAdmin):
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
    form = AssistantForm
    readonly_fields = ["id", "created_at", "updated_at", "instructions_preview"]
    fieldsets = [
        (None, {"fields": ["name", "assistant_type", "is_secretary", "is_active"]}),
        (_("Model"), {"fields": ["model", "openai_assistant_id", "model_settings", "output"]}),
        (
            _("Instructions"),
            {"fields": ["instructions", "variables", "instructions_preview"]},
        ),
        (_("Record"), {"fields": ["id", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    inlines = [ToolLinkInline]
    actions = [activate_selected, deactivate_selected]
    history_entity = RevisionChange.Entity.ASSISTANT
    change_list_template = "admin/assistants/assistant/change_list.html"

    def history_filter(self, obj):
        # Its links too: they are edited on its form and are part of its config.
        return super().history_filter(obj) | Q(
            entity=RevisionChange.Entity.LINK, object_id__startswith=f"{obj.pk}:"
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        unused = unused_variables(obj.instructions, obj.variables)
        if unused:
            # Allowed, so not a form error: most likely a placeholder was removed or misspelt.
            messages.warning(request, unused_variables_warning(unused))

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_tool_count=Count("tool_links", filter=Q(tool_links__is_active=True)))
        )

    @admin.display(description=_("tools"), ordering="_tool_count")
    def tool_count(self, obj):
        return obj._tool_count

    class Media:
        js = ["assistants/instructions_preview.js"]
        css = {"all": ["assistants/assistant_form.css"]}

    @admin.display(description=_("Preview"))
    def instructions_preview(self, obj):
        """The rendered instructions, live (assistants/static/assistants/instructions_preview.js
        asks preview_view as the form changes)."""
        return format_html(
            '<div id="instructions-preview" data-url="{}">'
            '<p class="help">{}</p><div class="preview-samples"></div>'
            '<pre class="preview-output"></pre><p class="preview-error errornote"></p></div>',
            reverse("admin:assistants_assistant_preview"),
            gettext(
                "Sample values (empty: the variable's default); the instructions as the runtime "
                "renders them with these, includes expanded:"
            ),
        )

    def get_urls(self):
        return [
            path(
                "preview/",
                self.admin_site.admin_view(require_POST(self.preview_view)),
                name="assistants_assistant_preview",
            ),
            path(
                "graph/",
                self.admin_site.admin_view(self.graph_view),
                name="assistants_assistant_graph",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request):
        """The instructions posted with the form, includes expanded, rendered with the sample
        values (`sample-<name>`, typed like a default) strictly, as the runtime renders them:
        {"instructions"} or {"error"} (English: the grammar's messages are the client's)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        variables, problems = variables_problems(
            VariablesWidget().value_from_datadict(request.POST, None, "variables") or []
        )
        if problems:
            return JsonResponse({"error": "; ".join(str(problem) for problem in problems)})
        values = {}
        for variable in variables:
            sample = request.POST.get(f"sample-{variable['name']}", "")
            if sample.strip():
                values[variable["name"]] = typed_default(variable["type"], sample)
        try:
            instructions = strictly_expanded(request.POST.get("instructions", ""))
            rendered = rendered_instructions(
                {"instructions": instructions, "variables": variables}, values
            )
        except TemplateError as exc:
            return JsonResponse({"error": str(exc)})
        return JsonResponse({"instructions": rendered})

    def graph_view(self, request):
        """The delegation graph (assistants.admin.graph): for staff who may view assistants and
        tools."""
        if not (self.has_view_permission(request) and request.user.has_perm("tools.view_tool")):
            raise PermissionDenied
        graph = delegation_graph()
        try:
            svg, problem = graph_svg(graph), None
        except GraphUnavailable as exc:
            svg, problem = None, str(exc)
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            "admin/assistants/assistant/delegation_graph.html",
            {
                **self.admin_site.each_context(request),
                "title": gettext("Delegation graph"),
                "subtitle": None,
                "opts": self.opts,
                "graph": graph,
                "svg": svg,
                "problem": problem,
            },
        )
