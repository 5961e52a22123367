"""States (config_backend.transfer.state) and the history: the changes between two states,
and the state as it was at a revision.

A state at revision N is the live state with every change recorded after N undone, newest
first: each change holds the old value of every field it changed, and a row created or
deleted holds all of its fields. Threads are not versioned.
"""

import uuid

from config_backend.transfer.state import ConfigState, load_state
from core.changes import Change, record_changes
from core.models import Revision, RevisionChange
from tools.models import AssistantToolLink
from tools.selectors import config_dependents

ENTITY = RevisionChange.Entity
# Where each entity's rows live in a state.
SECTIONS = {ENTITY.ASSISTANT: "assistants", ENTITY.TOOL: "tools", ENTITY.LINK: "links"}


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


def _link_name(state: ConfigState, key: tuple, other: ConfigState) -> str:
    def name(section, pk):
        row = getattr(state, section).get(pk) or getattr(other, section).get(pk) or {}
        return row.get("name", str(pk))

    return f"{name('assistants', key[0])} → {name('tools', key[1])}"


def state_changes(
    old: ConfigState, new: ConfigState, *, only: dict | None = None
) -> tuple[list[Change], dict]:
    """The changes from `old` to `new` (configuration only, no threads), and what
    `tools.selectors.config_dependents` needs to know of them. `only`: {section: keys} to
    compare, when the caller knows which rows differ."""
    changes: list[Change] = []
    assistant_fields, tool_ids, link_assistant_ids = {}, [], []
    for entity, section in SECTIONS.items():
        before, after = getattr(old, section), getattr(new, section)
        keys = {*before, *after} if only is None else set(only[section])
        for key in sorted(keys, key=str):
            if entity == ENTITY.LINK:
                object_id = AssistantToolLink.history_id(*key)
                name = _link_name(new, key, old)
            else:
                object_id = key
                name = (after.get(key) or before.get(key))["name"]
            change = Change.between(
                entity=entity,
                object_id=object_id,
                name=name,
                old=before.get(key),
                new=after.get(key),
            )
            if change is None:
                continue
            changes.append(change)
            if entity == ENTITY.ASSISTANT:
                assistant_fields[key] = change.fields
            elif entity == ENTITY.TOOL:
                if key in before and key in after:
                    tool_ids.append(key)
            else:
                link_assistant_ids.append(key[0])
    touched = {
        "assistant_fields": assistant_fields,
        "tool_ids": tool_ids,
        "link_assistant_ids": link_assistant_ids,
    }
    return changes, touched


def record_state_changes(
    old: ConfigState, new: ConfigState, *, only: dict | None = None
) -> int | None:
    """Record, in the current transaction's revision, the bulk change from `old` to `new`
    that was just written (import, rollback); returns the revision, or None if nothing in the
    configuration changed."""
    changes, touched = state_changes(old, new, only=only)
    if not changes:
        return None
    return record_changes(changes, assistants=config_dependents(**touched))


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
                name: _state_value(entity, name, value["old"]) for name, value in fields.items()
            }
        else:
            row = rows.setdefault(key, {})
            for name, value in fields.items():
                row[name] = _state_value(entity, name, value["old"])
    return state


# Fields that hold an assistant's id: a state keeps them as UUIDs.
_ID_FIELDS = {(ENTITY.TOOL, "assistant"), (ENTITY.LINK, "sub_assistant")}


def _state_value(entity: str, name: str, value):
    if value is not None and (entity, name) in _ID_FIELDS:
        return uuid.UUID(value)
    return value
