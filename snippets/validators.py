"""The rules about snippets and includes, as pure functions over plain values (no database).

Rule 12 (docs/contract.md "The whole agent in the config"): an include names an existing active
snippet, no include cycles (the error names the cycle), and the expanded instructions are at
most MAX_INSTRUCTIONS_BYTES. The grammar itself is config_client.templates' (the one
implementation the server and the client share); these functions only apply it. Model clean(),
the services (through full_clean) and the import planner call them, so each rule and its message
exist once; the callers only fetch the values.
"""

import re
from collections.abc import Hashable, Iterable, Mapping

from config_client import templates
from django.conf import settings
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

# The grammar's name of a snippet. For the database's CheckConstraint: PostgreSQL's ^ and $
# match only at the ends of the string.
SNIPPET_NAME_PATTERN = f"^{templates.SNIPPET_NAME.pattern}$"

validate_snippet_name = RegexValidator(
    # \A…\Z, not ^…$: in Python `$` also matches before a final newline.
    re.compile(rf"\A{templates.SNIPPET_NAME.pattern}\Z"),
    _(
        "A snippet name starts with a lowercase letter, followed by at most 63 lowercase "
        "letters, digits, _ or -."
    ),
)


TOO_DEEP = _("Snippets include each other too deeply (hundreds of levels) to be expanded.")


def expansion_error(text: str, snippets: Mapping[str, str]) -> str | None:
    """Rule 12 for one text (an assistant's instructions or a snippet's text): why it cannot be
    expanded with the active snippets `snippets` ({name: text}), else None. A syntax error, an
    include of no active snippet, an include cycle, or an expansion over
    MAX_INSTRUCTIONS_BYTES."""
    try:
        templates.expand(text, snippets, max_bytes=settings.MAX_INSTRUCTIONS_BYTES)
    except templates.TemplateError as exc:
        return str(exc)
    except RecursionError:  # the expansion recurses once per level of includes
        return str(TOO_DEEP)
    return None


def snippet_expansion_error(name: str, text: str, snippets: Mapping[str, str]) -> str | None:
    """Rule 12 for a snippet's own text, as it expands where it is included: with the active
    snippets `snippets` and itself (so that including itself is a cycle, named from it:
    `tone → greeting → tone`); errors inside its text name it (`snippet “tone”: …`)."""
    return expansion_error(f"{{{{> {name} }}}}", {**snippets, name: text})


def could_include(text: str) -> bool:
    """Whether a text may hold an include at all: a cheap test before parsing it."""
    return "{{" in text


def direct_includes(text: str) -> list[str]:
    """The snippets a text includes itself ([] for a text the grammar cannot read: its own
    save reports that)."""
    if not could_include(text):
        return []
    try:
        return templates.includes(text)
    except templates.TemplateError:
        return []


def reaching(
    targets: Iterable[str], texts: Mapping[Hashable, str], snippets: Mapping[str, str]
) -> set:
    """The keys of `texts` whose text includes one of the `targets` snippets, directly or
    through other snippets (`snippets`: every snippet's text, by name, active or not)."""
    included_by: dict[str, set[str]] = {}
    for name, text in snippets.items():
        for included in direct_includes(text):
            included_by.setdefault(included, set()).add(name)
    # Walk the include edges backwards from the targets: every snippet that reaches one.
    reached = set(targets)
    pending = list(reached)
    while pending:
        for includer in included_by.get(pending.pop(), ()):
            if includer not in reached:
                reached.add(includer)
                pending.append(includer)
    return {key for key, text in texts.items() if reached.intersection(direct_includes(text))}
