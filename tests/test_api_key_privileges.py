"""A key never carries more than its maker may do (issue 18, finding 1).

Staff who may add or change API keys make, in the admin or with `create_api_key --as-user`,
only keys whose every power they hold themselves: a read key needs the view permissions of what
it reads, a runtime key also the thread writes, a write key every config write and `move_label`,
and `protected` also `move_protected_label`. A superuser, and the operator at the shell, may
make any key.
"""

import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import APIKey, Label, Revision
from tests.factories import staff_user

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/config_backend/apikey/add/"
KEY_ADMIN = [
    "config_backend.view_apikey",
    "config_backend.add_apikey",
    "config_backend.change_apikey",
]
# Spelled out here, not imported: these are the permissions the API asks staff for.
VIEW_ALL = [
    "assistants.view_assistant",
    "tools.view_tool",
    "tools.view_assistanttoollink",
    "snippets.view_snippet",
    "config_backend.view_revision",
    "config_backend.view_label",
    "threads.view_userassistantthread",
]
THREAD_WRITES = [f"threads.{action}_userassistantthread" for action in ("add", "change", "delete")]
CHANGE_CONFIG = ["assistants.change_assistant", "tools.change_tool"]
CONFIG_WRITES = [
    f"{app}.{action}_{model}"
    for app, model in (
        ("assistants", "assistant"),
        ("tools", "tool"),
        ("tools", "assistanttoollink"),
        ("snippets", "snippet"),
    )
    for action in ("add", "change", "delete")
]
MOVE_LABEL = "config_backend.move_label"
MOVE_PROTECTED = "config_backend.move_protected_label"
DEPLOYER = [*KEY_ADMIN, *VIEW_ALL, *CONFIG_WRITES, MOVE_LABEL, MOVE_PROTECTED]

# (who: their permissions, the key asked for, the form fields refused; none: the key is made)
CASES = [
    ("key admin only", KEY_ADMIN, ("write", True), {"scope", "protected"}),
    ("key admin only", KEY_ADMIN, ("write", False), {"scope"}),
    ("key admin only", KEY_ADMIN, ("read", False), {"scope"}),
    ("+ move_label", [*KEY_ADMIN, MOVE_LABEL], ("write", False), {"scope"}),
    ("+ move_label", [*KEY_ADMIN, MOVE_LABEL], ("write", True), {"scope", "protected"}),
    (
        "+ move_protected_label",
        [*KEY_ADMIN, *VIEW_ALL, MOVE_LABEL, MOVE_PROTECTED],
        ("write", True),
        {"scope"},
    ),
    (
        "+ change on assistants and tools",
        [*KEY_ADMIN, *VIEW_ALL, *CHANGE_CONFIG, MOVE_LABEL],
        ("write", False),
        {"scope"},
    ),
    ("+ views", [*KEY_ADMIN, *VIEW_ALL], ("read", False), set()),
    ("+ views", [*KEY_ADMIN, *VIEW_ALL], ("runtime", False), {"scope"}),
    ("+ thread writes", [*KEY_ADMIN, *VIEW_ALL, *THREAD_WRITES], ("runtime", False), set()),
    ("+ thread writes", [*KEY_ADMIN, *VIEW_ALL, *THREAD_WRITES], ("write", False), {"scope"}),
    (
        "+ every config write",
        [*KEY_ADMIN, *VIEW_ALL, *CONFIG_WRITES, MOVE_LABEL],
        ("write", False),
        set(),
    ),
    (
        "+ every config write",
        [*KEY_ADMIN, *VIEW_ALL, *CONFIG_WRITES, MOVE_LABEL],
        ("write", True),
        {"protected"},
    ),
    ("deployer", DEPLOYER, ("write", True), set()),
]


def admin_session(*permissions: str) -> Client:
    client = Client()
    client.force_login(staff_user(*permissions))
    return client


def add_key(client: Client, scope: str, protected: bool = False, name: str = "made"):
    fields = {"name": name, "scope": scope, "expiry_date_0": "", "expiry_date_1": ""}
    if protected:
        fields["protected"] = "on"
    return client.post(ADD_URL, fields)


def shown_key(response) -> str:
    """The key on the page answering the add form."""
    return re.search(r'<code id="new-api-key">([^<]+)</code>', response.content.decode())[1]


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def moves_production_and_rolls_back(key: str) -> tuple[int, int]:
    client = bearer(key)
    newest = Revision.objects.order_by("-number").values_list("number", flat=True).first()
    moved = client.put("/api/v1/labels/production/", {"revision": newest}, format="json")
    rolled = client.post("/api/v1/rollback/", {"to": newest}, format="json")
    return moved.status_code, rolled.status_code


def form_errors(response) -> dict:
    return response.context["adminform"].form.errors


# The admin's add form.


@pytest.mark.parametrize(
    "permissions, asked, refused",
    [case[1:] for case in CASES],
    ids=[
        f"{who}: {scope}{' protected' if protected else ''}"
        for who, _, (scope, protected), _ in CASES
    ],
)
def test_the_add_form_makes_only_keys_within_the_makers_permissions(permissions, asked, refused):
    response = add_key(admin_session(*permissions), *asked)

    if refused:
        assert response.status_code == 200
        assert set(form_errors(response)) == refused
        assert "may not do more than its maker" in response.content.decode()
        assert not APIKey.objects.exists()
    else:
        assert response.status_code == 200
        assert response.context.get("adminform") is None  # the key's page, not the form again
        stored = APIKey.objects.get()
        assert (stored.scope, stored.protected) == asked
        assert shown_key(response).startswith(stored.prefix + ".")


def test_the_issues_attack_is_refused_at_creation_and_names_what_is_missing(secretary):
    # A user with only view/add/change_apikey asks for a protected write key.
    response = add_key(admin_session(*KEY_ADMIN), "write", protected=True)

    errors = form_errors(response)
    assert "`config_backend.move_label`" in errors["scope"][0]
    assert "`assistants.delete_assistant`" in errors["scope"][0]
    assert "`config_backend.move_protected_label`" in errors["protected"][0]
    assert not APIKey.objects.exists()
    assert not Label.objects.exists()


def test_the_key_a_key_admin_may_make_can_neither_move_production_nor_roll_back(secretary):
    response = add_key(admin_session(*KEY_ADMIN, *VIEW_ALL), "read")
    key = shown_key(response)

    assert moves_production_and_rolls_back(key) == (403, 403)
    assert not Label.objects.exists()
    assert Revision.objects.filter(source="rollback").count() == 0


def test_a_staff_user_holding_every_power_makes_a_protected_write_key_that_works(secretary):
    response = add_key(admin_session(*DEPLOYER), "write", protected=True)
    key = shown_key(response)

    assert moves_production_and_rolls_back(key) == (201, 200)


def test_a_superuser_makes_any_key():
    superuser = Client()
    superuser.force_login(User.objects.create_superuser("root"))
    response = add_key(superuser, "write", protected=True)
    assert APIKey.objects.get().protected
    assert shown_key(response)


# The admin's change form: an edit may not grant what the editor lacks.


@pytest.fixture
def read_key_admin():
    """May change keys and read everything, but writes nothing and moves no label."""
    return admin_session(*KEY_ADMIN, *VIEW_ALL)


def change_key(client: Client, api_key: APIKey, **fields):
    """POST the key's change form as shown, with `fields` changed (None: unchecked)."""
    api_key.refresh_from_db()
    form = {
        "name": api_key.name,
        "scope": api_key.scope,
        "label": api_key.label or "",
        "expiry_date_0": "",
        "expiry_date_1": "",
    }
    if api_key.expiry_date:
        form["expiry_date_0"] = api_key.expiry_date.strftime("%Y-%m-%d")
        form["expiry_date_1"] = api_key.expiry_date.strftime("%H:%M:%S")
    if api_key.protected:
        form["protected"] = "on"
    form.update(fields)
    form = {name: value for name, value in form.items() if value is not None}
    return client.post(f"/admin/config_backend/apikey/{api_key.pk}/change/", form)


def stored(api_key: APIKey) -> tuple:
    api_key.refresh_from_db()
    return api_key.name, api_key.scope, api_key.protected, api_key.expiry_date


def test_an_edit_cannot_raise_a_read_key_to_write(read_key_admin):
    api_key, _ = APIKey.objects.create_key(name="reader", scope="read")
    before = stored(api_key)

    response = change_key(read_key_admin, api_key, scope="write")

    assert set(form_errors(response)) == {"scope"}
    assert stored(api_key) == before


def test_an_edit_cannot_make_a_write_key_protected():
    api_key, _ = APIKey.objects.create_key(name="deploy", scope="write")
    before = stored(api_key)
    editor = admin_session(*KEY_ADMIN, *VIEW_ALL, *CONFIG_WRITES, MOVE_LABEL)

    response = change_key(editor, api_key, protected="on")

    assert set(form_errors(response)) == {"protected"}
    assert stored(api_key) == before


def test_an_edit_cannot_extend_the_life_of_a_key_beyond_the_editors_permissions(read_key_admin):
    expiry = timezone.now().replace(microsecond=0) + timedelta(days=1)
    api_key, _ = APIKey.objects.create_key(name="deploy", scope="write", expiry_date=expiry)
    before = stored(api_key)

    never = change_key(read_key_admin, api_key, expiry_date_0="", expiry_date_1="")
    later = change_key(
        read_key_admin, api_key, expiry_date_0=(expiry + timedelta(days=30)).strftime("%Y-%m-%d")
    )

    for response in (never, later):
        assert set(form_errors(response)) == {"expiry_date"}
        assert "`config_backend.move_label`" in form_errors(response)["expiry_date"][0]
    assert stored(api_key) == before


def test_an_edit_that_grants_nothing_is_saved_for_a_limited_user(read_key_admin):
    api_key, _ = APIKey.objects.create_key(name="deploy", scope="write", protected=True)

    renamed = change_key(read_key_admin, api_key, name="deploy bot")
    assert renamed.status_code == 302
    unprotected = change_key(read_key_admin, api_key, protected=None)
    assert unprotected.status_code == 302
    lowered = change_key(read_key_admin, api_key, scope="read")
    assert lowered.status_code == 302

    assert stored(api_key)[:3] == ("deploy bot", "read", False)


# create_api_key: the operator may make any key; --as-user, only what that user may.


def create_key(*arguments) -> str:
    out = io.StringIO()
    call_command("create_api_key", "made", *arguments, stdout=out)
    return out.getvalue().splitlines()[-1]


@pytest.mark.parametrize(
    "permissions, asked, refused",
    [case[1:] for case in CASES],
    ids=[
        f"{who}: {scope}{' protected' if protected else ''}"
        for who, _, (scope, protected), _ in CASES
    ],
)
def test_the_command_as_a_user_makes_only_keys_within_their_permissions(
    permissions, asked, refused
):
    username = staff_user(*permissions).username
    scope, protected = asked
    arguments = ["--scope", scope, *(["--protected"] if protected else []), "--as-user", username]

    if refused:
        with pytest.raises(CommandError) as error:
            create_key(*arguments)
        named = {
            option for option in ("--scope", "--protected") if f"{option}: " in str(error.value)
        }
        assert named == {f"--{field}" for field in refused}
        assert not APIKey.objects.exists()
    else:
        create_key(*arguments)
        assert (APIKey.objects.get().scope, APIKey.objects.get().protected) == asked


def test_the_commands_attack_key_made_as_a_key_admin_is_refused(secretary):
    username = staff_user(*KEY_ADMIN).username
    with pytest.raises(CommandError, match="may not do more than its maker"):
        create_key("--scope", "write", "--protected", "--as-user", username)
    assert not APIKey.objects.exists()


def test_the_command_as_a_user_needs_an_active_staff_user_who_may_add_keys():
    without_add = staff_user(*VIEW_ALL).username
    User.objects.create_user("outsider", is_staff=False)
    for username, refusal in [
        ("nobody", "no active staff user"),
        ("outsider", "no active staff user"),
        (without_add, "may not add API keys"),
    ]:
        with pytest.raises(CommandError, match=refusal):
            create_key("--as-user", username)
    assert not APIKey.objects.exists()


def test_the_operator_at_the_shell_makes_any_key(secretary):
    key = create_key("--scope", "write", "--protected")
    assert moves_production_and_rolls_back(key) == (201, 200)
