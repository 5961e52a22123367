"""Reads of the history: revisions with their changes, points in it (`resolve_point`), the
net change between two points (`diff`), and the resolved config as it was at a revision
(`build_config_at`; core.reads.reads.RevisionRead serves it, built once and cached for good).
"""

import json
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from assistants.prompts import expanded_instructions
from assistants.selectors import resolved_bundle, resolved_config
from config_backend.history.states import UnknownRevision, state_at, state_changes
from config_backend.transfer.state import ConfigState, load_state
from core.changes import Change
from core.models import LIVE, Label, Revision, RevisionChange
from core.reads.points import MalformedPoint, parse_revision

# The most the API shows of one value of a changed field unless asked for it whole (`?full=1`),
# so a revision's or a diff's answer grows with the fields changed, not with the texts.
FIELD_SHOWN_CHARS = 4096


# --- revisions ----------------------------------------------------------------------------------


def revision_list() -> QuerySet[Revision]:
    """Revisions, newest first, each with `count_assistants`, `count_tools`, `count_links`,
    `count_snippets`: the rows of each entity it changed (aggregated in the page's one query)."""
    entity = RevisionChange.Entity
    return Revision.objects.order_by("-number").annotate(
        count_assistants=Count("changes", filter=Q(changes__entity=entity.ASSISTANT)),
        count_tools=Count("changes", filter=Q(changes__entity=entity.TOOL)),
        count_links=Count("changes", filter=Q(changes__entity=entity.LINK)),
        count_snippets=Count("changes", filter=Q(changes__entity=entity.SNIPPET)),
    )


def revision_detail(number: int, *, full: bool = False) -> Revision:
    """The revision numbered `number` with its counts and `change_list` (in the order they were
    recorded; values cut as change_json says unless `full`); raises UnknownRevision."""
    fits = 0 <= number < 2**63  # a bigint: a larger number is no revision, not a 500
    revision = revision_list().filter(number=number).first() if fits else None
    if revision is None:
        raise UnknownRevision(number)
    revision.change_list = [
        change_json(change, full=full)
        for change in revision.changes.order_by("id").values(
            "entity", "object_id", "name", "action", "fields"
        )
    ]
    return revision


def change_json(change, *, full: bool) -> dict:
    """A change (a RevisionChange's values, or a core.changes.Change) as the API shows it:
    each field's values whole when `full`, else as shown_field cuts them."""
    if isinstance(change, Change):
        change = vars(change)
    fields = change["fields"]
    if not full:
        fields = {name: shown_field(values) for name, values in fields.items()}
    return {
        "entity": change["entity"],
        "id": change["object_id"],
        "name": change["name"],
        "action": change["action"],
        "fields": fields,
    }


def shown_field(values: dict) -> dict:
    """A changed field's {"old", "new"}, each value longer than FIELD_SHOWN_CHARS characters
    cut to its first FIELD_SHOWN_CHARS (an object or array: the start of its JSON text, a
    string), and then `"truncated": true`."""
    shown, truncated = {}, False
    for side in ("old", "new"):
        value = values[side]
        text = value
        if isinstance(value, dict | list):
            text = json.dumps(value, ensure_ascii=False)
        if isinstance(text, str) and len(text) > FIELD_SHOWN_CHARS:
            value, truncated = text[:FIELD_SHOWN_CHARS], True
        shown[side] = value
    return {**shown, "truncated": True} if truncated else shown


def newest_history_revision() -> int:
    """The newest revision's number (0 before the history's first)."""
    return Revision.objects.order_by("-number").values_list("number", flat=True).first() or 0


# --- points in the history and the difference between two -------------------------------------


def resolve_point(text: str | None) -> int | None:
    """The revision a point names: a revision number, or None/`live` (the live state).

    Raises MalformedPoint for text that names nothing, UnknownRevision (a LookupError) for a
    number the history does not hold. The labels resolve here too (config_backend.history's
    labels add them): one place says what `from`, `to`, `--at` and rollback's `to` accept.
    """
    if text is None or str(text).strip() == LIVE:
        return None
    label = Label.objects.filter(name=str(text).strip()).values_list("revision", flat=True)
    if label:
        return label[0]  # a label points at a revision the history holds
    try:
        number = parse_revision(text)
    except MalformedPoint:
        raise MalformedPoint(f"“{text}” is not a revision number, a label or `{LIVE}`.") from None
    if not Revision.objects.filter(number=number).exists():
        raise UnknownRevision(number)
    return number


def state_of(point: int | None) -> ConfigState:
    """The configuration state at a resolved point (None: the live state; no threads)."""
    return load_state(include_threads=False) if point is None else state_at(point)


@dataclass(frozen=True)
class Diff:
    """The net change from one point to another (`live` given as the current revision)."""

    from_revision: int
    to_revision: int
    changes: list[Change]


def diff(from_point: int | None, to_point: int | None) -> Diff:
    """The net change from the state at `from_point` to the state at `to_point` (resolved
    points: None is the live state, reported as the current revision)."""
    current = newest_history_revision()
    changes, _ = state_changes(state_of(from_point), state_of(to_point))
    return Diff(
        from_revision=current if from_point is None else from_point,
        to_revision=current if to_point is None else to_point,
        changes=changes,
    )


# --- the config at a revision ------------------------------------------------------------------


def resolved_configs_at(state: ConfigState, revision: int) -> dict:
    """{assistant id: resolved config} of the assistants active in `state`, each with
    `"revision": revision`; the rules are those of assistants.selectors' live configs (active
    links to active tools, a delegating tool only while its delegate is active)."""
    assistants = state.assistants
    tools_of: dict = {pk: [] for pk, row in assistants.items() if row["is_active"]}
    for (assistant_id, tool_id), link in state.links.items():
        tool = state.tools.get(tool_id)
        if (
            assistant_id not in tools_of
            or not link["is_active"]
            or not (tool and tool["is_active"])
        ):
            continue
        delegate_id = tool["assistant"]
        delegate = None if delegate_id is None else assistants.get(delegate_id)
        if delegate_id is not None and not (delegate and delegate["is_active"]):
            continue
        tools_of[assistant_id].append(
            {
                **tool,
                "id": tool_id,
                "sub_assistant": (
                    None if delegate is None else {"id": str(delegate_id), "name": delegate["name"]}
                ),
            }
        )
    # The instructions with every include expanded as the snippets were then.
    snippets = {row["name"]: row["text"] for row in state.snippets.values() if row["is_active"]}
    return {
        str(pk): resolved_config(
            assistant={
                **assistants[pk],
                "id": pk,
                "instructions": expanded_instructions(assistants[pk]["instructions"], snippets),
            },
            tools=tools,
            revision=revision,
        )
        for pk, tools in tools_of.items()
    }


def build_config_at(revision: int, assistant_id: str | None = None) -> dict | None:
    """The resolved config (or, with no assistant, the bundle) as it was at `revision`; None
    for an assistant that did not exist or was inactive then. Raises UnknownRevision."""
    configs = resolved_configs_at(state_at(revision), revision)
    if assistant_id is None:
        return resolved_bundle(configs=configs.values(), revision=revision)
    return configs.get(str(assistant_id))
