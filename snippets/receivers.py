"""Every change to a snippet is recorded in the configuration's history (core.changes), which
moves the config revision of the assistants that include it, directly or through other
snippets (docs/consistency.md, "The snippet edge")."""

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from core.changes import Change, record_changes, row_values, stored_values
from core.models import RevisionChange
from snippets.models import Snippet
from snippets.selectors import snippet_dependents


@receiver(pre_save, sender=Snippet, dispatch_uid="snippet_before_save")
def snippet_before_save(sender, instance, **kwargs):
    # stored_values takes the change sets' lock: from here to the commit no other change set
    # runs, so the includes read below are the committed ones.
    instance._stored_config = stored_values(instance, Snippet.CONFIG_FIELDS)


@receiver(post_save, sender=Snippet, dispatch_uid="snippet_saved")
def snippet_saved(sender, instance, created, **kwargs):
    old = None if created else getattr(instance, "_stored_config", None)
    _record(instance, old=old, new=row_values(instance, Snippet.CONFIG_FIELDS))


@receiver(post_delete, sender=Snippet, dispatch_uid="snippet_deleted")
def snippet_deleted(sender, instance, **kwargs):
    _record(instance, old=row_values(instance, Snippet.CONFIG_FIELDS), new=None)


def _record(snippet: Snippet, *, old, new) -> None:
    change = Change.between(
        entity=RevisionChange.Entity.SNIPPET,
        object_id=snippet.pk,
        name=snippet.name,
        old=old,
        new=new,
    )
    if change is None:
        return
    names = set()
    if Snippet.EXPANSION_FIELDS & set(change.fields):
        names = {row["name"] for row in (old, new) if row}
    record_changes([change], assistants=snippet_dependents(names))
