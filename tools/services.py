"""Writes to tools. (Linking a tool to an assistant is the assistant's: assistants.services.)"""

from django.db import transaction

from core.services import StillReferenced, model_create, model_update
from tools.models import Tool
from tools.selectors import tool_references


@transaction.atomic
def tool_create(**fields) -> Tool:
    return model_create(Tool, **fields)


@transaction.atomic
def tool_update(*, tool: Tool, **fields) -> Tool:
    """Change the given fields (of Tool.CONFIG_FIELDS); a change to nothing saves nothing."""
    tool, _ = model_update(instance=tool, fields=Tool.CONFIG_FIELDS, data=fields)
    return tool


@transaction.atomic
def tool_delete(*, tool: Tool) -> None:
    """Delete a tool; refuse while an assistant links it."""
    references = tool_references(tool=tool)
    if references:
        raise StillReferenced(name=tool.name, references=references)
    tool.delete()
