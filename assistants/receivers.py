"""Any change to an assistant moves the config revision (see core.cache)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from assistants.models import Assistant
from core.cache import bump_config_revision


@receiver(post_save, sender=Assistant, dispatch_uid="assistant_saved")
@receiver(post_delete, sender=Assistant, dispatch_uid="assistant_deleted")
def assistant_changed(sender, **kwargs):
    bump_config_revision()
