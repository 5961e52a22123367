"""Writes to snippets. Every write validates with full_clean() before it saves."""

from django.db import transaction

from core.services import StillReferenced, model_create, model_update
from snippets.models import Snippet, lock_include_graph
from snippets.selectors import snippet_references


@transaction.atomic
def snippet_create(**fields) -> Snippet:
    return model_create(Snippet, **fields)


@transaction.atomic
def snippet_update(*, snippet: Snippet, **fields) -> Snippet:
    """Change the given fields (of Snippet.CONFIG_FIELDS); a change to nothing saves nothing."""
    snippet, _ = model_update(instance=snippet, fields=Snippet.CONFIG_FIELDS, data=fields)
    return snippet


@transaction.atomic
def snippet_delete(*, snippet: Snippet) -> None:
    """Delete a snippet; refuse while an assistant or a snippet includes it (rule 7)."""
    lock_include_graph()
    references = snippet_references(snippet=snippet)
    if references:
        raise StillReferenced(name=snippet.name, references=references)
    snippet.delete()
