"""Reads of snippets: the active texts the resolved configs expand, what includes a snippet,
and which assistants' resolved configs a snippet change touches."""

from collections.abc import Iterable

from django.apps import apps
from django.db.models import QuerySet

from snippets.models import ASSISTANT_MODEL, Snippet, include_graph, snippet_includers
from snippets.validators import reaching


def snippet_list(*, filters: dict | None = None) -> QuerySet[Snippet]:
    """Snippets by name; `filters` may hold `is_active`."""
    return Snippet.objects.filter(**(filters or {})).order_by("name")


def active_snippet_texts() -> dict[str, str]:
    """{name: text} of every active snippet: one query, however many there are."""
    return dict(Snippet.objects.filter(is_active=True).order_by().values_list("name", "text"))


def snippet_references(*, snippet: Snippet) -> list[str]:
    """What would be left dangling if this snippet were deleted (rule 7): the assistants and
    snippets that include it, directly or through other snippets."""
    snippets, assistants = include_graph()
    return snippet_includers(snippet.name, snippets=snippets, assistants=assistants)


def snippet_dependents(names: Iterable[str]) -> set[str]:
    """The ids of the assistants whose instructions include one of the snippets `names`,
    directly or through other snippets: those whose resolved config a change of them touches
    (docs/contract.md "Fine-grained freshness"). Read in the change's transaction, after its
    writes (docs/consistency.md, "The snippet edge"). Two queries."""
    names = set(names)
    if not names:
        return set()
    snippets = dict(Snippet.objects.order_by().values_list("name", "text"))
    assistants = apps.get_model(ASSISTANT_MODEL).objects.filter(instructions__contains="{{")
    texts = {str(pk): text for pk, text in assistants.order_by().values_list("pk", "instructions")}
    return reaching(names, texts, snippets)
