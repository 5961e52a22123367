"""The admin's pages of the configuration's history (docs/contract.md "Revisions, history, labels,
diff, rollback"): Revisions, read-only, with the rollback to one of them; Labels, each moved after a
preview of what the move changes. Both writes show the diff first and ask for confirmation;
config_backend.history's services make them (these views check permissions and ask).

Who may do what (checked on every request, GET and POST, so a forged POST is refused with a
403 like a page the user cannot open):
- Revisions: `view_revision` to read; nobody adds, changes or deletes one.
- Rollback (with or without prune): the API's rule for staff, ROLLBACK_PERMISSIONS: add,
  change and delete on assistants, tools and tool links (every permission an import uses).
- Labels: `view_label` to read; `move_label` to move one, and also `move_protected_label` for
  one in PROTECTED_LABELS.
"""

import functools

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import PAGE_VAR
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from config_backend.admin_requests import requested  # and the Label requests page
from config_backend.history.approvals import (
    Requester,
    pending_label_requests,
    request_or_change_label,
)
from config_backend.history.labels import (
    LabelChange,
    is_protected,
    label_history,
    label_target,
    missing_move_permissions,
)
from config_backend.history.selectors import diff, revision_list
from config_backend.history.services import (
    RollbackRefused,
    missing_rollback_permissions,
    rollback,
)
from config_backend.history.states import UnknownRevision
from core.admin.actions import change_note_field
from core.admin.history import field_page, shown_change
from core.models import LIVE, Label, LabelRequest, Revision

# Changes listed on a page of a revision; a diff shown before a confirmation lists at most
# as many (the confirmation is a POST form: no pages).
CHANGES_PAGE_SIZE = 200


def may_roll_back(user) -> bool:
    return user.is_active and user.is_staff and not missing_rollback_permissions(user)


def may_move_label(user, name: str) -> bool:
    """Whether this staff user may move the label `name` (the API's rule)."""
    return user.is_active and user.is_staff and not missing_move_permissions(user, name)


def _shown_changes(changes, request, revision) -> tuple[list, object]:
    """A page (?p=) of a revision's changes, as the history templates show them (a field cut
    there links to its own page), and the page."""
    page = Paginator(changes, CHANGES_PAGE_SIZE).get_page(request.GET.get(PAGE_VAR))

    def full_url(change, field):
        return reverse("admin:config_backend_revision_field", args=[revision.pk, change.pk, field])

    return [shown_change(change, full_url=full_url) for change in page.object_list], page


def _diff_context(difference) -> dict:
    """A diff as a confirmation page shows it: its first changes, and how many it has."""
    return {
        "difference": difference,
        "changes": [shown_change(change) for change in difference.changes[:CHANGES_PAGE_SIZE]],
        "change_count": len(difference.changes),
        "changes_not_shown": max(0, len(difference.changes) - CHANGES_PAGE_SIZE),
    }


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nobody adds, changes or deletes these rows here: the history's services write them."""

    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _page(self, request, template: str, title: str, **context):
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "title": title,
                "subtitle": None,
                "opts": self.opts,
                "page_var": PAGE_VAR,
                **context,
            },
        )


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
        label="Delete what was created since (prune)",
        help_text="Assistants and tools created after this revision are deleted, with their "
        "threads. Unchecked, they are kept.",
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

    @admin.display(description="note")
    def note(self, obj):
        return obj.message if len(obj.message) <= 80 else obj.message[:79] + "…"

    @admin.display(description="assistants", ordering="count_assistants")
    def assistants_changed(self, obj):
        return obj.count_assistants

    @admin.display(description="tools", ordering="count_tools")
    def tools_changed(self, obj):
        return obj.count_tools

    @admin.display(description="links", ordering="count_links")
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
        changes, page = _shown_changes(revision.changes.order_by("id"), request, revision)
        return self._page(
            request,
            "admin/history/revision_detail.html",
            f"Revision {revision.number}",
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
            raise Http404("No such change in this revision.")
        return field_page(
            request,
            self,
            change=change,
            field=field,
            title=f"{field} of {change.name}, revision {revision.number}",
        )

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
                    "Nothing was changed: the config at this revision breaks a rule against "
                    "today's data. " + " ".join(exc.reasons),
                    messages.ERROR,
                )
            else:
                return self._rolled_back(request, revision, result)
        return self._page(
            request,
            "admin/history/rollback_confirm.html",
            f"Roll back to revision {revision.number}?",
            revision=revision,
            original=revision,
            form=form,
            **_diff_context(diff(None, revision.number)),
        )

    def _rolled_back(self, request, revision, result):
        rows = result.deleted or result.kept
        if rows:
            names = ", ".join(f"{row['entity']} {row['name']}" for row in rows)
            verb = "deleted" if result.deleted else "kept (not pruned)"
            self.message_user(
                request, f"Created after revision {revision.number}, {verb}: {names}."
            )
        if result.revision is None:
            self.message_user(
                request,
                f"Nothing changed: the live config already is as at revision {revision.number}.",
                messages.INFO,
            )
            return HttpResponseRedirect(reverse("admin:config_backend_revision_changelist"))
        self.message_user(
            request,
            f"Rolled back to revision {revision.number}, as revision {result.revision}.",
            messages.SUCCESS,
        )
        made = Revision.objects.get(number=result.revision)
        return HttpResponseRedirect(reverse("admin:config_backend_revision_change", args=[made.pk]))


class LabelTargetForm(forms.Form):
    """Where to move a label: a revision number or `live`, and why."""

    target = forms.CharField(
        label="Move to",
        max_length=20,
        help_text=f"A revision number, or “{LIVE}” for the current config.",
    )
    change_note = change_note_field()

    def clean_target(self):
        try:
            return label_target(self.cleaned_data["target"])
        except ValidationError as exc:
            raise ValidationError(
                [message for messages_ in exc.message_dict.values() for message in messages_]
            ) from None
        except UnknownRevision as exc:
            raise ValidationError(str(exc)) from None


@admin.register(Label)
class LabelAdmin(ReadOnlyAdmin):
    list_display_links = ["name"]

    def get_list_display(self, request):
        @admin.display(description="")
        def move(obj):
            if not may_move_label(request.user, obj.name):
                return ""
            url = reverse("admin:config_backend_label_move", args=[obj.pk])
            return format_html('<a class="button" href="{}">Move</a>', url)

        return ["name", "revision", "updated_at", "protected", move]

    @admin.display(boolean=True, description="protected")
    def protected(self, obj):
        return is_protected(obj.name)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/move/",
                self.admin_site.admin_view(self.move_view),
                name="config_backend_label_move",
            ),
            *super().get_urls(),
        ]

    @of_one_viewable_row
    def change_view(self, request, label, form_url="", extra_context=None):
        return self._page(
            request,
            "admin/history/label_detail.html",
            f"Label {label.name}",
            label=label,
            original=label,
            protected=is_protected(label.name),
            moves=label_history(label.name)[:100],
            may_move=may_move_label(request.user, label.name),
            pending_requests=pending_label_requests(label.name),  # approvals (issue 22)
        )

    @of_one_viewable_row
    def move_view(self, request, label):
        """Step one: pick the target; step two: the diff from where the label points to the
        target, and a confirmation; then the move."""
        if not may_move_label(request.user, label.name):
            raise PermissionDenied
        form = LabelTargetForm(request.POST if request.method == "POST" else None)
        context = {"label": label, "original": label, "form": form}
        if form.is_valid():
            target = form.cleaned_data["target"]
            if "confirm" in request.POST:
                # A protected label under LABEL_APPROVALS: a request, nothing moves.
                outcome = request_or_change_label(
                    label.name,
                    LabelChange("move", revision=target),
                    message=form.cleaned_data["change_note"],
                    author=request.user.get_username(),
                    requester=Requester.of_user(request.user),
                )
                if isinstance(outcome, LabelRequest):
                    return requested(self, request, outcome)
                self.message_user(
                    request, f"Label {label.name} moved to revision {target}.", messages.SUCCESS
                )
                return HttpResponseRedirect(reverse("admin:config_backend_label_changelist"))
            context.update(target=target, **_diff_context(diff(label.revision, target)))
            title = f"Move label {label.name} to revision {target}?"
        else:
            title = f"Move label {label.name}"
        return self._page(request, "admin/history/label_move.html", title, **context)
