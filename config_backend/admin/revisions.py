"""The admin's Revisions pages (docs/contract.md "Revisions, history, labels, diff, rollback"):
read-only, with the rollback to one of them after its diff and a confirmation; and what the
history's admin pages share (a diff shown before a confirmation, a view of one row).
Who may do what: config_backend/admin/__init__.py."""

import functools

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import PAGE_VAR
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config_backend.history.selectors import diff, revision_list
from config_backend.history.services import (
    RollbackRefused,
    missing_rollback_permissions,
    rollback,
)
from core.admin.actions import change_note_field
from core.admin.history import ReadOnlyAdmin, field_page, shown_change
from core.models import Revision

# Changes listed on a page of a revision; a diff shown before a confirmation lists at most
# as many (the confirmation is a POST form: no pages).
CHANGES_PAGE_SIZE = 200


def may_roll_back(user) -> bool:
    return user.is_active and user.is_staff and not missing_rollback_permissions(user)


def shown_changes(changes, request, revision) -> tuple[list, object]:
    """A page (?p=) of a revision's changes, as the history templates show them (a field cut
    there links to its own page), and the page."""
    page = Paginator(changes, CHANGES_PAGE_SIZE).get_page(request.GET.get(PAGE_VAR))

    def full_url(change, field):
        return reverse("admin:config_backend_revision_field", args=[revision.pk, change.pk, field])

    return [shown_change(change, full_url=full_url) for change in page.object_list], page


def diff_context(difference) -> dict:
    """A diff as a confirmation page shows it: its first changes, and how many it has."""
    return {
        "difference": difference,
        "changes": [shown_change(change) for change in difference.changes[:CHANGES_PAGE_SIZE]],
        "change_count": len(difference.changes),
        "changes_not_shown": max(0, len(difference.changes) - CHANGES_PAGE_SIZE),
    }


def of_one_viewable_row(view):
    """An admin view of one row (a ReadOnlyAdmin's), called with the row instead of its id: a
    row that does not exist redirects as the admin's own views do; one the user may not view
    is PermissionDenied."""

    @functools.wraps(view)
    def with_row(model_admin, request, object_id, *args, **kwargs):
        row = model_admin.get_object(request, unquote(object_id))
        if row is None:
            return model_admin._get_obj_does_not_exist_redirect(
                request, model_admin.opts, object_id
            )
        if not model_admin.has_view_permission(request, row):
            raise PermissionDenied
        return view(model_admin, request, row, *args, **kwargs)

    return with_row


class RollbackForm(forms.Form):
    prune = forms.BooleanField(
        required=False,
        label=_("Delete what was created since (prune)"),
        help_text=_(
            "Assistants and tools created after this revision are deleted, with their "
            "threads. Unchecked, they are kept."
        ),
    )
    change_note = change_note_field()


@admin.register(Revision)
class RevisionAdmin(ReadOnlyAdmin):
    list_display = [
        "number",
        "created_at",
        "author",
        "source",
        "note",
        "assistants_changed",
        "tools_changed",
        "links_changed",
    ]
    list_display_links = ["number"]
    list_filter = ["source"]
    search_fields = ["author", "message"]

    def get_queryset(self, request):
        return revision_list()

    @admin.display(description=_("note"))
    def note(self, obj):
        return obj.message if len(obj.message) <= 80 else obj.message[:79] + "…"

    @admin.display(description=_("assistants"), ordering="count_assistants")
    def assistants_changed(self, obj):
        return obj.count_assistants

    @admin.display(description=_("tools"), ordering="count_tools")
    def tools_changed(self, obj):
        return obj.count_tools

    @admin.display(description=_("links"), ordering="count_links")
    def links_changed(self, obj):
        return obj.count_links

    def get_urls(self):
        return [
            path(
                "<path:object_id>/rollback/",
                self.admin_site.admin_view(self.rollback_view),
                name="config_backend_revision_rollback",
            ),
            path(
                "<path:object_id>/changes/<int:change_id>/<str:field>/",
                self.admin_site.admin_view(self.field_view),
                name="config_backend_revision_field",
            ),
            *super().get_urls(),
        ]

    @of_one_viewable_row
    def change_view(self, request, revision, form_url="", extra_context=None):
        changes, page = shown_changes(revision.changes.order_by("id"), request, revision)
        return self._page(
            request,
            "admin/history/revision_detail.html",
            gettext("Revision %(number)s") % {"number": revision.number},
            revision=revision,
            original=revision,
            changes=changes,
            page_obj=page,
            page_range=page.paginator.get_elided_page_range(page.number),
            may_roll_back=may_roll_back(request.user),
        )

    @of_one_viewable_row
    def field_view(self, request, revision, change_id, field):
        """One field of one of the revision's changes, whole (linked where a page cut it)."""
        change = revision.changes.filter(pk=change_id).select_related("revision").first()
        if change is None:
            raise Http404(gettext("No such change in this revision."))
        return field_page(request, self, change=change, field=field)

    @of_one_viewable_row
    def rollback_view(self, request, revision):
        """Shows what rolling back to the revision changes (live → the revision), then, on
        a confirmed POST, rolls back."""
        if not may_roll_back(request.user):
            raise PermissionDenied
        form = RollbackForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            try:
                result = rollback(
                    to=revision.number,
                    prune=form.cleaned_data["prune"],
                    message=form.cleaned_data["change_note"],
                )
            except RollbackRefused as exc:
                self.message_user(
                    request,
                    gettext(
                        "Nothing was changed: the config at this revision breaks a rule "
                        "against today's data. %(reasons)s"
                    )
                    % {"reasons": " ".join(exc.reasons)},
                    messages.ERROR,
                )
            else:
                return self._rolled_back(request, revision, result)
        return self._page(
            request,
            "admin/history/rollback_confirm.html",
            gettext("Roll back to revision %(number)s?") % {"number": revision.number},
            revision=revision,
            original=revision,
            form=form,
            **diff_context(diff(None, revision.number)),
        )

    def _rolled_back(self, request, revision, result):
        rows = result.deleted or result.kept
        if rows:
            names = ", ".join(f"{row['entity']} {row['name']}" for row in rows)
            message = (
                gettext("Created after revision %(number)s, deleted: %(names)s.")
                if result.deleted
                else gettext("Created after revision %(number)s, kept (not pruned): %(names)s.")
            )
            self.message_user(request, message % {"number": revision.number, "names": names})
        if result.revision is None:
            self.message_user(
                request,
                gettext("Nothing changed: the live config already is as at revision %(number)s.")
                % {"number": revision.number},
                messages.INFO,
            )
            return HttpResponseRedirect(reverse("admin:config_backend_revision_changelist"))
        self.message_user(
            request,
            gettext("Rolled back to revision %(number)s, as revision %(made)s.")
            % {"number": revision.number, "made": result.revision},
            messages.SUCCESS,
        )
        made = Revision.objects.get(number=result.revision)
        return HttpResponseRedirect(reverse("admin:config_backend_revision_change", args=[made.pk]))
