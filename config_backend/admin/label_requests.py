"""The admin's Label requests page (docs/approvals.md): the requests to change protected labels,
each with its diff, requester and approvals, and the buttons its viewer may use: approve and
reject for staff with `approve_label_move` who did not make it, cancel for who made it.

Every button is a POST to a view that asks config_backend.history.approvals, the API's rules:
a forged POST is refused there like a button that was not shown.
"""

from types import SimpleNamespace

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from config_backend.history.approvals import (
    Requester,
    RequestRefused,
    approve_request,
    cancel_request,
    label_request_list,
    may_approve,
    reject_request,
)
from core.admin.history import ReadOnlyAdmin, shown_change
from core.api.permissions import MOVE_PROTECTED_LABEL
from core.models import LabelRequest

# Requests one page shows; older ones are in the API (GET /api/v1/label-requests/).
REQUESTS_SHOWN = 100


def requested(model_admin, request, label_request: LabelRequest):
    """What the admin says after a change became a request: where it waits, and for what."""
    model_admin.message_user(
        request,
        ngettext(
            "Label %(label)s is protected: change request %(id)s was made; it needs "
            "%(needed)s approval by another person before anything moves.",
            "Label %(label)s is protected: change request %(id)s was made; it needs "
            "%(needed)s approvals by other people before anything moves.",
            label_request.needed,
        )
        % {"label": label_request.label, "id": label_request.id, "needed": label_request.needed},
        messages.WARNING,
    )
    return HttpResponseRedirect(reverse("admin:config_backend_labelrequest_changelist"))


def shown_request(label_request: LabelRequest, user) -> SimpleNamespace:
    """A request as the page shows it, with the buttons `user` may use."""
    viewer = Requester.of_user(user)
    pending = label_request.status == LabelRequest.Status.PENDING
    own = viewer.made(label_request)
    return SimpleNamespace(
        row=label_request,
        approvers=[approval.username for approval in label_request.approvals.all()],
        changes=[
            shown_change(
                SimpleNamespace(
                    entity=change["entity"],
                    object_id=change["id"],
                    name=change["name"],
                    action=change["action"],
                    fields=change["fields"],
                )
            )
            for change in label_request.changes
        ],
        may_decide=pending and not own and may_approve(user),
        may_cancel=pending and own,
    )


def _takes_part(user) -> bool:
    return may_approve(user) or (
        user.is_active and user.is_staff and user.has_perm(MOVE_PROTECTED_LABEL)
    )


@admin.register(LabelRequest)
class LabelRequestAdmin(ReadOnlyAdmin):
    """Nobody adds, changes or deletes a request here: the buttons call the approvals' services."""

    # Approvers, and those who may make requests (to follow and cancel theirs), see the page.
    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or _takes_part(request.user)

    def has_module_permission(self, request):
        return super().has_module_permission(request) or _takes_part(request.user)

    def get_urls(self):
        def decision(name, view):
            return path(
                f"<int:request_id>/{name}/",
                self.admin_site.admin_view(view),
                name=f"config_backend_labelrequest_{name}",
            )

        return [
            decision("approve", self.approve_view),
            decision("reject", self.reject_view),
            decision("cancel", self.cancel_view),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            return super().changelist_view(request, extra_context)  # its own refusal
        status = request.GET.get("status", LabelRequest.Status.PENDING)
        if status not in LabelRequest.Status.values:
            status = LabelRequest.Status.PENDING
        rows = label_request_list(status=status)[:REQUESTS_SHOWN]
        return self._page(
            request,
            "admin/history/label_requests.html",
            _("Label requests"),
            requests=[shown_request(row, request.user) for row in rows],
            status=status,
            statuses=LabelRequest.Status.choices,
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # One page for all: a request is a row of the list, with its diff.
        return HttpResponseRedirect(reverse("admin:config_backend_labelrequest_changelist"))

    def approve_view(self, request, request_id):
        return self._decide(
            request,
            lambda: approve_request(request_id, user=request.user),
            _("Request %(id)s approved (%(approvals)s of %(needed)s)."),
        )

    def reject_view(self, request, request_id):
        return self._decide(
            request,
            lambda: reject_request(request_id, user=request.user),
            _("Request %(id)s rejected."),
        )

    def cancel_view(self, request, request_id):
        return self._decide(
            request,
            lambda: cancel_request(request_id, requester=Requester.of_user(request.user)),
            _("Request %(id)s cancelled."),
        )

    def _decide(self, request, decide, done: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        try:
            label_request = decide()
        except RequestRefused as exc:
            if exc.status_code == 403:
                raise PermissionDenied(exc.message) from None
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(
                request,
                done
                % {
                    "id": label_request.id,
                    "approvals": label_request.approvals.count(),
                    "needed": label_request.needed,
                },
                messages.SUCCESS,
            )
            if label_request.status == LabelRequest.Status.APPROVED:
                self.message_user(
                    request,
                    _("Label %(label)s changed as requested.") % {"label": label_request.label},
                    messages.SUCCESS,
                )
        return HttpResponseRedirect(reverse("admin:config_backend_labelrequest_changelist"))
