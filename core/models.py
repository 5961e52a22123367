import re
import uuid

from django.core.exceptions import ValidationError
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, APIKeyManager


class Timestamped(models.Model):
    """When a row was created and last saved: shown by the admin and the API, not part of the
    configuration (the models' CONFIG_FIELDS) nor of its history."""

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

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

    name = models.CharField(max_length=64, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.name} revision {self.value}"

    @classmethod
    def for_assistant(cls, assistant_id) -> str:
        return f"{cls.ASSISTANT_PREFIX}{assistant_id}"

    @classmethod
    def for_label(cls, name: str) -> str:
        return f"{cls.LABEL_PREFIX}{name}"


class Revision(models.Model):
    """One committed change set of the configuration (docs/contract.md "Revisions"): who, from
    where, why.

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
    number = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    author = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    message = models.TextField(blank=True)
    assistants = models.JSONField(default=list)

    class Meta:
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

    class Action(models.TextChoices):
        CREATED = "created"
        UPDATED = "updated"
        DELETED = "deleted"

    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="changes")
    entity = models.CharField(max_length=10, choices=Entity.choices)
    object_id = models.CharField(max_length=80)
    name = models.CharField(max_length=600)
    action = models.CharField(max_length=10, choices=Action.choices)
    fields = models.JSONField(default=dict)

    class Meta:
        ordering = ["revision", "id"]
        indexes = [models.Index(fields=["entity", "object_id"])]

    def __str__(self):
        return f"{self.entity} {self.name} {self.action} in {self.revision_id}"


# `\A…\Z`, not `^…$`: `$` also matches before a final newline.
LABEL_NAME = re.compile(r"\A[a-z][a-z0-9-]{0,31}\Z")
# Always the current state; never a stored label (docs/contract.md "Labels").
LIVE = "live"


def validate_label_name(name: str) -> None:
    """A label name matches `^[a-z][a-z0-9-]{0,31}$` and is not `live` (docs/contract.md
    "Labels")."""
    if name == LIVE:
        raise ValidationError("`live` is reserved: it always means the current state.")
    if not LABEL_NAME.match(name):
        raise ValidationError(
            "A label name is a lowercase letter followed by at most 31 lowercase letters, "
            "digits or hyphens."
        )


class Label(models.Model):
    """A named pointer to a revision (`production`, `staging`); moved by
    config_backend.history.labels."""

    name = models.CharField(max_length=32, primary_key=True, validators=[validate_label_name])
    revision = models.BigIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("move_label", "Can move labels"),
            ("move_protected_label", "Can move protected labels"),
        ]

    def __str__(self):
        return f"{self.name} → {self.revision}"


class LabelMove(models.Model):
    """One move of a label (its creation too: `from_revision` is then None)."""

    id = models.BigAutoField(primary_key=True)
    label = models.CharField(max_length=32, db_index=True)
    from_revision = models.BigIntegerField(null=True, blank=True)
    to_revision = models.BigIntegerField()
    author = models.CharField(max_length=255, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.label}: {self.from_revision} → {self.to_revision}"


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
        READ = "read", "read: every GET"
        RUNTIME = "runtime", "runtime: read, and register/update/forget threads"
        WRITE = "write", "write: read, and change assistants, tools and links"

    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.READ)
    last_used_at = models.DateTimeField(
        "last used",
        null=True,
        blank=True,
        editable=False,
        help_text="Accurate to the hour: written at most once an hour per key.",
    )

    # NULL: not pinned (the admin's empty field saves NULL too: one way to say it).
    label = models.CharField(  # noqa: DJ001
        max_length=32,
        null=True,
        blank=True,
        validators=[validate_label_name],
        help_text="Pin this key's config reads to a label (e.g. production): they serve the "
        "config at the label's revision unless they ask for another (?label=, ?revision=).",
    )
    protected = models.BooleanField(
        default=False,
        help_text="With write scope: may also move protected labels (PROTECTED_LABELS).",
    )

    objects = OpaqueIdAPIKeyManager()

    def clean(self):
        super().clean()
        if self.protected and self.scope != self.Scope.WRITE:
            raise ValidationError(
                {"protected": "Only a key with write scope moves labels, protected or not."}
            )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
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
        PENDING = "pending"
        APPROVED = "approved"  # approved by as many as needed, and applied
        REJECTED = "rejected"
        CANCELLED = "cancelled"
        STALE = "stale"  # the label changed between the request and its last approval
        EXPIRED = "expired"

    class RequesterKind(models.TextChoices):
        USER = "user"
        API_KEY = "api_key"
        COMMAND = "command"

    id = models.BigAutoField(primary_key=True)
    label = models.CharField(max_length=32, db_index=True)
    change = models.JSONField()
    changes = models.JSONField(default=list)
    from_revision = models.BigIntegerField(
        null=True, blank=True, help_text="Where the label pointed when asked (None: no label)."
    )
    label_counter = models.BigIntegerField(default=0)
    message = models.TextField(blank=True)
    requester = models.CharField(max_length=255)
    requester_kind = models.CharField(max_length=10, choices=RequesterKind.choices)
    requester_user = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requester_key = models.ForeignKey(
        APIKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    needed = models.PositiveSmallIntegerField()
    expires_at = models.DateTimeField()
    decided_by = models.CharField(max_length=255, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("approve_label_move", "Can approve label change requests")]
        indexes = [models.Index(fields=["status", "expires_at"], name="label_request_due")]

    def __str__(self):
        return f"request {self.id}: {self.label} ({self.status})"


class LabelApproval(models.Model):
    """One approval of a LabelRequest; one per approver (the constraint)."""

    id = models.BigAutoField(primary_key=True)
    request = models.ForeignKey(LabelRequest, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey("auth.User", null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "user"], name="one_approval_per_approver")
        ]

    def __str__(self):
        return f"{self.username} approved request {self.request_id}"
