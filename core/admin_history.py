"""The configuration's history in the admin (SPEC "Revisions"): each object's history page,
and how a change reads there and on the Revisions, Labels and rollback pages.

A change is shown field by field, old → new; long text (instructions, descriptions) and JSON
(input schemas) as a unified line diff, which is what staff can read for a one-word edit in a
page of instructions. Values reach the page through the template, which escapes them.
"""

import difflib
import json
from dataclasses import dataclass

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import PAGE_VAR
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.template.response import TemplateResponse

from core.models import RevisionChange

# Text fields shown as a line diff rather than old → new.
TEXT_DIFF_FIELDS = frozenset({"instructions", "description"})
# Revisions per page of an object's history.
HISTORY_PAGE_SIZE = 50


@dataclass(frozen=True)
class FieldChange:
    """One field of a change as shown: old → new, or a diff (a list of (kind, line))."""

    name: str
    old: str = ""
    new: str = ""
    diff: tuple = ()


@dataclass(frozen=True)
class ShownChange:
    """One row's change as shown."""

    entity: str
    object_id: str
    name: str
    action: str
    fields: tuple


def _shown(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _as_lines(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.splitlines()
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True).splitlines()


def _diff_kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "added", "-": "removed"}.get(line[:1], "context")


def text_diff(old, new) -> tuple:
    """A unified line diff of two values (JSON indented), as (kind, line) pairs."""
    lines = difflib.unified_diff(
        _as_lines(old), _as_lines(new), "before", "after", lineterm="", n=3
    )
    return tuple((_diff_kind(line), line) for line in lines)


def field_change(name: str, old, new) -> FieldChange:
    if name in TEXT_DIFF_FIELDS or isinstance(old, dict | list) or isinstance(new, dict | list):
        diff = text_diff(old, new)
        if diff:  # none between None and "": shown as values
            return FieldChange(name, diff=diff)
    return FieldChange(name, old=_shown(old), new=_shown(new))


def shown_change(change) -> ShownChange:
    """A RevisionChange or a core.changes.Change, as the history templates show it."""
    return ShownChange(
        entity=change.entity,
        object_id=change.object_id,
        name=change.name,
        action=change.action,
        fields=tuple(
            field_change(name, values["old"], values["new"])
            for name, values in change.fields.items()
        ),
    )


@dataclass(frozen=True)
class RevisionEntry:
    """A revision and the changes of it shown on a page."""

    revision: object
    changes: list


def history_entries(changes_query, page_number, *, page_size=HISTORY_PAGE_SIZE):
    """A page of the revisions that made the changes of `changes_query` (a RevisionChange
    query), newest first, each with its changes; and the page. Three queries, however many
    revisions the page shows."""
    revision_ids = (
        changes_query.order_by("-revision__number")
        .values_list("revision_id", "revision__number")
        .distinct()
    )
    page = Paginator(revision_ids, page_size).get_page(page_number)
    ids = [revision_id for revision_id, _ in page.object_list]
    entries: dict[int, RevisionEntry] = {}
    for change in (
        changes_query.filter(revision_id__in=ids)
        .select_related("revision")
        .order_by("-revision__number", "id")
    ):
        entry = entries.setdefault(change.revision_id, RevisionEntry(change.revision, []))
        entry.changes.append(shown_change(change))
    return list(entries.values()), page


class RevisionHistoryAdmin(admin.ModelAdmin):
    """The History page shows the configuration's history of the object (SPEC "Revisions"):
    per revision, who, when, from where, the note and the fields changed."""

    history_entity: str  # a RevisionChange.Entity
    object_history_template = "admin/history/object_history.html"

    def history_filter(self, obj) -> Q:
        """The object's changes among RevisionChange rows."""
        return Q(entity=self.history_entity, object_id=str(obj.pk))

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        entries, page = history_entries(
            RevisionChange.objects.filter(self.history_filter(obj)), request.GET.get(PAGE_VAR)
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"History: {obj}",
            "subtitle": None,
            "object": obj,
            "opts": self.opts,
            "entries": entries,
            "page_obj": page,
            "page_var": PAGE_VAR,
            "page_range": page.paginator.get_elided_page_range(page.number),
            "module_name": str(self.opts.verbose_name_plural).capitalize(),
            "preserved_filters": self.get_preserved_filters(request),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.object_history_template, context)
