"""Admin pieces shared by the config models: activate or deactivate the selected rows, and
save only what changed."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction


def _set_active(modeladmin, request, queryset, is_active: bool):
    # One save per row (not QuerySet.update) so every rule and every signal applies;
    # one transaction, so a row that breaks a rule leaves all rows as they were.
    changed = 0
    try:
        with transaction.atomic():
            pks = list(queryset.values_list("pk", flat=True))
            rows = queryset.model._default_manager.select_for_update().filter(pk__in=pks)
            for obj in rows:
                if obj.is_active == is_active:
                    continue
                obj.is_active = is_active
                try:
                    obj.full_clean()
                except ValidationError as exc:
                    raise ValidationError(f"“{obj}”: " + " ".join(exc.messages)) from exc
                obj.save()
                changed += 1
    except ValidationError as exc:
        modeladmin.message_user(
            request, "Nothing changed. " + " ".join(exc.messages), messages.ERROR
        )
        return
    verb = "activated" if is_active else "deactivated"
    modeladmin.message_user(request, f"{changed} {verb}.", messages.SUCCESS)


# permissions=: Django then offers and runs the action only for users who may change the rows;
# without it, anyone who can view the list could run it.
@admin.action(description="Activate selected %(verbose_name_plural)s", permissions=["change"])
def activate_selected(modeladmin, request, queryset):
    _set_active(modeladmin, request, queryset, True)


@admin.action(description="Deactivate selected %(verbose_name_plural)s", permissions=["change"])
def deactivate_selected(modeladmin, request, queryset):
    _set_active(modeladmin, request, queryset, False)


class SaveOnlyChangesAdmin(admin.ModelAdmin):
    """A form saved as it was shown changes nothing: no save, so no revision and no new ETag
    (SPEC: a write that changes nothing makes no revision). Inline rows are saved by Django
    only when they changed."""

    def save_model(self, request, obj, form, change):
        if change and not form.has_changed():
            return
        super().save_model(request, obj, form, change)
