import copy

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.template.response import TemplateResponse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey as UnusedLibraryAPIKey

from core.api.keys import key_grant_problems
from core.models import APIKey, ConfigRevision
from core.store import bump_revision

# The library's own concrete model is unused (ours adds scopes); keep it out of the admin.
if admin.site.is_registered(UnusedLibraryAPIKey):
    admin.site.unregister(UnusedLibraryAPIKey)


# Revoking changes the keys: only users who may change them are offered (and can run) it.
@admin.action(description=_("Revoke selected API keys (cannot be undone)"), permissions=["change"])
def revoke_selected(modeladmin, request, queryset):
    with transaction.atomic():
        revoked = queryset.filter(revoked=False).update(revoked=True)
        if revoked:
            # update() sends no signal: drop the cached key records explicitly.
            bump_revision(ConfigRevision.API_KEYS)
    modeladmin.message_user(
        request, gettext("%(count)s revoked.") % {"count": revoked}, messages.SUCCESS
    )


# What decides what a key may do, and for how long.
GRANTING_FIELDS = ("scope", "protected", "expiry_date")


class APIKeyForm(forms.ModelForm):
    """A key's form, refused where the key would do more than the user who saves it may."""

    maker = None  # the user saving the form (APIKeyAdmin.get_form)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The key as it was, for what an edit grants anew (nothing, when added).
        self.before = None if self.instance._state.adding else copy.copy(self.instance)

    def _post_clean(self):
        # After the model's own rules, on the key as it would be saved: a field refused here
        # is left out of the instance, so checking first would add the model's complaints
        # about the value it falls back to (protected "needs write scope").
        super()._post_clean()
        if any(field in self.errors for field in GRANTING_FIELDS):
            return
        problems = key_grant_problems(
            self.maker,
            scope=self.instance.scope,
            protected=self.instance.protected,
            expiry_date=self.instance.expiry_date,
            before=self.before,
        )
        for field, refusals in problems.items():
            self.add_error(field if field in self.fields else None, refusals)


@admin.register(APIKey)
class APIKeyAdmin(APIKeyModelAdmin):
    """Adding a key shows it once, in the response to the add form; only its hash is stored."""

    form = APIKeyForm

    list_display = [
        "prefix",
        "name",
        "scope",
        "label",
        "protected",
        "created",
        "last_used_at",
        "expiry_date",
        "_has_expired",
        "revoked",
    ]
    list_filter = ["scope", "label", "protected", "revoked", "created"]
    actions = [revoke_selected]

    def get_readonly_fields(self, request, obj=None):
        fields = (*super().get_readonly_fields(request, obj), "last_used_at")
        if obj is not None and obj.revoked:
            fields = (*fields, "scope")
        return fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"maker": request.user})

    def save_model(self, request, obj, form, change):
        # Not the library's: it puts the new key in a message, which travels in the messages
        # cookie (signed, not encrypted) or the session. response_add shows it instead.
        if not change:
            obj.plaintext_key = self.model.objects.assign_key(obj)
        obj.save()

    def response_add(self, request, obj, post_url_continue=None):
        """The new key, shown once: this page is the only place it ever appears."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("API key “%(name)s” created") % {"name": obj.name},
            "api_key": obj,
            "key": obj.plaintext_key,
        }
        response = TemplateResponse(request, "admin/config_backend/apikey/created.html", context)
        response["Cache-Control"] = "no-store"  # no browser or proxy cache keeps the key
        return response
