"""Four-eyes approvals of protected labels (docs/contract.md "Releases"; docs/approvals.md).

With settings.LABEL_APPROVALS = N > 0, every change to a protected label (a move, a rollout, a
promote, an abort; from the API, the admin or `config_label`) becomes a LabelRequest instead:
nothing moves until N staff users with `approve_label_move`, none of them the requester, have
approved it. The N-th approval applies the change through labels.change_label, in the
approval's transaction.

Locks (the argument in docs/approvals.md): every write of a request (approve, reject, cancel,
expire) holds the request's row lock (SELECT … FOR UPDATE) from its first read to its commit,
so two of them on one request run one after the other and the second sees what the first did.
An approval then takes the label's move counter row lock (labels.py: every change of the label
takes it first, and bumps the counter) and compares the counter with the one the request was
made at: moved means the label changed since (a direct change, another request applied), and
the request is `stale`. The order is always request row, then counter row; a direct change
takes only the counter row: no two of them wait for each other in a cycle.

Expiry is lazy: a request past its `expires_at` is `expired` from the first write that locks
it (an approval then answers 409) or the first read of the requests (expire_due_requests,
which locks the due rows, skipping those a writer holds: that writer decides them).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config_backend.history.labels import (
    LabelChange,
    change_label,
    checked_change,
    checked_name,
    is_protected,
)
from config_backend.history.selectors import change_json, diff
from core.api.permissions import APPROVE_LABEL_MOVE
from core.changes import MESSAGE_MAX_LENGTH
from core.models import (
    APIKey,
    ConfigRevision,
    Label,
    LabelApproval,
    LabelMove,
    LabelRequest,
    rollout_object,
)
from webhooks.outbox import label_request_changed

Status = LabelRequest.Status


# --- refusals (the API's status codes: core.api.errors would not know them) ----------------------


class RequestRefused(Exception):
    """A request write refused; `status_code` is the API's answer. Nothing was changed, except
    for a request found expired or stale: its status is committed, then this is raised."""

    status_code = 409

    def __init__(self, message: str):
        super().__init__(str(message))
        self.message = str(message)


class NotAllowed(RequestRefused):
    status_code = 403


class UnknownRequest(RequestRefused):
    status_code = 404

    def __init__(self, request_id):
        super().__init__(_("No label request %(id)s.") % {"id": request_id})


class RequestClosed(RequestRefused):
    """Not pending any more (approved, rejected, cancelled, stale, expired)."""


class AlreadyApproved(RequestRefused):
    pass


class RequestStale(RequestRefused):
    """The label changed between the request and this approval: the request is now stale."""


# --- who asks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requester:
    """Who asks for a change: a staff user, an API key, or whoever runs a command."""

    kind: str
    name: str
    user: object = None
    key: APIKey | None = None

    @classmethod
    def of_request(cls, request) -> "Requester":
        """The API key or the staff user of a DRF or admin request."""
        auth = getattr(request, "auth", None)
        if isinstance(auth, APIKey):
            # A key checked from its cached record is an unsaved stand-in (core.api.keys):
            # the row, by its unique prefix.
            key = auth if auth.pk else APIKey.objects.filter(prefix=auth.prefix).first()
            return cls(LabelRequest.RequesterKind.API_KEY, auth.name, key=key)
        return cls.of_user(request.user)

    @classmethod
    def of_user(cls, user) -> "Requester":
        return cls(LabelRequest.RequesterKind.USER, user.get_username(), user=user)

    @classmethod
    def of_command(cls, author: str) -> "Requester":
        return cls(LabelRequest.RequesterKind.COMMAND, author)

    def made(self, label_request: LabelRequest) -> bool:
        """Whether this is who made `label_request`."""
        if self.user is not None:
            return label_request.requester_user_id == self.user.pk
        if self.kind == LabelRequest.RequesterKind.API_KEY:
            return self.key is not None and label_request.requester_key_id == self.key.pk
        return False


def approvals_needed(name: str) -> int:
    """How many approvals a change to the label `name` needs (0: it is made at once)."""
    return settings.LABEL_APPROVALS if is_protected(name) else 0


def may_approve(user) -> bool:
    """A staff user who may approve or reject requests (of others: approve_request checks)."""
    return bool(
        user and user.is_authenticated and user.is_active and user.is_staff
    ) and user.has_perm(APPROVE_LABEL_MOVE)


# --- writes --------------------------------------------------------------------------------------


def request_or_change_label(
    name: str, change: LabelChange, *, author: str, message: str = "", requester: Requester
) -> Label | LabelRequest:
    """The one way in for every entry point: change the label now (change_label), or, when the
    label needs approvals, make a request for the change and return it (nothing moves)."""
    checked_name(name)
    needed = approvals_needed(name)
    if needed == 0:
        return change_label(name, change, author=author, message=message)
    return label_request_create(name, change, message=message, requester=requester, needed=needed)


def label_request_create(
    name: str, change: LabelChange, *, message: str, requester: Requester, needed: int
) -> LabelRequest:
    """A pending request for `change`, with the diff readers would see and the label's move
    counter now (read before the label: a change committed in between makes it stale). The
    change is checked first by change_label's own rules (labels.checked_change): one the label
    refuses now is refused now (400/404/409 as a direct change), no request is made."""
    counter = (
        ConfigRevision.objects.filter(name=ConfigRevision.for_label(name))
        .values_list("value", flat=True)
        .first()
    ) or 0
    label = Label.objects.filter(name=name).first()
    after = checked_change(name, change)
    with transaction.atomic():
        label_request = LabelRequest.objects.create(
            label=name,
            change=stored_change(change, after.rollout_asked),
            changes=change_diff(label, after, change.action),
            from_revision=None if label is None else label.revision,
            label_counter=counter,
            message=(message or "").strip()[:MESSAGE_MAX_LENGTH],
            requester=requester.name[:255],
            requester_kind=requester.kind,
            requester_user=requester.user,
            requester_key=requester.key,
            needed=needed,
            expires_at=timezone.now() + timedelta(seconds=settings.LABEL_REQUEST_TTL),
        )
        label_request_changed(request_json(label_request))
    return label_request


def stored_change(change: LabelChange, rollout: dict | None) -> dict:
    """`change` as the request keeps it (JSON; LabelChange(**it) at the approval): the rollout
    checked (`rollout`: labels.checked_rollout's, its `live` resolved to a number, so the
    approval applies the revision that was reviewed), the percent a JSON number."""
    if rollout is not None:
        shown = rollout_object("", rollout["revision"], rollout["percent"], rollout["users"])
        rollout = {key: shown[key] for key in ("revision", "percent", "users")}
    return {"action": change.action, "revision": change.revision, "rollout": rollout}


def change_diff(label: Label | None, after: Label, action: str) -> list[dict]:
    """What the users whose config the change changes would read differently, cut as the diff
    API cuts it: from the base to the revision the change brings them (a rollout: its
    candidate; a promote: the candidate, now the base; a move: the new base), or, when it
    ends a rollout (an abort, a rollout cleared), from the candidate back to the base. Empty
    for a label that does not exist yet (nothing to diff from)."""
    if label is None:
        return []
    source, target = label.revision, after.revision
    if action == LabelMove.Action.ROLLOUT and after.candidate_revision is not None:
        target = after.candidate_revision
    elif (
        action != LabelMove.Action.PROMOTE
        and label.candidate_revision is not None
        and after.candidate_revision is None
    ):
        source = label.candidate_revision
    return [change_json(one, full=False) for one in diff(source, target).changes]


def approve_request(request_id, *, user) -> LabelRequest:
    """Add `user`'s approval; at the N-th, apply the change (module docstring: the locks).
    Raises NotAllowed, UnknownRequest, RequestClosed (expired too), AlreadyApproved,
    RequestStale; and change_label's own errors (then nothing at all is written)."""
    if not may_approve(user):
        raise NotAllowed(
            _("Approving needs a staff user with the `%(permission)s` permission.")
            % {"permission": APPROVE_LABEL_MOVE}
        )
    refusal = None
    with transaction.atomic():
        label_request = _locked(request_id)
        if Requester.of_user(user).made(label_request):
            raise NotAllowed(_("You made this request: another person must approve it."))
        refusal = _closed_or_expired(label_request, "approved")
        if refusal is None:
            if label_request.approvals.filter(user=user).exists():
                raise AlreadyApproved(
                    _("You already approved request %(id)s.") % {"id": label_request.id}
                )
            refusal = _stale(label_request, by=user.get_username())
        if refusal is None:
            LabelApproval.objects.create(
                request=label_request, user=user, username=user.get_username()
            )
            if label_request.approvals.count() >= label_request.needed:
                _apply(label_request)
                _decide(label_request, Status.APPROVED, by=user.get_username())
            else:
                label_request_changed(request_json(label_request))
    if refusal is not None:
        raise refusal
    return label_request


def reject_request(request_id, *, user) -> LabelRequest:
    """An approver turns the request down; it stays rejected."""
    if not may_approve(user):
        raise NotAllowed(
            _("Rejecting needs a staff user with the `%(permission)s` permission.")
            % {"permission": APPROVE_LABEL_MOVE}
        )
    refusal = None
    with transaction.atomic():
        label_request = _locked(request_id)
        if Requester.of_user(user).made(label_request):
            raise NotAllowed(_("You made this request: cancel it instead."))
        refusal = _closed_or_expired(label_request, "rejected")
        if refusal is None:
            _decide(label_request, Status.REJECTED, by=user.get_username())
    if refusal is not None:
        raise refusal
    return label_request


def cancel_request(request_id, *, requester: Requester) -> LabelRequest:
    """The requester (the same staff user or API key) withdraws the request."""
    refusal = None
    with transaction.atomic():
        label_request = _locked(request_id)
        if not requester.made(label_request):
            raise NotAllowed(_("Only who made a request may cancel it."))
        refusal = _closed_or_expired(label_request, "cancelled")
        if refusal is None:
            _decide(label_request, Status.CANCELLED, by=requester.name)
    if refusal is not None:
        raise refusal
    return label_request


def expire_due_requests(now: datetime | None = None) -> int:
    """Mark the pending requests past their `expires_at` expired; returns how many. Each under
    its row lock; rows a writer holds are skipped (it decides them: _closed_or_expired)."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            LabelRequest.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PENDING, expires_at__lte=now)
            .order_by("id")
        )
        for label_request in due:
            _decide(label_request, Status.EXPIRED, by="")
    return len(due)


def _locked(request_id) -> LabelRequest:
    try:
        return LabelRequest.objects.select_for_update().get(pk=int(request_id))
    except (LabelRequest.DoesNotExist, ValueError, TypeError, OverflowError):
        raise UnknownRequest(request_id) from None


# What refusing a request that is no longer pending says, by what was asked.
CLOSED_MESSAGES = {
    "approved": gettext_lazy(
        "Request %(id)s is %(status)s: only a pending request can be approved."
    ),
    "rejected": gettext_lazy(
        "Request %(id)s is %(status)s: only a pending request can be rejected."
    ),
    "cancelled": gettext_lazy(
        "Request %(id)s is %(status)s: only a pending request can be cancelled."
    ),
}


def _closed_or_expired(label_request: LabelRequest, verb: str) -> RequestRefused | None:
    """Why the (locked) request can no longer be `verb`: not pending, or past its expiry (then
    marked expired here, committed with the caller's transaction)."""
    if label_request.status == Status.PENDING and label_request.expires_at <= timezone.now():
        _decide(label_request, Status.EXPIRED, by="")
    if label_request.status != Status.PENDING:
        return RequestClosed(
            CLOSED_MESSAGES[verb] % {"id": label_request.id, "status": label_request.status}
        )
    return None


def _stale(label_request: LabelRequest, *, by: str) -> RequestStale | None:
    """Lock the label's move counter (until the commit) and compare it with the request's:
    moved, the label changed since the request, which becomes stale."""
    if locked_move_counter(label_request.label) == label_request.label_counter:
        return None
    _decide(label_request, Status.STALE, by=by)
    return RequestStale(
        _(
            "Label “%(label)s” changed since request %(id)s was made: the request is stale "
            "and nothing was changed. Make a new request."
        )
        % {"label": label_request.label, "id": label_request.id}
    )


def locked_move_counter(name: str) -> int:
    """The label's move counter, its row locked until the transaction ends. The row is made
    (at 0, what a missing row means) if missing, so that a label's first creation has a row to
    lock as well."""
    key = ConfigRevision.for_label(name)
    table = ConfigRevision._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (name, value) VALUES (%s, 0) "  # noqa: S608
            "ON CONFLICT (name) DO NOTHING",
            [key],
        )
    return ConfigRevision.objects.select_for_update().get(name=key).value


def _apply(label_request: LabelRequest) -> None:
    approvers = ", ".join(label_request.approvals.values_list("username", flat=True))
    note = f"request {label_request.id}, approved by {approvers}"
    message = f"{label_request.message} ({note})" if label_request.message else note.capitalize()
    change_label(
        label_request.label,
        LabelChange(**label_request.change),
        author=label_request.requester,
        message=message,
    )


def _decide(label_request: LabelRequest, status: str, *, by: str) -> None:
    label_request.status = status
    label_request.decided_by = by[:255]
    label_request.decided_at = timezone.now()
    label_request.save(update_fields=["status", "decided_by", "decided_at", "updated_at"])
    label_request_changed(request_json(label_request))


# --- reads ---------------------------------------------------------------------------------------


def label_request_list(*, status: str | None = None) -> QuerySet[LabelRequest]:
    """Newest first, each with its approvals; expired ones marked first."""
    expire_due_requests()
    requests = LabelRequest.objects.prefetch_related("approvals").order_by("-id")
    return requests if status is None else requests.filter(status=status)


def pending_label_requests(name: str) -> QuerySet[LabelRequest]:
    """The label's requests still waiting, oldest first (expired ones marked first)."""
    expire_due_requests()
    return LabelRequest.objects.filter(label=name, status=Status.PENDING).order_by("id")


def label_request_get(request_id) -> LabelRequest:
    """One request (expired ones marked first); raises UnknownRequest."""
    expire_due_requests()
    try:
        return LabelRequest.objects.prefetch_related("approvals").get(pk=int(request_id))
    except (LabelRequest.DoesNotExist, ValueError, TypeError, OverflowError):
        raise UnknownRequest(request_id) from None


def request_json(label_request: LabelRequest) -> dict:
    """A request as the API shows it and webhooks send it: the one shape."""
    approvals = list(label_request.approvals.all())
    return {
        "id": label_request.id,
        "label": label_request.label,
        "status": label_request.status,
        "approvals": len(approvals),
        "needed": label_request.needed,
        "changes": label_request.changes,
        "change": label_request.change,
        "from_revision": label_request.from_revision,
        "message": label_request.message,
        "requester": {"name": label_request.requester, "kind": label_request.requester_kind},
        "approved_by": [
            {"user": approval.username, "at": _timestamp(approval.created_at)}
            for approval in approvals
        ],
        "created_at": _timestamp(label_request.created_at),
        "expires_at": _timestamp(label_request.expires_at),
        "decided_by": label_request.decided_by or None,
        "decided_at": _timestamp(label_request.decided_at),
    }


def _timestamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
