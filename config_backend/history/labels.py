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

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from config_backend.history.selectors import newest_history_revision
from config_backend.history.states import UnknownRevision
from core import store
from core.api.permissions import MOVE_LABEL, MOVE_PROTECTED_LABEL
from core.changes import MESSAGE_MAX_LENGTH
from core.models import LIVE, ConfigRevision, Label, LabelMove, Revision, validate_label_name
from core.reads.points import MalformedPoint, parse_revision
from webhooks.outbox import label_moved


class UnknownLabel(LookupError):
    """No label of this name."""

    def __init__(self, name: str):
        super().__init__(f"No label named “{name}”.")
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
        raise ValidationError({"revision": [f"A revision number or `{LIVE}`."]})
    if not Revision.objects.filter(number=number).exists():
        raise UnknownRevision(number)
    return number


# --- writes --------------------------------------------------------------------------------------


def label_move(*, name: str, revision, message: str = "", author: str) -> tuple[Label, bool]:
    """Create or move the label `name` to `revision` (a number or `live`); returns (label,
    created). One transaction: the label's move counter is bumped first (its row lock
    serializes moves of this label; its mirror is raised before the commit: module
    docstring), then the Label and its LabelMove are written. At the commit, subscribers of
    core.store.CHANGES_CHANNEL hear `label:<name>` (the events stream)."""
    checked_name(name)
    target = label_target(revision)
    with transaction.atomic():
        store.bump_revision(ConfigRevision.for_label(name))
        label = Label.objects.filter(name=name).first()
        created = label is None
        previous = None if created else label.revision
        if created:
            label = Label.objects.create(name=name, revision=target)
        else:
            label.revision = target
            label.save(update_fields=["revision", "updated_at"])
        move = LabelMove.objects.create(
            label=name,
            from_revision=previous,
            to_revision=target,
            author=author[:255],
            message=(message or "").strip()[:MESSAGE_MAX_LENGTH],
        )
        label_moved(move)  # the webhooks' outbox: committed with the move, or not at all
        transaction.on_commit(lambda: announce_label_move(name))
    return label, created


# --- BEGIN c-approvals stand-in: LabelChange and change_label ----------------------------------
# The minimal interface the approvals layer (config_backend.history.approvals) is written
# against; issue 22's rollout branch (c-rollout) brings the real one, which replaces this block
# whole at the merge (rollout, promote, abort). Here only "move" is handled.


@dataclass(frozen=True)
class LabelChange:
    """One change to a label: `action` "move" | "rollout" | "promote" | "abort", `revision` the
    base target (already resolved by label_target), `rollout` {"revision", "percent", "users"}."""

    action: str
    revision: int | None = None
    rollout: dict | None = None


def change_label(name: str, change: LabelChange, *, author: str, message: str = "") -> Label:
    """Apply `change` to the label `name` (the one service every entry point reaches)."""
    if change.action != "move":
        raise ValidationError({"action": [f"Unknown label change “{change.action}”."]})
    label, _ = label_move(name=name, revision=change.revision, message=message, author=author)
    return label


# --- END c-approvals stand-in --------------------------------------------------------------------


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


def label_history(name: str) -> QuerySet[LabelMove]:
    """Every move of the label, newest first; raises UnknownLabel."""
    label_get(name)
    return LabelMove.objects.filter(label=name).order_by("-id")
