"""Labels: named pointers to revisions (docs/contract.md "Labels", "Reading a label").

The rules live here, once: a label's name (core.models.validate_label_name), which labels are
protected (settings.PROTECTED_LABELS), and what a label may point at (a revision the history
holds, or `live`: the newest revision when it moves).

Freshness of label reads is core.store's argument with one more counter: each label has a move
counter, the ConfigRevision row "label:<name>", bumped (and its cache mirror raised) inside the
move's transaction, before the commit. A cached label read is tagged with the counter read
before the label's row (core.reads.reads.LabelRead), so after a move commits no instance
serves the old target: the mirror moved first. The counter's row lock also serializes the
moves of one label, its creation included.

The ETag of a label read is a hash of the config without its `revision` fields
(core.reads.reads.content_etag): moving a label between two revisions where the config read
did not change keeps the ETag (a client's copy stays valid: a 304), moving it to content that
differs changes it. The move counter is not in it, nor the revision.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext

from config_backend.history.selectors import newest_history_revision
from config_backend.history.states import UnknownRevision
from core import store
from core.api.permissions import MOVE_LABEL, MOVE_PROTECTED_LABEL
from core.changes import MESSAGE_MAX_LENGTH
from core.models import (
    LIVE,
    ROLLOUT_MAX_USERS,
    USER_ID_MAX_LENGTH,
    ConfigRevision,
    Label,
    LabelMove,
    Revision,
    validate_label_name,
)
from core.reads.points import MalformedPoint, parse_revision
from webhooks.outbox import label_moved


class UnknownLabel(LookupError):
    """No label of this name."""

    def __init__(self, name: str):
        super().__init__(gettext("No label named “%(name)s”.") % {"name": name})
        self.name = name


def is_protected(name: str) -> bool:
    return name in settings.PROTECTED_LABELS


def missing_move_permissions(user, name: str) -> list[str]:
    """The permissions a staff user lacks to move the label `name` (none: they may). The API
    (label_api.LabelPermission) and the admin's pages ask this one rule."""
    needed = [MOVE_LABEL, *([MOVE_PROTECTED_LABEL] if is_protected(name) else [])]
    return [permission for permission in needed if not user.has_perm(permission)]


def checked_name(name: str) -> str:
    """`name` if it may name a label; else ValidationError naming the `name` field (400)."""
    try:
        validate_label_name(name)
    except ValidationError as exc:
        raise ValidationError({"name": exc.messages}) from None
    return name


def label_target(revision) -> int:
    """The revision a move points a label at: a number the history holds (else
    UnknownRevision, 404), or `live`: the newest revision now. Anything else is a
    ValidationError naming the `revision` field (400)."""
    if isinstance(revision, str) and revision.strip() == LIVE:
        number = newest_history_revision()
        if number == 0:
            raise UnknownRevision(LIVE)
        return number
    if isinstance(revision, bool):  # JSON true is no revision
        revision = None
    try:
        number = parse_revision(revision) if revision is not None else None
    except MalformedPoint:
        number = None
    if number is None:
        raise ValidationError(
            {"revision": [gettext("A revision number or `%(live)s`.") % {"live": LIVE}]}
        )
    if not Revision.objects.filter(number=number).exists():
        raise UnknownRevision(number)
    return number


# --- writes ---------------------------------------------------------------------------------------


class NoRollout(Exception):
    """A promote or an abort of a label with no rollout (409: the label's state, not the
    request, is the problem)."""

    def __init__(self, name: str, action: str):
        super().__init__(
            gettext("Label “%(name)s” has no rollout to %(action)s.")
            % {"name": name, "action": action}
        )
        self.name = name
        self.action = action


@dataclass(frozen=True)
class LabelChange:
    """One change of a label, as every entry point (API, admin, config_label, the approvals)
    asks for it:

    - `move`: the base to `revision`; an existing rollout is kept.
    - `rollout`: the base to `revision` (None: kept; a new label needs one) and the rollout set
      to `rollout` (`{"revision", "percent", "users"}`), or cleared when it is None.
    - `promote`: the base to the rollout's candidate, the rollout cleared.
    - `abort`: the rollout cleared, the base kept.

    `revision` is resolved already (label_target); `rollout` is checked by change_label
    (checked_rollout), its `revision` a number or `live` too.
    """

    action: str
    revision: int | None = None
    rollout: dict | None = None


def _percent(value) -> Decimal:
    """A rollout's percent: a number (or numeric string) from 0 to 100 with at most two
    decimals; else ValidationError naming `rollout.percent`."""
    problem = [gettext("A number from 0 to 100 with at most two decimals.")]
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValidationError({"rollout.percent": problem})
    try:
        percent = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationError({"rollout.percent": problem}) from None
    if not percent.is_finite() or not 0 <= percent <= 100 or percent != round(percent, 2):
        raise ValidationError({"rollout.percent": problem})
    return percent.quantize(Decimal("0.01"))


def _users(value) -> list[str]:
    """A rollout's allow-list: at most ROLLOUT_MAX_USERS non-empty strings (duplicates
    dropped, order kept); else ValidationError naming `rollout.users`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError({"rollout.users": [gettext("A list of user ids (strings).")]})
    if len(value) > ROLLOUT_MAX_USERS:
        raise ValidationError(
            {
                "rollout.users": [
                    gettext("At most %(most)s user ids; got %(got)s.")
                    % {"most": f"{ROLLOUT_MAX_USERS:,}", "got": f"{len(value):,}"}
                ]
            }
        )
    for user in value:
        if not isinstance(user, str) or not user or len(user) > USER_ID_MAX_LENGTH:
            raise ValidationError(
                {
                    "rollout.users": [
                        gettext(
                            "Each user id is a non-empty string of at most %(most)d characters."
                        )
                        % {"most": USER_ID_MAX_LENGTH}
                    ]
                }
            )
    return list(dict.fromkeys(value))


def checked_rollout(rollout) -> dict | None:
    """The rollout a change asks for, checked and normalized: `{"revision": n, "percent":
    Decimal, "users": [str]}` (None: no rollout). A malformed field is a ValidationError naming
    it (`rollout.percent`, …; 400), an unknown candidate revision UnknownRevision (404)."""
    if rollout is None:
        return None
    if not isinstance(rollout, Mapping):
        raise ValidationError(
            {"rollout": [gettext("null, or an object with revision, percent, users.")]}
        )
    # `id` is the label JSON's own (read-only): a client may send back what it read.
    unknown = sorted(set(rollout) - {"id", "revision", "percent", "users"})
    if unknown:
        raise ValidationError({f"rollout.{unknown[0]}": [gettext("Not a rollout field.")]})
    if "revision" not in rollout:
        raise ValidationError(
            {"rollout.revision": [gettext("The candidate revision is required.")]}
        )
    if "percent" not in rollout:
        raise ValidationError({"rollout.percent": [gettext("Required (0 to 100).")]})
    percent = _percent(rollout["percent"])
    users = _users(rollout.get("users"))
    try:
        candidate = label_target(rollout["revision"])
    except ValidationError as exc:
        raise ValidationError({"rollout.revision": exc.message_dict["revision"]}) from None
    return {"revision": candidate, "percent": percent, "users": users}


def change_label(name: str, change: LabelChange, *, author: str, message: str = "") -> Label:
    """Apply `change` to the label `name` (docs/contract.md "Labels", "Rollout on a label"):
    the one write of labels. Returns the label; `label.created` says whether this created it.

    One transaction: the label's move counter is bumped first (its row lock serializes the
    changes of this label, its creation included; its mirror is raised before the commit, so
    no instance serves the label's old base or rollout after it: module docstring), then the
    Label and its LabelMove (with the action and the rollout after the change) are written. At
    the commit, subscribers of core.store.CHANGES_CHANNEL hear `label:<name>` (the events
    stream). Bad input: ValidationError naming the field, UnknownRevision, NoRollout; nothing
    changes."""
    # Refused before the counter moves (a refusal would raise its mirror: misses until the
    # next change); checked again under the lock, against the row as it is then.
    rollout = checked_change(name, change).rollout_asked
    with transaction.atomic():
        store.bump_revision(ConfigRevision.for_label(name))
        label = Label.objects.filter(name=name).first()
        created = label is None
        previous = None if created else label.revision
        label = _changed(name, label, change, rollout)
        label.save()
        move = LabelMove.objects.create(
            label=name,
            action=change.action,
            from_revision=previous,
            to_revision=label.revision,
            candidate_revision=label.candidate_revision,
            percent=label.rollout_percent,
            rollout_id=label.rollout_id,
            rollout_users=label.rollout_users,
            author=author[:255],
            message=(message or "").strip()[:MESSAGE_MAX_LENGTH],
        )
        label_moved(move)  # the webhooks' outbox: committed with the move, or not at all
        transaction.on_commit(lambda: announce_label_move(name))
    label.created = created
    return label


def checked_change(name: str, change: LabelChange) -> Label:
    """The label `name` as `change` would leave it now, unsaved, or what change_label would
    raise: its rules, for a caller that must refuse a change before making it (a preview, a
    change request). `rollout_asked`: the change's rollout, checked (checked_rollout)."""
    checked_name(name)
    if change.action not in LabelMove.Action.values:
        raise ValidationError({"action": [f"One of {', '.join(LabelMove.Action.values)}."]})
    if change.action == LabelMove.Action.MOVE and change.revision is None:
        raise ValidationError({"revision": [f"A revision number or `{LIVE}`."]})
    rollout = checked_rollout(change.rollout) if change.action == "rollout" else None
    label = _changed(name, Label.objects.filter(name=name).first(), change, rollout)
    label.rollout_asked = rollout
    return label


def _changed(name: str, label: Label | None, change: LabelChange, rollout: dict | None) -> Label:
    """`label` (None: none yet) changed in place as `change` asks, unsaved (a new one if
    None); `rollout`: the change's, checked. Raises what change_label says for a change the
    label refuses."""
    action = change.action
    if label is None:
        if action in (LabelMove.Action.PROMOTE, LabelMove.Action.ABORT):
            raise UnknownLabel(name)
        if change.revision is None:
            raise ValidationError({"revision": [gettext("A new label needs a base revision.")]})
        label = Label(name=name, revision=change.revision)
    previous_candidate = label.candidate_revision
    if action in (LabelMove.Action.PROMOTE, LabelMove.Action.ABORT):
        if label.candidate_revision is None:
            raise NoRollout(name, action)
        if action == LabelMove.Action.PROMOTE:
            label.revision = label.candidate_revision
    elif change.revision is not None:
        label.revision = change.revision
    if action == LabelMove.Action.MOVE and label.candidate_revision is not None:
        rollout = {
            "revision": label.candidate_revision,
            "percent": label.rollout_percent,
            "users": label.rollout_users,
        }
    if rollout is not None and rollout["revision"] == label.revision:
        field = "revision" if action == LabelMove.Action.MOVE else "rollout.revision"
        raise ValidationError(
            {field: [gettext("The candidate revision is the base: promote the rollout instead.")]}
        )
    if rollout is None:
        label.candidate_revision, label.rollout_percent = None, None
        label.rollout_users, label.rollout_id = [], ""
    else:
        if rollout["revision"] != previous_candidate or not label.rollout_id:
            label.rollout_id = uuid.uuid4().hex[:16]
        label.candidate_revision = rollout["revision"]
        label.rollout_percent = rollout["percent"]
        label.rollout_users = rollout["users"]
    return label


def label_move(*, name: str, revision, message: str = "", author: str) -> tuple[Label, bool]:
    """Create or move the label `name` to `revision` (a number or `live`), keeping its rollout;
    returns (label, created). A `move` through change_label."""
    checked_name(name)
    label = change_label(
        name, LabelChange("move", label_target(revision)), author=author, message=message
    )
    return label, label.created


def announce_label_move(name: str) -> None:
    """Wake the events stream on every instance: it reads the new LabelMove rows."""
    store.try_cache(
        "announcing a label move",
        lambda s: s.publish(store.CHANGES_CHANNEL, f"{ConfigRevision.LABEL_PREFIX}{name}"),
    )


# --- reads ---------------------------------------------------------------------------------------


def label_list() -> QuerySet[Label]:
    return Label.objects.order_by("name")


def label_get(name: str) -> Label:
    """The label named `name`; raises UnknownLabel."""
    label = Label.objects.filter(name=name).first()
    if label is None:
        raise UnknownLabel(name)
    return label


def label_state(name: str) -> tuple[int, dict | None]:
    """What a label read serves (core.reads.reads.LabelRead): the label's base revision and
    its rollout (Label.rollout: None when it has none); raises UnknownLabel."""
    label = label_get(name)
    return label.revision, label.rollout


def label_history(name: str) -> QuerySet[LabelMove]:
    """Every move of the label, newest first; raises UnknownLabel."""
    label_get(name)
    return LabelMove.objects.filter(label=name).order_by("-id")
