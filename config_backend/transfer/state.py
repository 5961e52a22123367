"""The configuration as plain values (a state), read from the database in one snapshot.

A row's fields are the models' CONFIG_FIELDS, which the history records too, so a state rebuilt
from the history (config_backend.history.states) is one the file format writes (export --at,
rollback).
"""

import json
from dataclasses import dataclass, field

from django.db import connection

from assistants.models import Assistant
from snippets.models import Snippet
from threads.models import UserAssistantThread
from tools.models import AssistantToolLink, Tool
from tools.validators import link_sub_assistant

ENTITIES = ("assistants", "tools", "links", "snippets", "threads")
# The fields of each row, in the order the file format writes them (an assistant's `tools` list
# and every `id` aside). References (`assistant`) are by primary key here, by name in a file.
ASSISTANT_FIELDS = Assistant.CONFIG_FIELDS
TOOL_FIELDS = Tool.CONFIG_FIELDS
SNIPPET_FIELDS = Snippet.CONFIG_FIELDS
THREAD_FIELDS = ("user_id", "assistant", "thread_id", "last_used")


@dataclass
class ConfigState:
    """Rows as dicts of the file format's fields, keyed by primary key; references are keys.

    links are keyed by (assistant id, tool id); link_ids maps those keys to the link rows' ids.
    """

    assistants: dict = field(default_factory=dict)
    tools: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)
    snippets: dict = field(default_factory=dict)
    threads: dict = field(default_factory=dict)
    link_ids: dict = field(default_factory=dict)

    def counts(self) -> dict:
        return {entity: len(getattr(self, entity)) for entity in ENTITIES}


def canonical(row) -> str:
    """A row as text for comparison: JSON compares 1, 1.0 and true as different, as the
    database does."""
    return json.dumps(row, sort_keys=True, default=str)


def _columns(fields: tuple) -> list[str]:
    return [name if name != "assistant" else "assistant_id" for name in fields]


def load_state(*, include_threads: bool = True) -> ConfigState:
    """Read the configuration: one query per entity type."""
    state = ConfigState()
    for pk, *values in Assistant.objects.order_by().values_list("id", *ASSISTANT_FIELDS):
        state.assistants[pk] = dict(zip(ASSISTANT_FIELDS, values, strict=True))
    for pk, *values in Tool.objects.order_by().values_list("id", *_columns(TOOL_FIELDS)):
        state.tools[pk] = dict(zip(TOOL_FIELDS, values, strict=True))
    links = AssistantToolLink.objects.order_by().values_list(
        "id", "assistant_id", "tool_id", "is_active", "sub_assistant_id"
    )
    for pk, assistant_id, tool_id, is_active, sub_assistant_id in links:
        key = (assistant_id, tool_id)
        state.links[key] = {"is_active": is_active, "sub_assistant": sub_assistant_id}
        state.link_ids[key] = pk
    for pk, *values in Snippet.objects.order_by().values_list("id", *SNIPPET_FIELDS):
        state.snippets[pk] = dict(zip(SNIPPET_FIELDS, values, strict=True))
    if include_threads:
        threads = UserAssistantThread.objects.order_by().values_list("id", *_columns(THREAD_FIELDS))
        for pk, *values in threads:
            state.threads[pk] = dict(zip(THREAD_FIELDS, values, strict=True))
    return state


def lock_config_tables(*, mode: str) -> None:
    """Keep concurrent admin/API writes out while we read (and write) the whole config."""
    if connection.vendor != "postgresql":
        return
    tables = ", ".join(
        connection.ops.quote_name(model._meta.db_table)
        for model in (Assistant, Tool, AssistantToolLink, Snippet, UserAssistantThread)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {tables} IN {mode} MODE")


def links_out_of_sync(state: ConfigState) -> list[tuple]:
    """The links whose sub_assistant is not their tool's delegate (or whose tool is missing)."""
    return [
        key
        for key, link in state.links.items()
        if key[1] not in state.tools
        or link["sub_assistant"]
        != link_sub_assistant(tool_delegate=state.tools[key[1]]["assistant"])
    ]
