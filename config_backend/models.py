from django.db import models
from rest_framework_api_key.models import AbstractAPIKey


class ConfigRevision(models.Model):
    """A single row whose value grows by one with every committed config change.

    Cached configs are keyed by the revision read before they were built, so a change that
    commits (and bumps this) makes every older entry unreachable on every app instance.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="config_revision_single_row")
        ]

    def __str__(self):
        return f"revision {self.value}"


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

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scope__in=["read", "runtime", "write"]),
                name="api_key_scope_known",
            )
        ]
