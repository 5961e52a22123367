import uuid

from config_client import templates
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.changes import lock_change_sets
from core.models import Timestamped
from snippets.validators import (
    SNIPPET_NAME_PATTERN,
    expansion_error,
    reaching,
    snippet_expansion_error,
    validate_snippet_name,
)

# Assistants sit above snippets: they are named by string here, never imported.
ASSISTANT_MODEL = "assistants.Assistant"


class Snippet(Timestamped):
    """A shared prompt fragment that instructions (and other snippets) include with
    `{{> name }}` (docs/contract.md "The whole agent in the config")."""

    # The fields that make up the configuration, in this order: what snippet_update changes and
    # the API shows, recorded in its history (core.changes) and written to its files.
    CONFIG_FIELDS = ("name", "text", "description", "is_active")
    # The fields the assistants' resolved configs depend on (their expanded instructions): a
    # change of the description alone touches no assistant's config.
    EXPANSION_FIELDS = frozenset({"name", "text", "is_active"})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(
        _("name"),
        max_length=64,
        unique=True,
        validators=[validate_snippet_name],
        help_text=_(
            "Included as {{> name }}: a lowercase letter, then lowercase letters, digits, _ or -."
        ),
    )
    text = models.TextField(
        _("text"),
        blank=True,
        help_text=_(
            "The fragment; it may hold placeholders {{ variable }} and include other snippets."
        ),
    )
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("snippet")
        verbose_name_plural = _("snippets")
        constraints = [
            models.CheckConstraint(
                condition=Q(name__regex=SNIPPET_NAME_PATTERN),
                name="snippet_name_format",
                violation_error_message=_("Snippet name must match ^[a-z][a-z0-9_-]{0,63}$."),
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        """Rule 12 for its own text and for every text that includes it; rule 7 for
        deactivating or renaming it while something includes it."""
        if not isinstance(self.name, str) or not isinstance(self.text, str):
            return  # the fields' own errors (clean_fields) say what is wrong
        lock_include_graph()
        stored = None
        if not self._state.adding:
            stored = Snippet.objects.filter(pk=self.pk).values("name", "is_active").first()
        snippets, assistants = include_graph(excluding=self.pk)
        active = {name: text for name, (text, is_active) in snippets.items() if is_active}
        problem = snippet_expansion_error(self.name, self.text, active)
        if problem:
            raise ValidationError({"text": problem})
        if stored and stored["is_active"] and (not self.is_active or stored["name"] != self.name):
            includers = snippet_includers(stored["name"], snippets=snippets, assistants=assistants)
            if includers:
                raise ValidationError(
                    {
                        "is_active" if not self.is_active else "name": still_included(
                            stored["name"], includers
                        )
                    }
                )
        if self.is_active:
            # What includes it must still expand: within the size bound, without a cycle.
            texts = _texts(snippets, assistants)
            after = {**active, self.name: self.text}
            every = {name: text for name, (text, _active) in snippets.items()}
            reached = sorted(reaching([self.name], texts, {**every, self.name: self.text}))
            problems = [
                f"{_phrase(key, gettext('includes it'))}: {expansion_error(texts[key], after)}"
                for key in reached
                if expansion_error(texts[key], after)
            ]
            if not problems:
                problems = undeclared_placeholder_problems(reached, texts, after)
            if problems:
                raise ValidationError({"text": problems})


def undeclared_placeholder_problems(reached: list, texts: dict, snippets: dict) -> list[str]:
    """Rule 11 from the snippet's side: a placeholder of the snippet's new text must be a
    declared variable of every assistant that includes it (directly or through other
    snippets). `reached`: the includers' keys (reaching); `snippets`: the active texts after."""
    names = [name for kind, name in reached if kind == "assistant"]
    if not names:
        return []
    declared = dict(
        apps.get_model(ASSISTANT_MODEL)
        .objects.filter(name__in=names)
        .values_list("name", "variables")
    )
    problems = []
    for name in names:
        expanded = templates.expand(texts[("assistant", name)], snippets)
        undeclared = templates.undeclared_placeholders(expanded, declared.get(name) or [])
        if undeclared:
            problems.append(
                f"{_phrase(('assistant', name), gettext('includes it'))}: "
                + gettext("placeholders name undeclared variables: %s; declare them there.")
                % ", ".join(f"“{variable}”" for variable in undeclared)
            )
    return problems


def lock_include_graph():
    """Serialize changes to what includes what (held until the commit), so a concurrent edit
    can't include a snippet being deactivated, nor close an include cycle.

    The change sets' lock first (core.changes: the lock order every writer follows; an admin
    action holds it already when it validates each row), then the graph's own."""
    lock_change_sets()
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('include_graph'))")


def include_graph(*, excluding=None) -> tuple[dict, dict]:
    """Every snippet ({name: (text, is_active)}, but the one with pk `excluding`) and the
    instructions of every assistant that may include one ({name: instructions}): two queries."""
    snippets = Snippet.objects.order_by()
    if excluding is not None:
        snippets = snippets.exclude(pk=excluding)
    assistants = apps.get_model(ASSISTANT_MODEL).objects.filter(instructions__contains="{{")
    return (
        {
            name: (text, is_active)
            for name, text, is_active in snippets.values_list("name", "text", "is_active")
        },
        dict(assistants.order_by().values_list("name", "instructions")),
    )


def _texts(snippets: dict, assistants: dict) -> dict:
    texts = {("assistant", name): text for name, text in assistants.items()}
    texts.update({("snippet", name): text for name, (text, _active) in snippets.items()})
    return texts


def _phrase(key: tuple, what: str) -> str:
    kind, name = key
    if kind == "assistant":
        return gettext("assistant “%(name)s” %(what)s") % {"name": name, "what": what}
    return gettext("snippet “%(name)s” %(what)s") % {"name": name, "what": what}


def snippet_includers(name: str, *, snippets: dict, assistants: dict) -> list[str]:
    """What includes the snippet `name`, directly or through other snippets (rule 7), one
    phrase each, assistants first, by name. `snippets` and `assistants` as include_graph gives
    them."""
    every = {other: text for other, (text, _active) in snippets.items()}
    texts = _texts({key: value for key, value in snippets.items() if key != name}, assistants)
    return [_phrase(key, gettext("includes it")) for key in sorted(reaching([name], texts, every))]


def still_included(name: str, includers: list[str]) -> str:
    return gettext("“%(name)s” is still included: %(includers)s.") % {
        "name": name,
        "includers": "; ".join(includers),
    }
