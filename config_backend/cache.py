"""Config revision and cache keys."""

from django.db import transaction
from django.db.models import F

from config_backend.models import ConfigRevision


def bump_config_revision() -> None:
    """Record that the configuration changed in the current transaction.

    Called by the model signals, and explicitly by bulk paths (import) that bypass them.
    """
    with transaction.atomic():
        updated = ConfigRevision.objects.filter(pk=1).update(value=F("value") + 1)
        if not updated:
            ConfigRevision.objects.get_or_create(pk=1, defaults={"value": 1})
