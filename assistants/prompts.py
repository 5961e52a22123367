"""Assistants' prompt templates on the server: the snippets their instructions include, and the
instructions with every include expanded (placeholders left for the runtime). The grammar is
config_client.templates' (docs/contract.md "The whole agent in the config")."""

import logging
from collections.abc import Mapping

from config_client import templates

from snippets.selectors import active_snippet_texts
from snippets.validators import could_include

logger = logging.getLogger(__name__)


def snippet_texts() -> dict[str, str]:
    """{name: text} of the active snippets, the ones instructions may include: one query."""
    return active_snippet_texts()


def expanded_instructions(instructions: str, snippets: Mapping[str, str]) -> str:
    """`instructions` with every include replaced by its snippet's text, itself expanded.

    Stored instructions always expand (rule 12 is checked on every save, in the admin, the API
    and the import); should a row break it anyway (written by SQL), its config shows the text as
    stored, with a warning, rather than fail.
    """
    if not could_include(instructions):
        return instructions
    try:
        return templates.expand(instructions, snippets)
    except (templates.TemplateError, RecursionError) as exc:
        logger.warning("instructions not expanded: %s", exc)
        return instructions
