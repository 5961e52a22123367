"""Admin pieces shared by the config models: activate or deactivate the selected rows, save
only what changed, and say why in a change note."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.changes import MESSAGE_MAX_LENGTH, lock_change_sets
from core.ops.middleware import CHANGE_NOTE_FIELD


def _set_active(modeladmin, request, queryset, is_active: bool):
    # One save per row (not QuerySet.update) so every rule and every signal applies;
    # one transaction, so a row that breaks a rule leaves all rows as they were.
    changed = 0
    try:
        with transaction.atomic():
            lock_change_sets()  # before the rows (core.changes: the lock order)
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
            request,
            gettext("Nothing changed. %(reasons)s") % {"reasons": " ".join(exc.messages)},
            messages.ERROR,
        )
        return
    done = gettext("%(count)s activated.") if is_active else gettext("%(count)s deactivated.")
    modeladmin.message_user(request, done % {"count": changed}, messages.SUCCESS)


# permissions=: Django then offers and runs the action only for users who may change the rows;
# without it, anyone who can view the list could run it.
@admin.action(description=_("Activate selected %(verbose_name_plural)s"), permissions=["change"])
def activate_selected(modeladmin, request, queryset):
    _set_active(modeladmin, request, queryset, True)


@admin.action(description=_("Deactivate selected %(verbose_name_plural)s"), permissions=["change"])
def deactivate_selected(modeladmin, request, queryset):
    _set_active(modeladmin, request, queryset, False)


def change_note_field() -> forms.CharField:
    """The change note of an admin form, posted as `change_note`: core.ops.middleware reads it
    from the POST and the revision the request makes records it (docs/contract.md "Revisions")."""
    return forms.CharField(
        label=_("Change note"),
        required=False,
        max_length=MESSAGE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 80}),
        help_text=_("Why you made this change; shown in the history."),
    )


class ChangeNoteForm(forms.ModelForm):
    """A model form with the change note; nothing stores the note on the row."""

    change_note = change_note_field()


class SaveOnlyChangesAdmin(admin.ModelAdmin):
    """A form saved as it was shown changes nothing: no save, so no revision and no new ETag
    (the contract: a write that changes nothing makes no revision). Inline rows are saved by Django
    only when they changed. Users who may save the form get a change note at its end."""

    form = ChangeNoteForm

    def _takes_change_note(self, request, obj) -> bool:
        if obj is None:
            return self.has_add_permission(request)
        return self.has_change_permission(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if form.declared_fields and not self._takes_change_note(request, obj):
            # A read-only form has no fields at all (the change note, an admin's typed fields);
            # None removes a declared one.
            form = type(form.__name__, (form,), dict.fromkeys(form.declared_fields))
        return form

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (name, {**options, "fields": [f for f in options["fields"] if f != CHANGE_NOTE_FIELD]})
            for name, options in super().get_fieldsets(request, obj)
        ]
        if self._takes_change_note(request, obj):
            fieldsets.append((None, {"fields": [CHANGE_NOTE_FIELD]}))
        return fieldsets

    def save_model(self, request, obj, form, change):
        # A note alone changes no row.
        if change and not set(form.changed_data) - {CHANGE_NOTE_FIELD}:
            return
        super().save_model(request, obj, form, change)
