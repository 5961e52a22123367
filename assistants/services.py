"""Writes to assistants and to their tool sets (the links to tools). Every write validates with
full_clean() before it saves."""

from django.core.exceptions import ValidationError
from django.db import transaction

from assistants.models import Assistant
from assistants.selectors import assistant_references
from core.services import StillReferenced, model_create, model_update
from tools.models import AssistantToolLink, Tool


@transaction.atomic
def assistant_create(**fields) -> Assistant:
    return model_create(Assistant, **fields)


@transaction.atomic
def assistant_update(*, assistant: Assistant, **fields) -> Assistant:
    """Change the given fields (of Assistant.CONFIG_FIELDS); a change to nothing saves nothing."""
    assistant, _ = model_update(instance=assistant, fields=Assistant.CONFIG_FIELDS, data=fields)
    return assistant


@transaction.atomic
def assistant_delete(*, assistant: Assistant) -> None:
    """Delete an assistant, its own tool links and threads; refuse while a tool delegates to it."""
    references = assistant_references(assistant=assistant)
    if references:
        raise StillReferenced(name=assistant.name, references=references)
    assistant.delete()


@transaction.atomic
def tool_link(
    *, assistant: Assistant, tool: Tool, is_active: bool = True
) -> tuple[AssistantToolLink, bool]:
    """Link a tool to an assistant (or update the existing link); returns (link, created)."""
    link = AssistantToolLink.objects.filter(assistant=assistant, tool=tool).first()
    created = link is None
    if not created and link.is_active == is_active:
        return link, False  # nothing changes: no save, no revision
    if created:
        link = AssistantToolLink(assistant=assistant, tool=tool)
    link.is_active = is_active
    link.full_clean()
    link.save()
    return link, created


@transaction.atomic
def tool_unlink(*, link: AssistantToolLink) -> None:
    """Remove a tool from an assistant's tool set; refused while its tool_choice names the tool
    (rule 10)."""
    refusal = link.tool_choice_refusal()
    if refusal:
        raise ValidationError(refusal)
    link.delete()
