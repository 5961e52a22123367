import re
import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey, APIKeyManager


class Timestamped(models.Model):
    """When a row was created and last saved: shown by the admin and the API, not part of the
    configuration (the models' CONFIG_FIELDS) nor of its history."""

    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(verbose_name=_("updated at"), auto_now=True)

    class Meta:
        abstract = True


class ConfigRevision(models.Model):
    """A counter that grows by one with every committed change of what it names.

    Rows: `config` (assistants, tools, links) and `api_keys`. Cached entries are tagged with
    the revision read before their database read, and served only while the revision (mirrored
    in the cache) is unchanged: a committed change makes every older entry unreachable on every
    app instance, without tracking which entry depends on which row.
    """

    CONFIG = "config"
    API_KEYS = "api_keys"
    # One row per assistant ("assistant:<id>"): the last revision that changed its resolved
    # config (docs/contract.md "Fine-grained freshness"); core.changes keeps them.
    ASSISTANT_PREFIX = "assistant:"
    # One row per label ("label:<name>"): its move counter, bumped by each move
    # (config_backend.history.labels).
    LABEL_PREFIX = "label:"
    # Moved by each restore of the database (config_backend.backup): open event streams are
    # reset when it moves (core.events).
    RESTORES = "restores"

    name = models.CharField(verbose_name=_("name"), max_length=64, primary_key=True)
    value = models.BigIntegerField(verbose_name=_("value"), default=0)

    def __str__(self):
        return f"{self.name} revision {self.value}"

    @classmethod
    def for_assistant(cls, assistant_id) -> str:
        return f"{cls.ASSISTANT_PREFIX}{assistant_id}"

    @classmethod
    def for_label(cls, name: str) -> str:
        return f"{cls.LABEL_PREFIX}{name}"


class Revision(models.Model):
    """One committed change set of the configuration: who, from where, why (docs/contract.md,
    "Revisions").

    `number` is the config revision the change set left the counter at (each row change moves
    the counter, so numbers grow but skip). `assistants` lists the assistants whose resolved
    config it changed (the `revision` event names them).
    """

    class Source(models.TextChoices):
        ADMIN = "admin"
        API = "api"
        IMPORT = "import"
        ROLLBACK = "rollback"
        COMMAND = "command"

    id = models.BigAutoField(primary_key=True)
    number = models.BigIntegerField(verbose_name=_("number"), unique=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)
    author = models.CharField(verbose_name=_("author"), max_length=255, blank=True)
    source = models.CharField(verbose_name=_("source"), max_length=10, choices=Source.choices)
    message = models.TextField(verbose_name=_("message"), blank=True)
    assistants = models.JSONField(verbose_name=_("assistants"), default=list)

    class Meta:
        verbose_name = _("revision")
        verbose_name_plural = _("revisions")
        ordering = ["-number"]

    def __str__(self):
        return f"revision {self.number}"


class RevisionChange(models.Model):
    """One row created, updated or deleted by a revision, with the old and new value of each
    field that changed (every field, for a row created or deleted).

    `object_id` is the row's id; a link's is "<assistant id>:<tool id>", which is what
    identifies it (one link per assistant and tool).
    """

    class Entity(models.TextChoices):
        ASSISTANT = "assistant"
        TOOL = "tool"
        LINK = "link"
        SNIPPET = "snippet"

    class Action(models.TextChoices):
        CREATED = "created"
        UPDATED = "updated"
        DELETED = "deleted"

    revision = models.ForeignKey(
        Revision, on_delete=models.CASCADE, related_name="changes", verbose_name=_("revision")
    )
    entity = models.CharField(verbose_name=_("entity"), max_length=10, choices=Entity.choices)
    object_id = models.CharField(verbose_name=_("object id"), max_length=80)
    name = models.CharField(verbose_name=_("name"), max_length=600)
    action = models.CharField(verbose_name=_("action"), max_length=10, choices=Action.choices)
    fields = models.JSONField(verbose_name=_("fields"), default=dict)

    class Meta:
        verbose_name = _("revision change")
        verbose_name_plural = _("revision changes")
        ordering = ["revision", "id"]
        indexes = [models.Index(fields=["entity", "object_id"])]

    def __str__(self):
        return f"{self.entity} {self.name} {self.action} in {self.revision_id}"


# `\A…\Z`, not `^…$`: `$` also matches before a final newline.
LABEL_NAME = re.compile(r"\A[a-z][a-z0-9-]{0,31}\Z")
# Always the current state; never a stored label (docs/contract.md "Labels").
LIVE = "live"


# A rollout's allow-list and the user ids of per-user reads (docs/contract.md "Rollout on a
# label"): at most this many users, each id at most this long.
ROLLOUT_MAX_USERS = 1000
USER_ID_MAX_LENGTH = 255


def validate_label_name(name: str) -> None:
    """A label name matches `^[a-z][a-z0-9-]{0,31}$` and is not `live` (docs/contract.md)."""
    if name == LIVE:
        raise ValidationError(_("`live` is reserved: it always means the current state."))
    if not LABEL_NAME.match(name):
        raise ValidationError(
            _(
                "A label name is a lowercase letter followed by at most 31 lowercase letters, "
                "digits or hyphens."
            )
        )


class Label(models.Model):
    """A named pointer to a revision (`production`, `staging`); moved by
    config_backend.history.labels."""

    name = models.CharField(
        verbose_name=_("name"), max_length=32, primary_key=True, validators=[validate_label_name]
    )
    # The base: what every user gets without a rollout.
    revision = models.BigIntegerField(verbose_name=_("revision"))
    # The rollout (docs/contract.md "Rollout on a label"): a candidate revision for a share of
    # users. None of these means something without `candidate_revision`.
    candidate_revision = models.BigIntegerField(
        verbose_name=_("candidate revision"), null=True, blank=True
    )
    rollout_percent = models.DecimalField(
        verbose_name=_("rollout percent"), max_digits=5, decimal_places=2, null=True, blank=True
    )
    rollout_users = models.JSONField(verbose_name=_("rollout users"), default=list, blank=True)
    # New (opaque) whenever the candidate revision changes, kept when only the percent or the
    # users do: the users' buckets hash it, so a percent change keeps everyone's bucket.
    rollout_id = models.CharField(verbose_name=_("rollout id"), max_length=32, blank=True)
    updated_at = models.DateTimeField(verbose_name=_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("label")
        verbose_name_plural = _("labels")
        ordering = ["name"]
        permissions = [
            ("move_label", "Can move labels"),
            ("move_protected_label", "Can move protected labels"),
        ]

    def __str__(self):
        return f"{self.name} → {self.revision}"

    @property
    def rollout(self) -> dict | None:
        """The rollout as the API shows it (and config_client.rollout.variant reads it), or
        None: `{"id", "revision", "percent", "users"}`."""
        if self.candidate_revision is None:
            return None
        return rollout_object(
            self.rollout_id, self.candidate_revision, self.rollout_percent, self.rollout_users
        )


def rollout_object(rollout_id, candidate_revision, percent, users) -> dict:
    """One shape of a rollout for the label JSON, the events and the read cache. The percent
    is a JSON number (12.5, 10): a float's repr gives back a two-decimal percent exactly."""
    percent = percent or 0
    return {
        "id": rollout_id,
        "revision": candidate_revision,
        "percent": int(percent) if percent == int(percent) else float(percent),
        "users": list(users or ()),
    }


ROLLOUT_FIELDS = ("candidate_revision", "percent", "rollout_id", "rollout_users")


class LabelMove(models.Model):
    """One change of a label (its creation too: `from_revision` is then None): a move of its
    base, a rollout set or changed, a promotion or an abort. The rollout columns hold the
    label's rollout after the change (all empty when it has none: after a promote or abort)."""

    class Action(models.TextChoices):
        MOVE = "move", _("move")
        ROLLOUT = "rollout", _("rollout")
        PROMOTE = "promote", _("promote")
        ABORT = "abort", _("abort")

    id = models.BigAutoField(primary_key=True)
    label = models.CharField(verbose_name=_("label"), max_length=32, db_index=True)
    action = models.CharField(
        verbose_name=_("action"), max_length=10, choices=Action.choices, default=Action.MOVE
    )
    from_revision = models.BigIntegerField(verbose_name=_("from revision"), null=True, blank=True)
    to_revision = models.BigIntegerField(verbose_name=_("to revision"))
    candidate_revision = models.BigIntegerField(
        verbose_name=_("candidate revision"), null=True, blank=True
    )
    percent = models.DecimalField(
        verbose_name=_("percent"), max_digits=5, decimal_places=2, null=True, blank=True
    )
    rollout_id = models.CharField(verbose_name=_("rollout id"), max_length=32, blank=True)
    rollout_users = models.JSONField(verbose_name=_("rollout users"), default=list, blank=True)
    author = models.CharField(verbose_name=_("author"), max_length=255, blank=True)
    message = models.TextField(verbose_name=_("message"), blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("label move")
        verbose_name_plural = _("label moves")
        ordering = ["-id"]

    def __str__(self):
        return f"{self.label}: {self.from_revision} → {self.to_revision}"

    # What a change's event carries (the SSE `label` event, the webhook `label` body).
    EVENT_FIELDS = ("id", "label", "to_revision", "created_at", *ROLLOUT_FIELDS)

    def event_data(self) -> dict:
        """The data of this change's event: the SSE `label` event and the webhook `label`
        body carry the same (docs/contract.md "Runtime delivery", "Webhooks")."""
        return {"label": self.label, "revision": self.to_revision, "rollout": self.rollout}

    @property
    def rollout(self) -> dict | None:
        """The label's rollout after this change (Label.rollout's shape), or None."""
        if self.candidate_revision is None:
            return None
        return rollout_object(
            self.rollout_id, self.candidate_revision, self.percent, self.rollout_users
        )


class OpaqueIdAPIKeyManager(APIKeyManager):
    def assign_key(self, obj) -> str:
        """Assign the key as the library does, then a random id in place of its id.

        The library's id is "<prefix>.<hash>", and the id shows in admin URLs, access logs and
        the admin log; nothing looks a key up by id (requests find it by prefix).
        """
        key = super().assign_key(obj)
        obj.id = uuid.uuid4().hex
        return key


class APIKey(AbstractAPIKey):
    """A runtime or automation client's key; only its sha512 hash is stored.

    The hash is fast on purpose: the key is 32 random characters, so a slow password hasher
    would only make every request slower without making the key harder to guess.
    """

    class Scope(models.TextChoices):
        READ = "read", _("read: every GET")
        RUNTIME = "runtime", _("runtime: read, and register/update/forget threads")
        WRITE = "write", _("write: read, and change assistants, tools and links")

    scope = models.CharField(
        verbose_name=_("scope"), max_length=10, choices=Scope.choices, default=Scope.READ
    )
    last_used_at = models.DateTimeField(
        _("last used"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("Accurate to the hour: written at most once an hour per key."),
    )

    # NULL: not pinned (the admin's empty field saves NULL too: one way to say it).
    label = models.CharField(  # noqa: DJ001
        verbose_name=_("label"),
        max_length=32,
        null=True,
        blank=True,
        validators=[validate_label_name],
        help_text=_(
            "Pin this key's config reads to a label (e.g. production): they serve the "
            "config at the label's revision unless they ask for another (?label=, ?revision=)."
        ),
    )
    protected = models.BooleanField(
        verbose_name=_("protected"),
        default=False,
        help_text=_("With write scope: may also move protected labels (PROTECTED_LABELS)."),
    )

    objects = OpaqueIdAPIKeyManager()

    def clean(self):
        super().clean()
        if self.protected and self.scope != self.Scope.WRITE:
            raise ValidationError(
                {"protected": _("Only a key with write scope moves labels, protected or not.")}
            )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scope__in=["read", "runtime", "write"]),
                name="api_key_scope_known",
            )
        ]


class LabelRequest(models.Model):
    """A change to a protected label waiting for approvals (docs/approvals.md): made instead of
    the change when settings.LABEL_APPROVALS > 0; config_backend.history.approvals applies it at
    the last approval needed.

    `change` is the label change as asked ({"action", "revision", "rollout"}); `changes` is the
    diff of what readers would get, as it was when asked. `label_counter` is the label's move
    counter (ConfigRevision "label:<name>") then: any change to the label since moves it, and
    the request is then stale.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        # approved by as many as needed, and applied
        APPROVED = "approved", _("approved")
        REJECTED = "rejected", _("rejected")
        CANCELLED = "cancelled", _("cancelled")
        # the label changed between the request and its last approval
        STALE = "stale", _("stale")
        EXPIRED = "expired", _("expired")

    class RequesterKind(models.TextChoices):
        USER = "user", _("user")
        API_KEY = "api_key", _("API key")
        COMMAND = "command", _("command")

    id = models.BigAutoField(primary_key=True)
    label = models.CharField(verbose_name=_("label"), max_length=32, db_index=True)
    change = models.JSONField(verbose_name=_("change"))
    changes = models.JSONField(verbose_name=_("changes"), default=list)
    from_revision = models.BigIntegerField(
        verbose_name=_("from revision"),
        null=True,
        blank=True,
        help_text=_("Where the label pointed when asked (None: no label)."),
    )
    label_counter = models.BigIntegerField(verbose_name=_("label counter"), default=0)
    message = models.TextField(verbose_name=_("message"), blank=True)
    requester = models.CharField(verbose_name=_("requester"), max_length=255)
    requester_kind = models.CharField(
        verbose_name=_("requester kind"), max_length=10, choices=RequesterKind.choices
    )
    requester_user = models.ForeignKey(
        "auth.User",
        verbose_name=_("requester user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    requester_key = models.ForeignKey(
        APIKey,
        verbose_name=_("requester API key"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    status = models.CharField(
        verbose_name=_("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    needed = models.PositiveSmallIntegerField(verbose_name=_("approvals needed"))
    expires_at = models.DateTimeField(verbose_name=_("expires at"))
    decided_by = models.CharField(verbose_name=_("decided by"), max_length=255, blank=True)
    decided_at = models.DateTimeField(verbose_name=_("decided at"), null=True, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(verbose_name=_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("label request")
        verbose_name_plural = _("label requests")
        ordering = ["-id"]
        permissions = [("approve_label_move", "Can approve label change requests")]
        indexes = [models.Index(fields=["status", "expires_at"], name="label_request_due")]

    def __str__(self):
        return f"request {self.id}: {self.label} ({self.status})"


class LabelApproval(models.Model):
    """One approval of a LabelRequest; one per approver (the constraint)."""

    id = models.BigAutoField(primary_key=True)
    request = models.ForeignKey(
        LabelRequest,
        verbose_name=_("request"),
        on_delete=models.CASCADE,
        related_name="approvals",
    )
    user = models.ForeignKey(
        "auth.User",
        verbose_name=_("user"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    username = models.CharField(verbose_name=_("username"), max_length=150)
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("label approval")
        verbose_name_plural = _("label approvals")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "user"], name="one_approval_per_approver")
        ]

    def __str__(self):
        return f"{self.username} approved request {self.request_id}"
