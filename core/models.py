import uuid

from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, APIKeyManager


class ConfigRevision(models.Model):
    """A counter that grows by one with every committed change of what it names.

    Rows: `config` (assistants, tools, links) and `api_keys`. Cached entries are tagged with
    the revision read before their database read, and served only while the revision (mirrored
    in the cache) is unchanged: a committed change makes every older entry unreachable on every
    app instance, without tracking which entry depends on which row.
    """

    CONFIG = "config"
    API_KEYS = "api_keys"

    name = models.CharField(max_length=20, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.name} revision {self.value}"


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

    objects = OpaqueIdAPIKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scope__in=["read", "runtime", "write"]),
                name="api_key_scope_known",
            )
        ]
