"""Any change to an API key moves the key revision, so cached key records stop counting."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from core.models import APIKey, ConfigRevision
from core.store import bump_revision


@receiver(post_save, sender=APIKey, dispatch_uid="api_key_saved")
@receiver(post_delete, sender=APIKey, dispatch_uid="api_key_deleted")
def api_key_changed(sender, **kwargs):
    bump_revision(ConfigRevision.API_KEYS)
