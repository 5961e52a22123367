"""Every change to an assistant is recorded in the configuration's history (core.changes),
which moves the config revision of the assistants it touches."""

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from assistants.models import Assistant
from core.changes import Change, record_changes, row_values, stored_values
from core.models import RevisionChange
from core.reads.entries import forget_live_entries_at_commit
from tools.selectors import config_dependents


@receiver(pre_save, sender=Assistant, dispatch_uid="assistant_before_save")
def assistant_before_save(sender, instance, **kwargs):
    instance._stored_config = stored_values(instance, Assistant.CONFIG_FIELDS)


@receiver(post_save, sender=Assistant, dispatch_uid="assistant_saved")
def assistant_saved(sender, instance, created, **kwargs):
    old = None if created else getattr(instance, "_stored_config", None)
    _record(instance, old=old, new=row_values(instance, Assistant.CONFIG_FIELDS))


@receiver(post_delete, sender=Assistant, dispatch_uid="assistant_deleted")
def assistant_deleted(sender, instance, **kwargs):
    _record(instance, old=row_values(instance, Assistant.CONFIG_FIELDS), new=None)
    forget_live_entries_at_commit([instance.pk])


def _record(assistant: Assistant, *, old, new) -> None:
    change = Change.between(
        entity=RevisionChange.Entity.ASSISTANT,
        object_id=assistant.pk,
        name=assistant.name,
        old=old,
        new=new,
    )
    if change is not None:
        dependents = config_dependents(assistant_fields={assistant.pk: change.fields})
        record_changes([change], assistants=dependents)
