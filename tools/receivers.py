"""Every change to a tool or a link is recorded in the configuration's history (core.changes),
which moves the config revision of the assistants it touches."""

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from core.changes import Change, record_changes, row_values, stored_values
from core.models import RevisionChange
from tools.models import AssistantToolLink, Tool
from tools.selectors import config_dependents


@receiver(pre_save, sender=Tool, dispatch_uid="tool_before_save")
@receiver(pre_save, sender=AssistantToolLink, dispatch_uid="link_before_save")
def before_save(sender, instance, **kwargs):
    instance._stored_config = stored_values(instance, sender.CONFIG_FIELDS)


@receiver(post_save, sender=Tool, dispatch_uid="tool_saved")
@receiver(post_save, sender=AssistantToolLink, dispatch_uid="link_saved")
def saved(sender, instance, created, **kwargs):
    old = None if created else getattr(instance, "_stored_config", None)
    _record(instance, old=old, new=row_values(instance, sender.CONFIG_FIELDS))


@receiver(post_delete, sender=Tool, dispatch_uid="tool_deleted")
@receiver(post_delete, sender=AssistantToolLink, dispatch_uid="link_deleted")
def deleted(sender, instance, **kwargs):
    _record(instance, old=row_values(instance, sender.CONFIG_FIELDS), new=None)


def _record(instance: Tool | AssistantToolLink, *, old, new) -> None:
    if isinstance(instance, Tool):
        entity, object_id, name = RevisionChange.Entity.TOOL, instance.pk, instance.name
        # A tool created has no links yet; one deleted had none (rule 7).
        touched = {"tool_ids": [instance.pk]} if old and new else {}
    else:
        entity = RevisionChange.Entity.LINK
        object_id = AssistantToolLink.history_id(instance.assistant_id, instance.tool_id)
        name = f"{instance.assistant.name} → {instance.tool.name}"
        touched = {"link_assistant_ids": [instance.assistant_id]}
    change = Change.between(entity=entity, object_id=object_id, name=name, old=old, new=new)
    if change is not None:
        record_changes([change], assistants=config_dependents(**touched))
