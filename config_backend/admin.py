"""The admin's pages of the configuration's history (docs/contract.md "Revisions, history, labels,
diff, rollback"): Revisions, read-only, with the rollback to one of them; Labels, each moved after a
preview of what the move changes. Both writes show the diff first and ask for confirmation;
config_backend.history's services make them (these views check permissions and ask).

Who may do what (checked on every request, GET and POST, so a forged POST is refused with a
403 like a page the user cannot open):
- Revisions: `view_revision` to read; nobody adds, changes or deletes one.
- Rollback (with or without prune): the API's rule for staff, ROLLBACK_PERMISSIONS: add,
  change and delete on assistants, tools and tool links (every permission an import uses).
- Labels: `view_label` to read; `move_label` to create or move one, set its rollout, promote or
  abort it, and also `move_protected_label` for one in PROTECTED_LABELS.
"""

import functools

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import PAGE_VAR
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import format_lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config_backend.admin_requests import requested  # and the Label requests page
from config_backend.history.approvals import (
    Requester,
    pending_label_requests,
    request_or_change_label,
)
from config_backend.history.labels import (
    LabelChange,
    NoRollout,
    checked_change,
    checked_name,
    checked_rollout,
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
from core.admin.history import ReadOnlyAdmin, field_page, shown_change
from core.api.permissions import MOVE_LABEL
from core.models import LIVE, Label, LabelRequest, Revision
from outcomes.selectors import label_comparison_context

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
        changes, page = _shown_changes(revision.changes.order_by("id"), request, revision)
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
            **_diff_context(diff(None, revision.number)),
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


class LabelTargetForm(forms.Form):
    """Where to move a label: a revision number or `live`, and why."""

    target = forms.CharField(
        label=_("Move to"),
        max_length=20,
        help_text=format_lazy(
            _("A revision number, or “{live}” for the current config."), live=LIVE
        ),
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


class LabelCreateForm(LabelTargetForm):
    """A new label: its name, the revision it points at, why."""

    name = forms.CharField(
        label=_("Name"),
        max_length=Label._meta.get_field("name").max_length,
        help_text=_("A lower-case letter, then up to 31 lower-case letters, digits or dashes."),
    )
    field_order = ["name", "target", "change_note"]

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        try:
            checked_name(name)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["name"]) from None
        if Label.objects.filter(name=name).exists():
            raise ValidationError(
                gettext("Label %(name)s exists: move it instead.") % {"name": name}
            )
        return name


class LabelRolloutForm(forms.Form):
    """A label's rollout: the candidate revision, the share of users, the listed users, why."""

    candidate = forms.CharField(
        label=_("Candidate revision"),
        max_length=20,
        help_text=_("A revision number, or “live” for the current config."),
    )
    percent = forms.DecimalField(
        label=_("Percent of users"),
        min_value=0,
        max_value=100,
        decimal_places=2,
        help_text=_("0 to 100, two decimals at most; raising it keeps every user already on it."),
    )
    users = forms.CharField(
        label=_("Listed users"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("User ids always on the candidate, one per line (at most 1,000)."),
    )
    change_note = change_note_field()

    def clean(self):
        """The rollout as change_label takes it, checked by the same rule as the API's."""
        data = super().clean()
        if self.errors:
            return data
        users = [line.strip() for line in data.get("users", "").splitlines() if line.strip()]
        try:
            data["rollout"] = checked_rollout(
                {"revision": data["candidate"], "percent": data["percent"], "users": users}
            )
        except ValidationError as exc:
            fields = {"rollout.revision": "candidate", "rollout.users": "users"}
            for field, problems in exc.message_dict.items():
                self.add_error(fields.get(field, "percent"), problems)
        except UnknownRevision as exc:
            self.add_error("candidate", str(exc))
        return data


def apply_label_change(
    request, label: Label, change: LabelChange, note: str
) -> Label | LabelRequest:
    """Every label change the admin makes (a move, a rollout, a promote, an abort), as its
    user: made, or, for a protected label under LABEL_APPROVALS, a request (nothing moves)."""
    return request_or_change_label(
        label.name,
        change,
        author=request.user.get_username(),
        message=note,
        requester=Requester.of_user(request.user),
    )


@admin.register(Label)
class LabelAdmin(ReadOnlyAdmin):
    list_display_links = ["name"]

    def get_list_display(self, request):
        @admin.display(description="")
        def move(obj):
            if not may_move_label(request.user, obj.name):
                return ""
            url = reverse("admin:config_backend_label_move", args=[obj.pk])
            return format_html('<a class="button" href="{}">{}</a>', url, gettext("Move"))

        return ["name", "revision", "candidate", "percent", "updated_at", "protected", move]

    def has_add_permission(self, request):
        return (
            request.user.is_active and request.user.is_staff and request.user.has_perm(MOVE_LABEL)
        )

    @admin.display(description=_("candidate"))
    def candidate(self, obj):
        return obj.candidate_revision if obj.candidate_revision is not None else "—"

    @admin.display(description=_("percent"))
    def percent(self, obj):
        return f"{obj.rollout_percent} %" if obj.candidate_revision is not None else "—"

    @admin.display(boolean=True, description=_("protected"))
    def protected(self, obj):
        return is_protected(obj.name)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/move/",
                self.admin_site.admin_view(self.move_view),
                name="config_backend_label_move",
            ),
            *(
                path(
                    f"<path:object_id>/{step}/",
                    self.admin_site.admin_view(functools.partial(self.rollout_step_view, step)),
                    name=f"config_backend_label_{step}",
                )
                for step in ("rollout", "promote", "abort")
            ),
            *super().get_urls(),
        ]

    @of_one_viewable_row
    def change_view(self, request, label, form_url="", extra_context=None):
        return self._page(
            request,
            "admin/history/label_detail.html",
            gettext("Label %(name)s") % {"name": label.name},
            label=label,
            original=label,
            protected=is_protected(label.name),
            moves=label_history(label.name)[:100],
            may_move=may_move_label(request.user, label.name),
            pending_requests=pending_label_requests(label.name),  # approvals (issue 22)
            **label_comparison_context(label=label.name, days=request.GET.get("days")),
        )

    def rollout_step_view(self, step: str, request, object_id):
        return of_one_viewable_row(LabelAdmin._rollout_step)(self, request, object_id, step)

    def _rollout_step(self, request, label, step: str):
        """Set or change the rollout (the form, then the diff base → candidate and a
        confirmation), promote it (the same diff, confirmed) or abort it (confirmed)."""
        if not may_move_label(request.user, label.name):
            raise PermissionDenied
        post = request.POST if request.method == "POST" else None
        context = {"label": label, "original": label, "step": step}
        if step == "rollout":
            initial = {}
            if label.candidate_revision is not None:
                initial = {
                    "candidate": label.candidate_revision,
                    "percent": label.rollout_percent,
                    "users": "\n".join(label.rollout_users),
                }
            form = LabelRolloutForm(post, initial=initial)
            context["form"] = form
            if not form.is_valid():
                title = gettext("Roll out a revision of label %(name)s") % {"name": label.name}
                return self._page(request, "admin/history/label_rollout.html", title, **context)
            rollout, note = form.cleaned_data["rollout"], form.cleaned_data["change_note"]
            change, candidate = LabelChange("rollout", None, rollout), rollout["revision"]
            try:
                checked_change(label.name, change)
            except ValidationError as exc:
                form.add_error("candidate", exc.messages)
                title = gettext("Roll out a revision of label %(name)s") % {"name": label.name}
                return self._page(request, "admin/history/label_rollout.html", title, **context)
        else:
            if label.candidate_revision is None:
                self.message_user(
                    request,
                    gettext("Label %(name)s has no rollout.") % {"name": label.name},
                    messages.ERROR,
                )
                return HttpResponseRedirect(
                    reverse("admin:config_backend_label_change", args=[label.pk])
                )
            change, candidate = LabelChange(step), label.candidate_revision
            note = post.get("change_note", "") if post else ""
        if post is not None and "confirm" in post:
            try:
                changed = apply_label_change(request, label, change, note)
            except (ValidationError, NoRollout, UnknownRevision) as exc:
                problems = getattr(exc, "messages", [str(exc)])
                self.message_user(request, " ".join(problems), messages.ERROR)
            else:
                if isinstance(changed, LabelRequest):
                    return requested(self, request, changed)
                done = {
                    "rollout": gettext(
                        "Label %(name)s: revision %(candidate)s for %(percent)s %% of users."
                    ),
                    "promote": gettext("Label %(name)s promoted to revision %(candidate)s."),
                    "abort": gettext("Label %(name)s: rollout aborted, revision %(base)s for all."),
                }[step] % {
                    "name": changed.name,
                    "candidate": candidate,
                    "percent": change.rollout["percent"] if change.rollout else "",
                    "base": changed.revision,
                }
                self.message_user(request, done, messages.SUCCESS)
            return HttpResponseRedirect(
                reverse("admin:config_backend_label_change", args=[label.pk])
            )
        context.update(candidate=candidate, note=note, confirming=True)
        if step != "abort":
            context.update(**_diff_context(diff(label.revision, candidate)))
        title = {
            "rollout": gettext("Roll out revision %(candidate)s of label %(name)s?"),
            "promote": gettext("Promote label %(name)s to revision %(candidate)s?"),
            "abort": gettext("Abort the rollout of label %(name)s?"),
        }[step] % {"name": label.name, "candidate": candidate}
        return self._page(request, "admin/history/label_rollout.html", title, **context)

    def add_view(self, request, form_url="", extra_context=None):
        """Create a label: its name and revision, then a confirmation, then the label (or, for a
        protected name under LABEL_APPROVALS, a request). The permissions are a move's."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = LabelCreateForm(request.POST if request.method == "POST" else None)
        context = {"form": form, "original": gettext("Add label")}
        if form.is_valid():
            name, target = form.cleaned_data["name"], form.cleaned_data["target"]
            missing = missing_move_permissions(request.user, name)
            if missing:
                form.add_error(
                    "name",
                    gettext(
                        "Label %(name)s is protected: it needs the `%(permission)s` permission."
                    )
                    % {"name": name, "permission": missing[0]},
                )
            elif "confirm" in request.POST:
                change, note = LabelChange("move", target), form.cleaned_data["change_note"]
                outcome = apply_label_change(request, Label(name=name), change, note)
                if isinstance(outcome, LabelRequest):
                    return requested(self, request, outcome)
                self.message_user(
                    request,
                    gettext("Label %(name)s created at revision %(target)s.")
                    % {"name": name, "target": target},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:config_backend_label_change", args=[outcome.pk])
                )
            else:
                revision = Revision.objects.get(number=target)
                context.update(name=name, target=target, revision=revision)
                title = gettext("Create label %(name)s at revision %(target)s?") % {
                    "name": name,
                    "target": target,
                }
                return self._page(request, "admin/history/label_create.html", title, **context)
        return self._page(
            request, "admin/history/label_create.html", gettext("Add label"), **context
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
                change, note = LabelChange("move", target), form.cleaned_data["change_note"]
                try:
                    outcome = apply_label_change(request, label, change, note)
                except ValidationError as exc:  # onto the rollout's candidate: promote instead
                    self.message_user(request, " ".join(exc.messages), messages.ERROR)
                    return HttpResponseRedirect(
                        reverse("admin:config_backend_label_change", args=[label.pk])
                    )
                if isinstance(outcome, LabelRequest):
                    return requested(self, request, outcome)
                self.message_user(
                    request,
                    gettext("Label %(name)s moved to revision %(target)s.")
                    % {"name": label.name, "target": target},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:config_backend_label_changelist"))
            context.update(target=target, **_diff_context(diff(label.revision, target)))
            title = gettext("Move label %(name)s to revision %(target)s?") % {
                "name": label.name,
                "target": target,
            }
        else:
            title = gettext("Move label %(name)s") % {"name": label.name}
        return self._page(request, "admin/history/label_move.html", title, **context)
