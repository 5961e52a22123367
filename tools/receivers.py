"""Any change to a tool or a link moves the config revision (see core.cache)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from core.cache import bump_config_revision
from tools.models import AssistantToolLink, Tool


@receiver(post_save, sender=Tool, dispatch_uid="tool_saved")
@receiver(post_delete, sender=Tool, dispatch_uid="tool_deleted")
@receiver(post_save, sender=AssistantToolLink, dispatch_uid="link_saved")
@receiver(post_delete, sender=AssistantToolLink, dispatch_uid="link_deleted")
def tool_changed(sender, **kwargs):
    bump_config_revision()
