"""Every admin page and action asks for the permission its effect needs.

A staff user holding only view permissions sees the config but changes nothing: no action is
offered, a forged action or form POST is refused or ignored, and the rows and the runtime's
config stay as they were.
"""

import re
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from assistants.models import Assistant
from core.models import APIKey, Label, LabelRequest, Revision
from tests.factories import key_client, staff_user
from threads.models import UserAssistantThread
from tools.models import AssistantToolLink, Tool

pytestmark = pytest.mark.django_db

ADMIN_MODELS = [Assistant, Tool, AssistantToolLink, UserAssistantThread, APIKey]
# The history's pages: nobody adds, changes or deletes their rows, and they have no actions;
# their views and permissions are tested in tests/test_admin_history.py.
READ_ONLY_ADMIN_MODELS = [Revision, Label, LabelRequest]
# Our admin views besides Django's own (list, add, change, delete, history): each writes only
# after a confirmation, for users holding its permissions (tests/test_admin_history.py).
CUSTOM_VIEWS = {
    "config_backend_revision_rollback",
    "config_backend_label_move",
    "config_backend_label_rollout",
    "config_backend_label_promote",
    "config_backend_label_abort",
    # Read-only: one field of a change, whole, under the permission of the page linking to it
    # (a History page, a revision's page; tests/test_history_bounds.py).
    "config_backend_revision_field",
    "assistants_assistant_history_field",
    "tools_tool_history_field",
    "tools_assistanttoollink_history_field",
    # Read-only, for staff who may view assistants (and tools, for the graph):
    # tests/test_admin_agent_form.py, tests/test_delegation_graph.py.
    "assistants_assistant_preview",
    "assistants_assistant_graph",
    # The Label requests page's buttons, POSTs under the approvals' own rules (approvers, never
    # the requester; the requester cancels): tests/test_label_approvals.py.
    "config_backend_labelrequest_approve",
    "config_backend_labelrequest_reject",
    "config_backend_labelrequest_cancel",
}
DJANGO_VIEWS = ("_changelist", "_add", "_change", "_delete", "_history")
OUR_APPS = ["config_backend", "assistants", "tools", "threads", "rest_framework_api_key"]

ACTIONS = [
    (Assistant, "activate_selected"),
    (Assistant, "deactivate_selected"),
    (Assistant, "delete_selected"),
    (Tool, "activate_selected"),
    (Tool, "deactivate_selected"),
    (Tool, "delete_selected"),
    (AssistantToolLink, "activate_selected"),
    (AssistantToolLink, "deactivate_selected"),
    (AssistantToolLink, "delete_selected"),
    (UserAssistantThread, "delete_selected"),
    (APIKey, "revoke_selected"),
    (APIKey, "delete_selected"),
]


def model_id(model) -> str:
    return model._meta.model_name


def action_id(value) -> str:
    return model_id(value) if isinstance(value, type) else str(value)


def permission(model, action: str) -> str:
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


def staff_session(*permissions: str) -> Client:
    """An admin session (Django's test Client) of a staff user with exactly these permissions."""
    client = Client()
    client.force_login(staff_user(*permissions))
    return client


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def offered_actions(client: Client, model) -> set[str]:
    response = client.get(admin_url(model, "changelist"))
    assert response.status_code == 200
    form = response.context["action_form"]
    return set() if form is None else {name for name, _ in form.fields["action"].choices if name}


@pytest.fixture
def world(secretary, calendar_assistant, weather_tool):
    reader = key_client("read")
    world = SimpleNamespace(
        secretary=secretary,
        delegate=calendar_assistant,
        tool=weather_tool,
        link=AssistantToolLink.objects.create(assistant=secretary, tool=weather_tool),
        thread=UserAssistantThread.objects.create(
            user_id="user-1", assistant=secretary, thread_id="thread-1"
        ),
        key=APIKey.objects.get(),
        reader=reader,
    )
    world.rows = {
        Assistant: world.secretary,
        Tool: world.tool,
        AssistantToolLink: world.link,
        UserAssistantThread: world.thread,
        APIKey: world.key,
    }
    runtime_config(world)  # the key's first use writes `last_used_at`; later ones don't
    return world


@pytest.fixture
def viewer():
    return staff_session(*(permission(model, "view") for model in ADMIN_MODELS))


def runtime_config(world) -> tuple:
    """What the runtime reads with its read key: status, body and ETag of the config."""
    response = world.reader.get(f"/api/v1/assistants/{world.secretary.pk}/config/")
    return response.status_code, response.content, response.headers.get("ETag")


def stored_rows() -> dict:
    rows = {
        model._meta.label: list(model.objects.order_by("pk").values()) for model in ADMIN_MODELS
    }
    for row in rows[APIKey._meta.label]:
        # Recorded on use, once an hour: an hour boundary during a test is not a change.
        row.pop("last_used_at")
    return rows


def observed(world) -> tuple:
    """Everything a write could touch: the stored rows and the runtime's config."""
    return stored_rows(), runtime_config(world)


def change_form(world, model) -> dict:
    """A valid change form POST for the model's row, changing something visible."""
    if model is Assistant:
        return {
            "name": "Renamed",
            "assistant_type": "llm",
            "model": "gpt-4o",
            "openai_assistant_id": "",
            "instructions": "Changed.",
            "is_secretary": "on",
            # unchecked: is_active; and the inline row's is_active
            "tool_links-TOTAL_FORMS": "1",
            "tool_links-INITIAL_FORMS": "1",
            "tool_links-MIN_NUM_FORMS": "0",
            "tool_links-MAX_NUM_FORMS": "1000",
            "tool_links-0-id": str(world.link.pk),
            "tool_links-0-assistant": str(world.secretary.pk),
            "tool_links-0-tool": str(world.tool.pk),
        }
    if model is Tool:
        return {
            "name": "get_weather_now",
            "tool_type": "weather",
            "assistant": "",
            "description": "Changed.",
            "input_schema": '{"type": "object", "properties": {}}',
        }
    if model is AssistantToolLink:
        return {"assistant": str(world.secretary.pk), "tool": str(world.tool.pk)}
    if model is UserAssistantThread:
        return {
            "user_id": "user-1",
            "assistant": str(world.secretary.pk),
            "thread_id": "thread-2",
            "last_used_0": "2030-01-01",
            "last_used_1": "12:00:00",
        }
    return {
        "name": "renamed",
        "scope": "write",
        "expiry_date_0": "",
        "expiry_date_1": "",
        "revoked": "on",
    }


def add_form(world, model) -> dict:
    """A valid add form POST for a new row of the model."""
    if model is Assistant:
        return {
            "name": "Planner",
            "assistant_type": "llm",
            "model": "gpt-4o-mini",
            "openai_assistant_id": "",
            "instructions": "Plan things.",
            "is_active": "on",
            "tool_links-TOTAL_FORMS": "1",
            "tool_links-INITIAL_FORMS": "0",
            "tool_links-MIN_NUM_FORMS": "0",
            "tool_links-MAX_NUM_FORMS": "1000",
            "tool_links-0-tool": str(world.tool.pk),
            "tool_links-0-is_active": "on",
        }
    if model is Tool:
        return {
            "name": "get_time",
            "tool_type": "time",
            "assistant": "",
            "is_active": "on",
            "description": "The time.",
            "input_schema": '{"type": "object", "properties": {}}',
        }
    if model is AssistantToolLink:
        return {
            "assistant": str(world.delegate.pk),
            "tool": str(world.tool.pk),
            "is_active": "on",
        }
    if model is UserAssistantThread:
        return {
            "user_id": "user-2",
            "assistant": str(world.secretary.pk),
            "thread_id": "thread-3",
            "last_used_0": "2030-01-01",
            "last_used_1": "12:00:00",
        }
    return {"name": "new", "scope": "write", "expiry_date_0": "", "expiry_date_1": ""}


# What is covered here is everything there is.


def test_every_admin_and_action_of_ours_is_covered_here(rf):
    registered = {
        model
        for app in OUR_APPS
        for model in apps.get_app_config(app).get_models()
        if admin.site.is_registered(model)
    }
    assert registered == set(ADMIN_MODELS) | set(READ_ONLY_ADMIN_MODELS)

    request = rf.get("/")
    request.user = User(is_staff=True, is_superuser=True)
    every_action = {
        (model, name)
        for model in registered
        for name in admin.site.get_model_admin(model).get_actions(request)
    }
    assert every_action == set(ACTIONS)

    views = {
        pattern.name
        for model in registered
        for pattern in admin.site.get_model_admin(model).get_urls()
        if pattern.name and not pattern.name.endswith(DJANGO_VIEWS)
    }
    assert views == CUSTOM_VIEWS


@pytest.mark.parametrize("model", READ_ONLY_ADMIN_MODELS, ids=model_id)
def test_not_even_a_superuser_may_add_change_or_delete_history_rows(rf, model):
    request = rf.get("/")
    request.user = User(is_staff=True, is_superuser=True)
    model_admin = admin.site.get_model_admin(model)
    assert model_admin.has_view_permission(request)
    # A label is created on its own page, by the service that moves labels, with a move's
    # permissions (tests/test_admin_history.py); no other history row is added here.
    assert model_admin.has_add_permission(request) == (model is Label)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


# Actions.


@pytest.mark.parametrize("model, action", ACTIONS, ids=action_id)
def test_a_view_only_user_is_not_offered_the_action(world, viewer, model, action):
    assert action not in offered_actions(viewer, model)
    page = viewer.get(admin_url(model, "changelist")).content.decode()
    assert f'value="{action}"' not in page


@pytest.mark.parametrize("select_across", ["0", "1"], ids=["selected", "select_across"])
@pytest.mark.parametrize("model, action", ACTIONS, ids=action_id)
def test_a_view_only_user_cannot_run_the_action_by_forging_its_post(
    world, viewer, model, action, select_across
):
    before = observed(world)
    viewer.post(
        admin_url(model, "changelist"),
        {
            "action": action,
            "index": "0",
            "select_across": select_across,
            "_selected_action": [str(world.rows[model].pk)],
            "post": "yes",  # delete_selected's confirmation
        },
    )
    assert observed(world) == before


def test_a_view_only_user_cannot_deactivate_assistants(world, viewer):
    # The probe's request, verbatim.
    response = viewer.post(
        "/admin/assistants/assistant/",
        {"action": "deactivate_selected", "_selected_action": [str(world.secretary.pk)]},
        follow=True,
    )
    assert "1 deactivated." not in response.content.decode()
    world.secretary.refresh_from_db()
    assert world.secretary.is_active


def test_a_view_only_user_cannot_revoke_api_keys(world, viewer):
    before = runtime_config(world)
    viewer.post(
        "/admin/config_backend/apikey/",
        {
            "action": "revoke_selected",
            "select_across": "1",
            "index": "0",
            "_selected_action": [str(world.key.pk)],
        },
    )
    assert not APIKey.objects.filter(revoked=True).exists()
    assert runtime_config(world) == before


CHANGE_ACTIONS = [
    (Assistant, "activate_selected", "is_active", True),
    (Assistant, "deactivate_selected", "is_active", False),
    (Tool, "activate_selected", "is_active", True),
    (Tool, "deactivate_selected", "is_active", False),
    (AssistantToolLink, "activate_selected", "is_active", True),
    (AssistantToolLink, "deactivate_selected", "is_active", False),
    (APIKey, "revoke_selected", "revoked", True),
]


@pytest.mark.parametrize("model, action, field, value", CHANGE_ACTIONS, ids=action_id)
def test_a_user_who_may_change_rows_runs_the_action(world, model, action, field, value):
    row = world.rows[model]
    setattr(row, field, not value)
    if model is not APIKey:  # a revoked key cannot be un-revoked: it starts usable
        row.save()
    before = runtime_config(world)
    editor = staff_session(permission(model, "view"), permission(model, "change"))
    assert action in offered_actions(editor, model)
    assert "delete_selected" not in offered_actions(editor, model)

    editor.post(
        admin_url(model, "changelist"),
        {"action": action, "index": "0", "_selected_action": [str(row.pk)]},
    )

    row.refresh_from_db()
    assert getattr(row, field) is value
    assert runtime_config(world) != before


# Forms: change, add, delete.


@pytest.mark.parametrize("model", ADMIN_MODELS, ids=model_id)
def test_a_view_only_user_sees_the_change_form_read_only(world, viewer, model):
    response = viewer.get(admin_url(model, "change", world.rows[model].pk))
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    assert response.context["adminform"].form.fields == {}


@pytest.mark.parametrize("model", ADMIN_MODELS, ids=model_id)
def test_a_view_only_user_cannot_save_the_change_form(world, viewer, model):
    before = observed(world)
    response = viewer.post(
        admin_url(model, "change", world.rows[model].pk), change_form(world, model)
    )
    assert response.status_code == 403
    assert observed(world) == before


@pytest.mark.parametrize("model", ADMIN_MODELS, ids=model_id)
def test_a_view_only_user_cannot_add(world, viewer, model):
    before = observed(world)
    assert viewer.get(admin_url(model, "add")).status_code == 403
    assert viewer.post(admin_url(model, "add"), add_form(world, model)).status_code == 403
    assert observed(world) == before


@pytest.mark.parametrize("model", ADMIN_MODELS, ids=model_id)
def test_a_view_only_user_cannot_delete(world, viewer, model):
    before = observed(world)
    url = admin_url(model, "delete", world.rows[model].pk)
    assert viewer.get(url).status_code == 403
    assert viewer.post(url, {"post": "yes"}).status_code == 403
    assert observed(world) == before


@pytest.mark.parametrize("model", ADMIN_MODELS, ids=model_id)
def test_the_forms_refused_above_are_saved_for_a_superuser(world, model):
    # Proves the forms above are valid changes, so their refusal is what kept the rows.
    superuser = Client()
    superuser.force_login(User.objects.create_superuser("root"))
    before = stored_rows()
    response = superuser.post(
        admin_url(model, "change", world.rows[model].pk), change_form(world, model)
    )
    assert response.status_code == 302
    changed = stored_rows()
    assert changed != before
    added = superuser.post(admin_url(model, "add"), add_form(world, model))
    # A new API key is shown in the answer to the form (never redirected to: see test_api_keys).
    assert added.status_code == (200 if model is APIKey else 302)
    assert stored_rows() != changed


# Inlines.


def test_a_user_who_can_only_view_assistants_cannot_edit_their_links_inline(world):
    before = observed(world)
    user = staff_session(
        permission(Assistant, "view"),
        *(permission(AssistantToolLink, action) for action in ("view", "add", "change", "delete")),
    )
    response = user.post(
        admin_url(Assistant, "change", world.secretary.pk), change_form(world, Assistant)
    )
    assert response.status_code == 403
    assert observed(world) == before


def test_a_user_who_can_only_view_links_cannot_edit_them_in_the_assistant_form(world):
    links = list(AssistantToolLink.objects.values())
    user = staff_session(
        permission(Assistant, "view"),
        permission(Assistant, "change"),
        permission(AssistantToolLink, "view"),
    )
    data = change_form(world, Assistant)  # deactivates the existing link row
    data.update(
        {  # and adds one
            "tool_links-TOTAL_FORMS": "2",
            "tool_links-1-assistant": str(world.secretary.pk),
            "tool_links-1-tool": str(Tool.objects.create(name="get_time", tool_type="time").pk),
            "tool_links-1-is_active": "on",
        }
    )
    response = user.post(admin_url(Assistant, "change", world.secretary.pk), data)
    assert response.status_code == 302  # the assistant's own fields may change
    world.secretary.refresh_from_db()
    assert world.secretary.name == "Renamed"
    assert list(AssistantToolLink.objects.values()) == links


# API keys: the hash stays out of pages and URLs.


def test_the_key_list_shown_to_a_view_only_user_contains_no_key_hash(world, viewer):
    key_client("write")
    page = viewer.get(admin_url(APIKey, "changelist")).content.decode()
    hashes = [api_key.hashed_key.rpartition("$")[2] for api_key in APIKey.objects.all()]
    assert len(hashes) == 2
    assert all(hashed not in page for hashed in hashes)
    for api_key in APIKey.objects.all():
        change_page = viewer.get(admin_url(APIKey, "change", api_key.pk)).content.decode()
        assert api_key.hashed_key.rpartition("$")[2] not in change_page


def test_the_view_site_link_of_the_admin_leads_to_a_page_that_answers(db):
    staff = staff_session()
    index = staff.get("/admin/").content.decode()
    href = re.search(r'<a href="([^"]+)">View site</a>', index)
    assert href, "the admin header has no View site link"
    assert staff.get(href.group(1)).status_code == 200
