"""The configuration's history in the admin (docs/contract.md "Revisions"): each object's history
page, and how a change reads there and on the Revisions, Labels and rollback pages.

A change is shown field by field, old → new; long text (instructions, descriptions) and JSON
(input schemas) as a unified line diff, which is what staff can read for a one-word edit in a
page of instructions. Values reach the page through the template, which escapes them.

A page shows at most FIELD_SHOWN_LINES lines and FIELD_SHOWN_CHARS characters of each field,
saying how much it left out, so its size follows the number of changes it lists (a page of
them), not the size of the texts; each field of a recorded change has its own page showing it
whole (`field_view`). Only what is shown is bounded: the changes themselves, which rollback and
labels use, are untouched.
"""

import difflib
import json
from dataclasses import dataclass, replace

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import PAGE_VAR
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext, pgettext_lazy

from core.models import RevisionChange

# Text fields shown as a line diff rather than old → new.
TEXT_DIFF_FIELDS = frozenset({"instructions", "description", "text"})
# Revisions per page of an object's history.
HISTORY_PAGE_SIZE = 20
# The most a page shows of one field of a change: its diff's first lines, and of a diff or a
# value, its first characters (a prompt of one long line is bounded too). A page of 20
# revisions is then at most about 20 × 20,000 characters of text, whatever the instructions.
FIELD_SHOWN_LINES = 200
FIELD_SHOWN_CHARS = 20_000


# A change's entity and action as the pages say them (the stored values are the API's words).
ENTITY_NAMES = {
    "assistant": pgettext_lazy("changed entity", "assistant"),
    "tool": pgettext_lazy("changed entity", "tool"),
    "link": pgettext_lazy("changed entity", "link"),
}
ACTION_NAMES = {
    "created": pgettext_lazy("change action", "created"),
    "updated": pgettext_lazy("change action", "updated"),
    "deleted": pgettext_lazy("change action", "deleted"),
}


def change_names(entity: str, action: str) -> tuple[str, str]:
    """What a change's entity and action read as (a value not listed reads as itself)."""
    return ENTITY_NAMES.get(entity, entity), ACTION_NAMES.get(action, action)


@dataclass(frozen=True)
class FieldChange:
    """One field of a change as shown: old → new, or a diff (a list of (kind, line)); `cut`
    says what was left out, if anything, and `full_url` where the field shows whole."""

    name: str
    old: str = ""
    new: str = ""
    diff: tuple = ()
    cut: str = ""
    full_url: str = ""


@dataclass(frozen=True)
class ShownChange:
    """One row's change as shown."""

    entity: str
    object_id: str
    name: str
    action: str
    fields: tuple
    entity_name: str = ""
    action_name: str = ""


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


def text_diff(old, new, *, whole: bool = False) -> tuple:
    """A unified line diff of two values (JSON indented), as (kind, line) pairs; `whole`: with
    every unchanged line as context, so both texts can be read in full."""
    old_lines, new_lines = _as_lines(old), _as_lines(new)
    context = max(len(old_lines), len(new_lines)) if whole else 3
    lines = difflib.unified_diff(old_lines, new_lines, "before", "after", lineterm="", n=context)
    return tuple((_diff_kind(line), line) for line in lines)


def _bounded_diff(diff: tuple) -> tuple[tuple, str]:
    """The start of a diff a page shows (FIELD_SHOWN_LINES, FIELD_SHOWN_CHARS), and what it
    leaves out, said in words ("" when nothing)."""
    shown, room = [], FIELD_SHOWN_CHARS
    for kind, line in diff[:FIELD_SHOWN_LINES]:
        if room <= 0:
            break
        shown.append((kind, line[:room]))
        room -= len(line)
    if len(shown) == len(diff) and room >= 0:
        return diff, ""
    left_out = sum(len(line) for _, line in diff) - sum(len(line) for _, line in shown)
    lines = len(diff) - len(shown)
    return tuple(shown), (
        gettext(
            "%(characters)s more characters of this diff (%(lines)s more lines) are not shown here."
        )
        % {"characters": f"{left_out:,}", "lines": f"{lines:,}"}
    )


def _bounded_value(value) -> tuple[str, bool]:
    text = _shown(value)
    if len(text) <= FIELD_SHOWN_CHARS:
        return text, False
    return text[:FIELD_SHOWN_CHARS] + " …", True


def field_change(name: str, old, new, *, whole: bool = False) -> FieldChange:
    """One field of a change as shown: bounded (FIELD_SHOWN_*), or `whole`."""
    if name in TEXT_DIFF_FIELDS or isinstance(old, dict | list) or isinstance(new, dict | list):
        diff = text_diff(old, new, whole=whole)
        if diff:  # none between None and "": shown as values
            if whole:
                return FieldChange(name, diff=diff)
            shown, cut = _bounded_diff(diff)
            return FieldChange(name, diff=shown, cut=cut)
    if whole:
        return FieldChange(name, old=_shown(old), new=_shown(new))
    (old_text, old_cut), (new_text, new_cut) = _bounded_value(old), _bounded_value(new)
    cut = (
        gettext("Values longer than %(limit)s characters are cut here.")
        % {"limit": f"{FIELD_SHOWN_CHARS:,}"}
        if old_cut or new_cut
        else ""
    )
    return FieldChange(name, old=old_text, new=new_text, cut=cut)


def shown_change(change, *, full_url=None) -> ShownChange:
    """A RevisionChange or a core.changes.Change, as the history templates show it.
    `full_url(change, field name)`: the page showing a field whole, linked from a field that
    was cut (a recorded change only: a computed diff's changes have no page)."""
    fields = []
    for name, values in change.fields.items():
        field = field_change(name, values["old"], values["new"])
        if field.cut and full_url is not None and getattr(change, "pk", None) is not None:
            field = replace(field, full_url=full_url(change, name))
        fields.append(field)
    entity_name, action_name = change_names(change.entity, change.action)
    return ShownChange(
        entity=change.entity,
        object_id=change.object_id,
        name=change.name,
        action=change.action,
        fields=tuple(fields),
        entity_name=entity_name,
        action_name=action_name,
    )


def field_page(request, model_admin, *, change, field: str, **context):
    """The page showing one field of a recorded change whole: its diff with every line, or
    its old and new values. 404 for a field the change did not touch."""
    if field not in change.fields:
        raise Http404(gettext("This change did not touch that field."))
    values = change.fields[field]
    title = gettext("%(field)s of %(name)s, revision %(number)s") % {
        "field": field,
        "name": change.name,
        "number": change.revision.number,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(
        request,
        "admin/history/field_full.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "opts": model_admin.opts,
            "change": change,
            "change_names": change_names(change.entity, change.action),
            "revision": change.revision,
            "field": field_change(field, values["old"], values["new"], whole=True),
            **context,
        },
    )


@dataclass(frozen=True)
class RevisionEntry:
    """A revision and the changes of it shown on a page."""

    revision: object
    changes: list


def history_entries(changes_query, page_number, *, page_size=HISTORY_PAGE_SIZE, full_url=None):
    """A page of the revisions that made the changes of `changes_query` (a RevisionChange
    query), newest first, each with its changes; and the page. Three queries, however many
    revisions the page shows. `full_url`: as for shown_change."""
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
        entry.changes.append(shown_change(change, full_url=full_url))
    return list(entries.values()), page


class RevisionHistoryAdmin(admin.ModelAdmin):
    """The History page shows the configuration's history of the object (docs/contract.md
    "Revisions"): per revision, who, when, from where, the note and the fields changed."""

    history_entity: str  # a RevisionChange.Entity
    object_history_template = "admin/history/object_history.html"

    def history_filter(self, obj) -> Q:
        """The object's changes among RevisionChange rows."""
        return Q(entity=self.history_entity, object_id=str(obj.pk))

    def _field_url_name(self) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_history_field"

    def get_urls(self):
        return [
            path(
                "<path:object_id>/history/<int:change_id>/<str:field>/",
                self.admin_site.admin_view(self.history_field_view),
                name=self._field_url_name(),
            ),
            *super().get_urls(),
        ]

    def _history_object(self, request, object_id):
        """The object whose history is asked for, if it exists (else None: the caller
        redirects) and the user may see it (else PermissionDenied)."""
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        return obj

    def history_view(self, request, object_id, extra_context=None):
        obj = self._history_object(request, object_id)
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)

        def full_url(change, field):
            return reverse(f"admin:{self._field_url_name()}", args=[obj.pk, change.pk, field])

        entries, page = history_entries(
            RevisionChange.objects.filter(self.history_filter(obj)),
            request.GET.get(PAGE_VAR),
            full_url=full_url,
        )
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("History: %(object)s") % {"object": obj},
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

    def history_field_view(self, request, object_id, change_id, field):
        """One field of one change in the object's history, whole (linked from the History
        page where it was cut); the History page's permission."""
        obj = self._history_object(request, object_id)
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        change = (
            RevisionChange.objects.filter(self.history_filter(obj), pk=change_id)
            .select_related("revision")
            .first()
        )
        if change is None:
            raise Http404(gettext("No such change in this history."))
        return field_page(
            request,
            self,
            change=change,
            field=field,
            object=obj,
            module_name=str(self.opts.verbose_name_plural).capitalize(),
        )


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nobody adds, changes or deletes these rows here: the history's services write them."""

    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _page(self, request, template: str, title: str, **context):
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "title": title,
                "subtitle": None,
                "opts": self.opts,
                "page_var": PAGE_VAR,
                **context,
            },
        )
