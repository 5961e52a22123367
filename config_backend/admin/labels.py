"""The admin's Labels pages (docs/contract.md "Labels", "Releases"): a label created, moved, rolled
out, promoted or aborted, each after its diff and a confirmation, through the one label service
(config_backend.history.approvals.request_or_change_label: a protected label under
LABEL_APPROVALS gets a change request). Who may do what: config_backend/admin/__init__.py."""

import functools

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import format_lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config_backend.admin.label_requests import requested
from config_backend.admin.revisions import diff_context, of_one_viewable_row
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
from config_backend.history.selectors import diff
from config_backend.history.states import UnknownRevision
from core.admin.actions import change_note_field
from core.admin.history import ReadOnlyAdmin
from core.api.permissions import MOVE_LABEL
from core.models import LIVE, Label, LabelRequest, Revision
from outcomes.selectors import label_comparison_context


def may_move_label(user, name: str) -> bool:
    """Whether this staff user may move the label `name` (the API's rule)."""
    return user.is_active and user.is_staff and not missing_move_permissions(user, name)


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
            context.update(**diff_context(diff(label.revision, candidate)))
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
            context.update(target=target, **diff_context(diff(label.revision, target)))
            title = gettext("Move label %(name)s to revision %(target)s?") % {
                "name": label.name,
                "target": target,
            }
        else:
            title = gettext("Move label %(name)s") % {"name": label.name}
        return self._page(request, "admin/history/label_move.html", title, **context)
