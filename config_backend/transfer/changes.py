"""The changes between two states (config_backend.transfer.state), and recording a bulk
write (import, rollback) as one revision of the history (core.changes)."""

from config_backend.transfer.state import ConfigState
from core.changes import Change, record_changes
from core.models import RevisionChange
from snippets.models import Snippet
from snippets.validators import reaching
from tools.models import AssistantToolLink
from tools.selectors import config_dependents

ENTITY = RevisionChange.Entity
# Where each entity's rows live in a state.
SECTIONS = {
    ENTITY.ASSISTANT: "assistants",
    ENTITY.TOOL: "tools",
    ENTITY.LINK: "links",
    ENTITY.SNIPPET: "snippets",
}


def _link_name(state: ConfigState, key: tuple, other: ConfigState) -> str:
    def name(section, pk):
        row = getattr(state, section).get(pk) or getattr(other, section).get(pk) or {}
        return row.get("name", str(pk))

    return f"{name('assistants', key[0])} → {name('tools', key[1])}"


def state_changes(
    old: ConfigState, new: ConfigState, *, only: dict | None = None
) -> tuple[list[Change], dict]:
    """The changes from `old` to `new` (configuration only, no threads), and what
    `tools.selectors.config_dependents` needs to know of them (and `snippet_names`: the
    snippets whose change touches the assistants including them). `only`: {section: keys} to
    compare, when the caller knows which rows differ."""
    changes: list[Change] = []
    assistant_fields, tool_ids, link_assistant_ids, snippet_names = {}, [], [], set()
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
            elif entity == ENTITY.SNIPPET:
                if Snippet.EXPANSION_FIELDS & set(change.fields):
                    snippet_names |= {
                        row["name"] for row in (before.get(key), after.get(key)) if row
                    }
            else:
                link_assistant_ids.append(key[0])
    touched = {
        "assistant_fields": assistant_fields,
        "tool_ids": tool_ids,
        "link_assistant_ids": link_assistant_ids,
        "snippet_names": snippet_names,
    }
    return changes, touched


def snippet_dependents_between(old: ConfigState, new: ConfigState, names: set) -> set[str]:
    """The assistants (ids) that include one of the snippets `names`, directly or through other
    snippets, before or after the change: the snippet edge of `config_dependents`, on states."""
    if not names:
        return set()
    affected = set()
    for state in (old, new):
        snippets = {row["name"]: row["text"] for row in state.snippets.values()}
        texts = {str(pk): row["instructions"] for pk, row in state.assistants.items()}
        affected |= reaching(names, texts, snippets)
    return affected


def record_state_changes(
    old: ConfigState, new: ConfigState, *, only: dict | None = None
) -> int | None:
    """Record, in the current transaction's revision, the bulk change from `old` to `new`
    that was just written (import, rollback); returns the revision, or None if nothing in the
    configuration changed."""
    changes, touched = state_changes(old, new, only=only)
    if not changes:
        return None
    through_snippets = snippet_dependents_between(old, new, touched.pop("snippet_names"))
    return record_changes(changes, assistants=config_dependents(**touched) | through_snippets)
