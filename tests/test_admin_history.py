"""The admin's side of the history (docs/contract.md "Revisions, history, labels, diff, rollback"):
the change note on the forms, each assistant's and tool's History page, the Revisions page and
its rollback, the Labels page and its moves; and who may do which.

Transactional: each admin request commits its own revision, as in production (inside one test
transaction every request would join the first request's change set).
"""

import json

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from assistants.models import Assistant
from config_backend.history.labels import label_move
from core.models import Label, Revision
from core.store import committed_counter
from snippets.models import Snippet
from tests.factories import assistant_form, link, session, staff_user
from threads.models import UserAssistantThread
from tools.models import AssistantToolLink, Tool

pytestmark = pytest.mark.django_db(transaction=True)

# What staff need to roll back, in the admin as in the API: every permission an import uses.
ROLLBACK = [
    f"{model._meta.app_label}.{action}_{model._meta.model_name}"
    for model in (Assistant, Tool, AssistantToolLink, Snippet)
    for action in ("add", "change", "delete")
]


@pytest.fixture
def root() -> Client:
    return session(User.objects.create_superuser("root"))


def url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


def latest() -> Revision:
    return Revision.objects.get(number=committed_counter())


def edit_assistant(client: Client, assistant: Assistant, note: str = "", **fields):
    data = assistant_form(
        name=assistant.name,
        model=assistant.model,
        instructions=assistant.instructions,
        is_secretary="on" if assistant.is_secretary else None,
        change_note=note,
    )
    data.update(fields)
    return client.post(url("assistants_assistant_change", assistant.pk), data)


def tool_form(tool: Tool, **fields) -> dict:
    return {
        "name": tool.name,
        "tool_type": tool.tool_type,
        "assistant": "",
        "is_active": "on",
        "description": tool.description,
        "input_schema": json.dumps(tool.input_schema),
        **fields,
    }


# The change note.


def test_a_note_on_the_assistant_form_is_recorded_with_its_revision(root, secretary):
    response = edit_assistant(root, secretary, "Shorter answers.", instructions="Be brief.")
    assert response.status_code == 302
    revision = latest()
    assert (revision.author, revision.source, revision.message) == (
        "root",
        "admin",
        "Shorter answers.",
    )
    assert [(c.entity, c.action, list(c.fields)) for c in revision.changes.all()] == [
        ("assistant", "updated", ["instructions"])
    ]


def test_a_note_on_the_tool_and_link_add_forms_is_recorded_with_their_revisions(
    root, secretary, weather_tool
):
    form = tool_form(weather_tool, name="get_time", tool_type="time", change_note="For clocks.")
    assert root.post(url("tools_tool_add"), form).status_code == 302
    assert (latest().message, latest().changes.get().name) == ("For clocks.", "get_time")

    form = {
        "assistant": str(secretary.pk),
        "tool": str(weather_tool.pk),
        "is_active": "on",
        "change_note": "The secretary answers weather questions.",
    }
    assert root.post(url("tools_assistanttoollink_add"), form).status_code == 302
    assert latest().message == "The secretary answers weather questions."
    assert latest().changes.get().name == "Secretary → get_weather"


def test_the_note_field_is_a_small_optional_textarea_with_its_help_text(root, secretary):
    page = root.get(url("assistants_assistant_change", secretary.pk))
    field = page.context["adminform"].form.fields["change_note"]
    assert not field.required and field.max_length == 1000
    html = page.content.decode()
    assert '<textarea name="change_note" cols="80" rows="2"' in html
    assert "Why you made this change; shown in the history." in html
    for name in ("tools_tool_add", "tools_assistanttoollink_add", "assistants_assistant_add"):
        assert 'name="change_note"' in root.get(url(name)).content.decode()


def test_a_note_over_1000_characters_is_refused_and_nothing_is_saved(root, secretary):
    before = committed_counter()
    response = edit_assistant(root, secretary, "x" * 1001, instructions="Be brief.")
    assert response.status_code == 200
    assert "at most 1000 characters" in str(response.context["adminform"].form.errors)
    assert committed_counter() == before
    secretary.refresh_from_db()
    assert secretary.instructions == "Help the user."


def test_a_note_alone_changes_nothing_and_makes_no_revision(root, secretary):
    before = committed_counter()
    assert edit_assistant(root, secretary, "Just a thought.").status_code == 302
    assert committed_counter() == before


# History pages.


def test_the_assistant_history_shows_who_when_the_note_and_each_change_newest_first(
    root, secretary, calendar_assistant, weather_tool
):
    edit_assistant(root, secretary, "Warmer tone.", name="Front desk")
    secretary.refresh_from_db()
    link(secretary, weather_tool)
    edit_assistant(root, calendar_assistant, "Not the secretary's.", model="gpt-4o")

    page = root.get(url("assistants_assistant_history", secretary.pk))
    assert page.status_code == 200
    entries = page.context["entries"]
    assert [(e.revision.source, e.revision.message) for e in entries] == [
        ("command", ""),  # the link, made by a script
        ("admin", "Warmer tone."),
        ("command", ""),  # created by the fixture
    ]
    link_change, rename = entries[0].changes[0], entries[1].changes[0]
    assert (link_change.entity, link_change.name) == ("link", "Front desk → get_weather")
    assert [(f.name, f.old, f.new) for f in rename.fields] == [("name", "Secretary", "Front desk")]
    html = page.content.decode()
    assert "Warmer tone." in html and "root" in html and "Not the secretary" not in html
    assert '<td class="history-old">Secretary</td>' in html


def test_instructions_show_as_a_text_diff_and_markup_in_them_or_the_note_is_escaped(
    root, secretary
):
    secretary.instructions = "Line one.\nLine two.\nLine three."
    secretary.save()
    edit_assistant(
        root,
        secretary,
        "<img src=x onerror=alert(2)>",
        instructions="Line one.\n<script>alert(1)</script>\nLine three.",
    )
    page = root.get(url("assistants_assistant_history", secretary.pk)).content.decode()
    assert "&lt;img src=x onerror=alert(2)&gt;" in page and "<img src=x" not in page
    assert '<span class="diff-removed">-Line two.</span>' in page
    assert '<span class="diff-added">+&lt;script&gt;alert(1)&lt;/script&gt;</span>' in page
    assert '<span class="diff-context"> Line one.</span>' in page
    assert "<script>alert" not in page


def test_the_tool_history_shows_its_schema_as_a_diff_of_indented_json(root, weather_tool):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 80}}}
    form = tool_form(weather_tool, input_schema=json.dumps(schema), change_note="Bound the city.")
    assert root.post(url("tools_tool_change", weather_tool.pk), form).status_code == 302

    page = root.get(url("tools_tool_history", weather_tool.pk))
    change = page.context["entries"][0].changes[0]
    assert [field.name for field in change.fields] == ["input_schema"]
    lines = [line for _, line in change.fields[0].diff]
    assert '+      "maxLength": 80,' in lines  # keys sorted, 2-space indent
    assert "Bound the city." in page.content.decode()


def test_a_history_page_costs_the_same_queries_for_two_revisions_or_ten(root, secretary):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert root.get(url("assistants_assistant_history", secretary.pk)).status_code == 200
        return len(captured)

    edit_assistant(root, secretary, instructions="Two.")
    few = queries()
    for number in range(8):
        edit_assistant(root, secretary, instructions=f"Edit {number}.")
    assert len(root.get(url("assistants_assistant_history", secretary.pk)).context["entries"]) == 10
    assert queries() == few


def test_a_link_has_its_own_history(root, secretary, weather_tool):
    row = link(secretary, weather_tool)
    page = root.get(url("tools_assistanttoollink_history", row.pk))
    assert [c.name for e in page.context["entries"] for c in e.changes] == [
        "Secretary → get_weather"
    ]


def test_history_pages_need_the_view_permission(secretary, weather_tool):
    stranger = session(staff_user("tools.view_tool"))
    assert stranger.get(url("assistants_assistant_history", secretary.pk)).status_code == 403
    assert stranger.get(url("tools_tool_history", weather_tool.pk)).status_code == 200


# The Revisions page.


def test_the_revisions_page_lists_number_author_source_note_and_counts(
    root, secretary, weather_tool
):
    edit_assistant(root, secretary, "Renamed for the launch.", name="Front desk")
    page = root.get(url("config_backend_revision_changelist"))
    assert page.status_code == 200
    rows = list(page.context["cl"].result_list)
    assert [row.number for row in rows] == sorted((row.number for row in rows), reverse=True)
    newest = rows[0]
    assert (newest.author, newest.source, newest.message) == (
        "root",
        "admin",
        "Renamed for the launch.",
    )
    assert (newest.count_assistants, newest.count_tools, newest.count_links) == (1, 0, 0)
    assert "Renamed for the launch." in page.content.decode()


def test_the_revisions_page_costs_the_same_queries_for_two_revisions_or_ten(root, secretary):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            page = root.get(url("config_backend_revision_changelist"))
            assert page.status_code == 200
        return len(captured)

    edit_assistant(root, secretary, instructions="Two.")
    few = queries()
    for number in range(8):
        edit_assistant(root, secretary, "Note.", instructions=f"Edit {number}.")
    assert root.get(url("config_backend_revision_changelist")).context["cl"].result_count == 10
    assert queries() == few


def test_a_revision_page_lists_its_changes_field_by_field(root, secretary):
    edit_assistant(root, secretary, "Tone.", instructions="Be warm.\n<b>Always</b>.")
    page = root.get(url("config_backend_revision_change", latest().pk))
    assert page.status_code == 200
    html = page.content.decode()
    assert '<span class="diff-added">+&lt;b&gt;Always&lt;/b&gt;.</span>' in html
    assert "Tone." in html and "Secretary" in html
    assert "1 change\n" in html


def test_nobody_adds_changes_or_deletes_a_revision(root, secretary):
    revision = latest()
    assert root.get(url("config_backend_revision_add")).status_code == 403
    assert (
        root.post(url("config_backend_revision_delete", revision.pk), {"post": "yes"}).status_code
        == 403
    )
    root.post(url("config_backend_revision_change", revision.pk), {"message": "forged"})
    revision.refresh_from_db()
    assert revision.message == ""
    page = root.get(url("config_backend_revision_changelist"))
    assert page.context["action_form"] is None


def test_the_revisions_page_needs_its_view_permission(secretary):
    stranger = session(staff_user("assistants.view_assistant"))
    assert stranger.get(url("config_backend_revision_changelist")).status_code == 403
    assert stranger.get(url("config_backend_revision_change", latest().pk)).status_code == 403


# Rollback.


def test_rollback_shows_the_diff_then_rolls_back_as_one_revision_with_the_note(root, secretary):
    target = latest()
    edit_assistant(root, secretary, instructions="A mistake.")
    rollback_url = url("config_backend_revision_rollback", target.pk)

    assert (
        "Roll back to this revision"
        in root.get(url("config_backend_revision_change", target.pk)).content.decode()
    )
    page = root.get(rollback_url)
    assert page.status_code == 200
    lines = [line for _, line in page.context["changes"][0].fields[0].diff]
    assert "-A mistake." in lines and "+Help the user." in lines
    assert 'name="prune"' in page.content.decode()
    secretary.refresh_from_db()
    assert secretary.instructions == "A mistake."  # the preview changed nothing

    response = root.post(rollback_url, {"change_note": "Undo the mistake."})
    assert response.status_code == 302
    secretary.refresh_from_db()
    assert secretary.instructions == "Help the user."
    made = latest()
    assert (made.source, made.author, made.message) == ("rollback", "root", "Undo the mistake.")
    assert response.url == url("config_backend_revision_change", made.pk)


def test_rollback_keeps_rows_created_since_unless_pruned(root, secretary):
    target = latest()
    Assistant.objects.create(name="Newcomer", model="m")
    response = root.post(url("config_backend_revision_rollback", target.pk), {}, follow=True)
    assert "kept (not pruned): assistant Newcomer" in response.content.decode()
    assert Assistant.objects.filter(name="Newcomer").exists()

    response = root.post(url("config_backend_revision_rollback", target.pk), {"prune": "on"})
    assert response.status_code == 302
    assert not Assistant.objects.filter(name="Newcomer").exists()


def test_a_refused_rollback_says_why_and_changes_nothing(root, secretary):
    target = latest()
    secretary.is_secretary = False
    secretary.save()
    other = Assistant.objects.create(name="New secretary", model="m", is_secretary=True)
    UserAssistantThread.objects.create(user_id="u", assistant=other, thread_id="t")
    before = committed_counter()
    # At the target, "Secretary" is the secretary; "New secretary", kept, is one too.
    response = root.post(url("config_backend_revision_rollback", target.pk), {}, follow=True)
    assert response.status_code == 200
    assert "Nothing was changed" in response.content.decode()
    assert committed_counter() == before


@pytest.mark.parametrize("missing", ROLLBACK, ids=lambda name: name.split(".")[1])
def test_staff_missing_any_permission_of_a_rollback_see_no_button_and_cannot_forge_it(
    secretary, missing
):
    target = latest()
    secretary.instructions = "Changed."
    secretary.save()
    before = committed_counter()
    rollback_url = url("config_backend_revision_rollback", target.pk)
    held = [name for name in ROLLBACK if name != missing]
    user = session(staff_user("config_backend.view_revision", *held))
    page = user.get(url("config_backend_revision_change", target.pk)).content.decode()
    assert "Roll back to this revision" not in page
    assert user.get(rollback_url).status_code == 403
    assert user.post(rollback_url, {"prune": "on", "change_note": "forged"}).status_code == 403
    assert committed_counter() == before


def test_staff_holding_every_permission_of_a_rollback_run_it(secretary):
    target = latest()
    secretary.instructions = "Changed."
    secretary.save()
    user = staff_user("config_backend.view_revision", *ROLLBACK)
    editor = session(user)
    page = editor.get(url("config_backend_revision_change", target.pk)).content.decode()
    assert "Roll back to this revision" in page
    assert (
        'name="prune"'
        in editor.get(url("config_backend_revision_rollback", target.pk)).content.decode()
    )
    response = editor.post(url("config_backend_revision_rollback", target.pk), {})
    assert response.status_code == 302
    secretary.refresh_from_db()
    assert secretary.instructions == "Help the user."
    assert (latest().source, latest().author) == ("rollback", user.username)


# Labels.


@pytest.fixture
def labelled(secretary):
    """`staging` and `production` at the secretary's creation; then its instructions change."""
    first = latest().number
    for name in ("staging", "production"):
        label_move(name=name, revision=first, author="setup")
    secretary.instructions = "Help the user, briefly."
    secretary.save()
    return first, latest().number


def test_the_labels_page_lists_name_revision_and_whether_protected(root, labelled):
    first, _ = labelled
    page = root.get(url("config_backend_label_changelist"))
    assert page.status_code == 200
    assert [(label.name, label.revision) for label in page.context["cl"].result_list] == [
        ("production", first),
        ("staging", first),
    ]
    html = page.content.decode()
    assert html.count(">Move</a>") == 2
    assert 'alt="True"' in html  # production is protected


def test_a_label_moves_after_a_preview_of_the_diff_and_a_confirmation(root, labelled):
    first, second = labelled
    move_url = url("config_backend_label_move", "staging")
    assert root.get(move_url).status_code == 200

    preview = root.post(move_url, {"target": "live", "change_note": "Ship it."})
    assert preview.status_code == 200
    assert preview.context["target"] == second
    lines = [line for _, line in preview.context["changes"][0].fields[0].diff]
    assert "-Help the user." in lines and "+Help the user, briefly." in lines
    assert 'name="confirm"' in preview.content.decode()
    assert Label.objects.get(name="staging").revision == first  # not yet

    done = root.post(move_url, {"target": str(second), "change_note": "Ship it.", "confirm": "1"})
    assert done.status_code == 302
    assert Label.objects.get(name="staging").revision == second
    page = root.get(url("config_backend_label_change", "staging")).content.decode()
    assert "Ship it." in page and "root" in page


def test_a_move_to_an_unknown_revision_is_an_error_on_the_form(root, labelled):
    response = root.post(url("config_backend_label_move", "staging"), {"target": "99999"})
    assert response.status_code == 200
    assert "No revision 99999" in str(response.context["form"].errors)
    response = root.post(url("config_backend_label_move", "staging"), {"target": "soon"})
    assert "A revision number or `live`." in str(response.context["form"].errors)


def test_staff_without_the_move_permissions_see_no_button_and_cannot_forge_a_move(labelled):
    first, second = labelled
    confirm = {"target": str(second), "confirm": "1"}
    viewer = session(staff_user("config_backend.view_label"))
    assert ">Move</a>" not in viewer.get(url("config_backend_label_changelist")).content.decode()
    for name in ("staging", "production"):
        assert viewer.get(url("config_backend_label_move", name)).status_code == 403
        assert viewer.post(url("config_backend_label_move", name), confirm).status_code == 403

    mover = session(staff_user("config_backend.view_label", "config_backend.move_label"))
    html = mover.get(url("config_backend_label_changelist")).content.decode()
    assert html.count(">Move</a>") == 1  # staging only
    assert (
        "Move this label"
        not in mover.get(url("config_backend_label_change", "production")).content.decode()
    )
    assert mover.post(url("config_backend_label_move", "production"), confirm).status_code == 403
    assert Label.objects.get(name="production").revision == first
    assert mover.post(url("config_backend_label_move", "staging"), confirm).status_code == 302
    assert Label.objects.get(name="staging").revision == second

    boss = session(
        staff_user(
            "config_backend.view_label",
            "config_backend.move_label",
            "config_backend.move_protected_label",
        )
    )
    assert boss.post(url("config_backend_label_move", "production"), confirm).status_code == 302
    assert Label.objects.get(name="production").revision == second


def test_nobody_changes_or_deletes_a_label_row_here(root, labelled):
    assert (
        root.post(url("config_backend_label_delete", "staging"), {"post": "yes"}).status_code == 403
    )
    assert Label.objects.filter(name="staging").exists()


def test_staff_create_the_first_production_label_after_a_confirmation(root, secretary):
    revision = latest().number
    add_url = url("config_backend_label_add")
    assert (
        'href="/admin/config_backend/label/add/"'
        in root.get(url("config_backend_label_changelist")).content.decode()
    )

    preview = root.post(add_url, {"name": "production", "target": "live", "change_note": "Go."})
    assert preview.status_code == 200 and preview.context["target"] == revision
    assert 'name="confirm"' in preview.content.decode()
    assert not Label.objects.exists()  # not yet

    form = {"name": "production", "target": str(revision), "change_note": "Go.", "confirm": "1"}
    done = root.post(add_url, form)
    assert done.status_code == 302
    assert done.url == url("config_backend_label_change", "production")
    assert Label.objects.get(name="production").revision == revision
    page = root.get(done.url).content.decode()
    assert "Go." in page and "root" in page


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"name": "Production", "target": "live"}, "name", "A label name is a lowercase letter"),
        ({"name": "live", "target": "live"}, "name", "`live` is reserved"),
        ({"name": "staging", "target": "live"}, "name", "Label staging exists: move it instead."),
        ({"name": "canary", "target": "99999"}, "target", "No revision 99999"),
        ({"name": "canary", "target": "soon"}, "target", "A revision number or `live`."),
    ],
)
def test_a_label_that_cannot_be_created_is_an_error_on_the_form(
    root, labelled, form, field, message
):
    before = list(Label.objects.values_list("name", "revision"))
    response = root.post(url("config_backend_label_add"), {**form, "confirm": "1"})
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert list(Label.objects.values_list("name", "revision")) == before


def test_creating_a_label_needs_the_move_permissions_of_its_name(secretary):
    confirm = {"target": "live", "confirm": "1"}
    viewer = session(staff_user("config_backend.view_label"))
    assert "label/add/" not in viewer.get(url("config_backend_label_changelist")).content.decode()
    assert viewer.get(url("config_backend_label_add")).status_code == 403
    assert (
        viewer.post(url("config_backend_label_add"), {"name": "canary", **confirm}).status_code
        == 403
    )

    mover = session(staff_user("config_backend.view_label", "config_backend.move_label"))
    refused = mover.post(url("config_backend_label_add"), {"name": "production", **confirm})
    assert "move_protected_label" in " ".join(refused.context["form"].errors["name"])
    assert (
        mover.post(url("config_backend_label_add"), {"name": "canary", **confirm}).status_code
        == 302
    )
    assert list(Label.objects.values_list("name", flat=True)) == ["canary"]


def test_link_and_tool_rows_are_named_in_the_history(root, secretary, weather_tool):
    # A deleted link keeps its name: the history shows what it was.
    row = link(secretary, weather_tool)
    AssistantToolLink.objects.filter(pk=row.pk).get().delete()
    page = root.get(url("assistants_assistant_history", secretary.pk))
    assert [c.action for c in page.context["entries"][0].changes] == ["deleted"]
