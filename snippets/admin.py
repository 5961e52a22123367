from django.contrib import admin
from django.db import transaction
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from core.admin.actions import SaveOnlyChangesAdmin, activate_selected, deactivate_selected
from core.admin.history import RevisionHistoryAdmin
from core.models import RevisionChange
from snippets.models import Snippet
from snippets.selectors import snippet_references
from snippets.services import snippet_delete


@admin.register(Snippet)
class SnippetAdmin(RevisionHistoryAdmin, SaveOnlyChangesAdmin):
    list_display = ["name", "description", "is_active", "updated_at"]
    list_filter = ["is_active"]
    ordering = ["name"]
    search_fields = ["name", "text", "description"]
    readonly_fields = ["id", "included_by", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "is_active", "description"]}),
        (_("Text"), {"fields": ["text"]}),
        (_("Included by"), {"fields": ["included_by"]}),
        (_("Record"), {"fields": ["id", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    actions = [activate_selected, deactivate_selected]
    history_entity = RevisionChange.Entity.SNIPPET

    @admin.display(description=_("what includes this snippet"))
    def included_by(self, obj):
        references = [] if obj.pk is None else snippet_references(snippet=obj)
        if not references:
            return "—"
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((r,) for r in references))
        )

    def get_deleted_objects(self, objs, request):
        """Rule 7: a snippet something includes is shown as protected, so the admin refuses to
        delete it (its page, and the "delete selected" action) and says what includes it."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        for snippet in objs:
            protected.extend(f"{snippet.name}: {r}" for r in snippet_references(snippet=snippet))
        return deleted, model_count, perms_needed, protected

    def delete_model(self, request, obj):
        snippet_delete(snippet=obj)  # the same rule, checked again under the lock

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for snippet in queryset:
                snippet_delete(snippet=snippet)
