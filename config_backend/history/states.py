"""The state (config_backend.transfer.state) as it was at a revision.

A state at revision N is the live state with every change recorded after N undone, newest
first: each change holds the old value of every field it changed, and a row created or
deleted holds all of its fields. Threads are not versioned.
"""

import uuid

from assistants.models import Assistant
from config_backend.transfer.changes import ENTITY, SECTIONS, state_changes
from config_backend.transfer.state import ConfigState, load_state
from core.models import Revision, RevisionChange
from tools.models import Tool

__all__ = ["UnknownRevision", "state_at", "state_changes"]


class UnknownRevision(LookupError):
    """No such revision in the history."""

    def __init__(self, revision):
        super().__init__(f"No revision {revision} in the history.")
        self.revision = revision


def link_key(object_id: str) -> tuple:
    """A state's key of a link, from the id the history gives it."""
    assistant_id, tool_id = object_id.split(":")
    return uuid.UUID(assistant_id), uuid.UUID(tool_id)


def _object_key(entity: str, object_id: str):
    return link_key(object_id) if entity == ENTITY.LINK else uuid.UUID(object_id)


def state_at(revision: int) -> ConfigState:
    """The configuration as it was when `revision` was committed (threads left out).

    Raises UnknownRevision for a revision the history does not hold.
    """
    if not Revision.objects.filter(number=revision).exists():
        raise UnknownRevision(revision)
    state = load_state(include_threads=False)
    later = RevisionChange.objects.filter(revision__number__gt=revision).order_by("-id")
    for entity, object_id, action, fields in later.values_list(
        "entity", "object_id", "action", "fields"
    ).iterator(chunk_size=2000):
        rows = getattr(state, SECTIONS[entity])
        key = _object_key(entity, object_id)
        if action == RevisionChange.Action.CREATED:
            rows.pop(key, None)
        elif action == RevisionChange.Action.DELETED:
            rows[key] = {
                **_added_field_defaults(entity),
                **{
                    name: _state_value(entity, name, value["old"]) for name, value in fields.items()
                },
            }
        else:
            row = rows.setdefault(key, {})
            for name, value in fields.items():
                row[name] = _state_value(entity, name, value["old"])
    return state


# A row deleted before a field existed was recorded without it: it had the field's default.
_MODELS = {ENTITY.ASSISTANT: Assistant, ENTITY.TOOL: Tool}


def _added_field_defaults(entity: str) -> dict:
    model = _MODELS.get(entity)
    if model is None:
        return {}
    return {
        name: model._meta.get_field(name).get_default()
        for name in model.CONFIG_FIELDS
        if name != "assistant"
    }


# Fields that hold an assistant's id: a state keeps them as UUIDs.
_ID_FIELDS = {(ENTITY.TOOL, "assistant"), (ENTITY.LINK, "sub_assistant")}


def _state_value(entity: str, name: str, value):
    if value is not None and (entity, name) in _ID_FIELDS:
        return uuid.UUID(value)
    return value
