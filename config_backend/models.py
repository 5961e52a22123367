from django.db import models


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
