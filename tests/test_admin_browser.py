"""A staff user edits the config in a real browser (Chromium through Playwright) against a
live server, and the runtime's next config read shows the change.

Screenshots of each step are kept in test-artifacts/admin-browser/, named by step (the
history's, labels' and rollback's prefixed with their test's topic).
Needs Debian's Chromium (`scripts/install-system-deps`) and Playwright (requirements-dev.txt);
Playwright's own browser download is never used.
"""

import json
import shutil

import pytest
from django.contrib.auth.models import User

from assistants.models import Assistant
from config_backend.history.labels import label_move
from core.models import APIKey, Revision
from core.store import committed_counter
from tests.browser import Watched, chromium_browser
from tests.factories import make_label_request
from tests.live import ROOT, call, live_database_url, server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "test-artifacts" / "admin-browser"
PASSWORD = "correct horse battery staple"
INVALID_SCHEMA = {"type": "object", "properties": {"city": {"type": "strin"}}}
FIXED_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


@pytest.fixture
def rows():
    """The staff user, an assistant with no tools, and the runtime's read key."""
    User.objects.create_superuser("staff", "staff@example.com", PASSWORD)
    assistant = Assistant.objects.create(name="Planner", model="gpt-4o-mini")
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
    return assistant, key


@pytest.fixture
def base_url(rows):
    with server(env={"DATABASE_URL": live_database_url()}, workers=1) as url:
        yield url


@pytest.fixture
def chromium(base_url):
    """Debian's Chromium under Playwright, with a fresh profile; fails (not skips) if missing.

    Django refuses ORM calls while Playwright's event loop runs in this thread, so it starts
    after the rows are made (and the server, for symmetry at teardown) and the test makes none.
    """
    with chromium_browser() as browser:
        yield browser


@pytest.fixture(scope="session")
def _fresh_artifacts():
    """Last run's screenshots go once per run, not per test: each test keeps its own."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)


@pytest.fixture
def artifacts(_fresh_artifacts):
    return ARTIFACTS


def log_in(browser: Watched, base_url: str) -> None:
    page = browser.page
    page.goto(f"{base_url}/admin/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert page.locator("#user-tools").inner_text().upper().startswith("WELCOME, STAFF")
    # The admin's own stylesheet loaded (DEBUG is off: WhiteNoise serves it).
    assert page.evaluate("getComputedStyle(document.querySelector('#header')).display") == "flex"
    browser.screenshot("01-logged-in")


def add_tool_with_invalid_schema(browser: Watched, base_url: str) -> None:
    page = browser.page
    page.goto(f"{base_url}/admin/tools/tool/add/")
    page.fill("#id_name", "get_weather")
    page.select_option("#id_tool_type", "weather")
    page.fill("#id_description", "Weather for a city.")
    page.fill("#id_input_schema", json.dumps(INVALID_SCHEMA, indent=2))
    page.click("input[name=_save]")
    errors = page.locator(".field-input_schema ul.errorlist")
    errors.wait_for()
    assert "/properties/city/type" in errors.inner_text()
    # The rejected text stays in the field, for the user to correct.
    assert json.loads(page.input_value("#id_input_schema")) == INVALID_SCHEMA
    browser.screenshot("02-invalid-schema-error")


def fix_schema_and_save(browser: Watched) -> None:
    page = browser.page
    page.fill("#id_input_schema", json.dumps(FIXED_SCHEMA, indent=2))
    page.click("input[name=_save]")
    success = page.locator("ul.messagelist li.success")
    success.wait_for()
    assert "get_weather" in success.inner_text()
    assert page.locator("#result_list").get_by_role("link", name="get_weather").count() == 1
    browser.screenshot("03-tool-saved")


def link_tool_inline(browser: Watched, base_url: str, assistant_id: str) -> None:
    """Pick the tool in the first empty inline row through the select2 autocomplete."""
    page = browser.page
    page.goto(f"{base_url}/admin/assistants/assistant/{assistant_id}/change/")
    row = page.locator("#tool_links-0")
    row.locator(".select2-selection").click()
    search = page.locator(".select2-container--open .select2-search__field")
    search.fill("weath")
    page.locator(".select2-results__option", has_text="get_weather").click()
    assert row.locator(".select2-selection__rendered").inner_text().strip() == "get_weather"
    browser.screenshot("04-tool-picked")
    page.click("input[name=_continue]")
    page.locator("ul.messagelist li.success").wait_for()
    saved_row = page.locator("#tool_links-0")
    assert saved_row.locator(".select2-selection__rendered").inner_text().strip() == "get_weather"
    assert page.locator(".errorlist").count() == 0
    browser.screenshot("05-tool-linked")


def tool_names(config: dict) -> list[str]:
    return [tool["name"] for tool in config["tools"]]


def test_staff_fix_a_schema_link_the_tool_and_the_api_shows_it_at_once(
    rows, base_url, chromium, artifacts
):
    assistant, key = rows
    config_url = f"{base_url}/api/v1/assistants/{assistant.id}/config/"
    # The runtime has read (and so cached) the config before the change.
    for _ in range(2):
        status, _, body = call("GET", config_url, key=key)
        assert status == 200, body
        assert tool_names(json.loads(body)) == []

    admin = Watched(chromium.new_page(viewport={"width": 1280, "height": 900}), artifacts)
    log_in(admin, base_url)
    add_tool_with_invalid_schema(admin, base_url)
    fix_schema_and_save(admin)
    link_tool_inline(admin, base_url, str(assistant.id))
    assert admin.problems == []

    # The runtime's very next read: its key, no session, JSON as it asks for it.
    runtime = chromium.new_context(
        extra_http_headers={"Authorization": f"Bearer {key}", "Accept": "application/json"}
    ).new_page()
    response = runtime.goto(config_url)
    assert response.status == 200
    config = response.json()
    runtime.screenshot(path=artifacts / "06-api-config.png", full_page=True)
    assert tool_names(config) == ["get_weather"]
    assert config["tools"][0]["input_schema"] == FIXED_SCHEMA


# The history (docs/contract.md "Revisions, history, labels, diff, rollback").

PLANNER_INSTRUCTIONS = "You plan the user's week.\nGreet the user warmly by name.\nBe brief."
EDITED_INSTRUCTIONS = "You plan the user's week.\nGreet the user in one word.\nBe brief."


@pytest.fixture
def history(rows):
    """The Planner's first instructions (revision `first`), then an edit (`second`); labels
    `staging` and `production` at `first`. Made before the browser starts (no ORM after)."""
    assistant, _ = rows
    assistant.instructions = PLANNER_INSTRUCTIONS
    assistant.save()
    first = Revision.objects.get(number=committed_counter())
    for name in ("staging", "production"):
        label_move(name=name, revision=first.number, author="release bot")
    assistant.instructions = "You plan the user's week.\nBe brief."
    assistant.save()
    return {"first": first, "second": committed_counter()}


def test_staff_edit_instructions_with_a_note_and_the_history_shows_who_when_and_the_diff(
    rows, history, base_url, chromium, artifacts
):
    assistant, _ = rows
    admin = Watched(chromium.new_page(viewport={"width": 1280, "height": 900}), artifacts)
    log_in(admin, base_url)
    page = admin.page
    page.goto(f"{base_url}/admin/assistants/assistant/{assistant.id}/change/")
    page.fill("#id_instructions", EDITED_INSTRUCTIONS)
    page.fill("#id_change_note", "A shorter greeting: users skim it.")
    admin.screenshot("history-01-edit-with-note")
    page.click("input[name=_continue]")
    page.locator("ul.messagelist li.success").wait_for()

    page.click("a.historylink")
    newest = page.locator(".history-revision").first
    newest.wait_for()
    assert newest.locator(".history-author").inner_text() == "staff"
    assert newest.locator(".history-source").inner_text() == "admin"
    assert newest.locator(".history-when").inner_text().strip()
    assert newest.locator(".history-note").inner_text() == "A shorter greeting: users skim it."
    added = newest.locator(".diff-added").all_inner_texts()
    assert added == ["+Greet the user in one word."]
    assert newest.locator(".diff-removed").count() == 0  # the line was absent before
    # The older revisions follow, newest first: the edit without the greeting, the creation.
    assert page.locator(".history-revision").count() == 4
    admin.screenshot("history-02-assistant-history")
    assert admin.problems == []


def test_staff_move_a_label_after_seeing_the_diff_and_confirming(
    rows, history, base_url, chromium, artifacts
):
    admin = Watched(chromium.new_page(viewport={"width": 1280, "height": 900}), artifacts)
    log_in(admin, base_url)
    page = admin.page
    page.goto(f"{base_url}/admin/config_backend/label/")
    row = page.locator("#result_list tr", has_text="staging")
    admin.screenshot("label-01-labels")
    row.get_by_role("link", name="Move").click()
    page.fill("#id_target", "live")
    page.fill("#id_change_note", "Staging gets the short prompt.")
    page.click("input[name=preview]")
    preview = page.locator("#diff-preview")
    preview.wait_for()
    assert preview.locator(".diff-removed").all_inner_texts() == ["-Greet the user warmly by name."]
    assert page.locator("h1").inner_text() == (
        f"Move label staging to revision {history['second']}?"
    )
    admin.screenshot("label-02-move-preview")

    page.click("input[name=confirm]")
    success = page.locator("ul.messagelist li.success")
    success.wait_for()
    assert f"staging moved to revision {history['second']}" in success.inner_text()
    staging = page.locator("#result_list tr", has_text="staging")
    assert str(history["second"]) in staging.inner_text()
    production = page.locator("#result_list tr", has_text="production")
    assert str(history["first"].number) in production.inner_text()
    admin.screenshot("label-03-moved")
    assert admin.problems == []


def test_staff_create_the_first_production_label_and_the_runtime_reads_it(
    rows, base_url, chromium, artifacts
):
    assistant, key = rows
    admin = Watched(chromium.new_page(viewport={"width": 1280, "height": 900}), artifacts)
    log_in(admin, base_url)
    page = admin.page
    page.goto(f"{base_url}/admin/config_backend/label/")
    admin.screenshot("label-create-01-no-labels")
    page.locator(".object-tools a", has_text="Add label").click()
    page.fill("#id_name", "production")
    page.fill("#id_target", "live")
    page.fill("#id_change_note", "The first release.")
    page.click("input[name=preview]")
    page.locator("#label-confirm-form").wait_for()
    assert page.locator("h1").inner_text().startswith("Create label production at revision ")
    admin.screenshot("label-create-02-confirm")

    page.click("input[name=confirm]")
    success = page.locator("ul.messagelist li.success")
    success.wait_for()
    assert "Label production created at revision" in success.inner_text()
    assert "The first release." in page.locator("#content-main").inner_text()
    admin.screenshot("label-create-03-created")
    assert admin.problems == []
    status, _, body = call(
        "GET", f"{base_url}/api/v1/assistants/{assistant.id}/config/?label=production", key=key
    )
    assert status == 200 and json.loads(body)["name"] == "Planner"


@pytest.fixture
def label_requests(history, settings):
    """Two pending requests to move production to the second revision: one by another staff
    member (`theirs`), one by the logged-in staff user (`own`). Made before the browser."""
    settings.LABEL_APPROVALS = 1
    requester = User.objects.create_user("requester", password=PASSWORD, is_staff=True)
    own = User.objects.get(username="staff")
    return {
        "theirs": make_label_request("production", history["second"], requester=requester),
        "own": make_label_request("production", history["second"], requester=own),
    }


def test_an_approver_sees_the_diff_and_approves_another_persons_label_request(
    rows, history, label_requests, base_url, chromium, artifacts
):
    theirs, own = label_requests["theirs"], label_requests["own"]
    admin = Watched(chromium.new_page(viewport={"width": 1280, "height": 900}), artifacts)
    log_in(admin, base_url)
    page = admin.page
    page.goto(f"{base_url}/admin/config_backend/labelrequest/")
    their_card = page.locator(f"#label-request-{theirs.id}")
    assert their_card.locator(".request-requester").inner_text() == "requester"
    assert their_card.locator(".request-approvals").inner_text() == "0 of 1 approvals"
    assert their_card.locator(".diff-removed").all_inner_texts() == [
        "-Greet the user warmly by name."
    ]
    own_card = page.locator(f"#label-request-{own.id}")
    # Never one's own: only a cancel button there.
    assert own_card.locator("input[name=approve]").count() == 0
    assert own_card.locator("input[name=cancel]").count() == 1
    admin.screenshot("approvals-01-pending-requests")

    their_card.locator("input[name=approve]").click()
    success = page.locator("ul.messagelist li.success")
    success.first.wait_for()
    assert "Label production changed as requested." in success.all_inner_texts()
    assert page.locator(f"#label-request-{theirs.id}").count() == 0  # no longer pending
    admin.screenshot("approvals-02-approved")

    page.goto(f"{base_url}/admin/config_backend/label/")
    production = page.locator("#result_list tr", has_text="production")
    assert str(history["second"]) in production.inner_text()
    assert admin.problems == []


def test_staff_roll_back_after_seeing_the_diff_and_the_runtime_reads_the_old_config(
    rows, history, base_url, chromium, artifacts
):
    assistant, key = rows
    first = history["first"]
    admin = Watched(chromium.new_page(viewport={"width": 1280, "height": 900}), artifacts)
    log_in(admin, base_url)
    page = admin.page
    page.goto(f"{base_url}/admin/config_backend/revision/")
    page.locator("#result_list").get_by_role("link", name=str(first.number), exact=True).click()
    page.click("#rollback-link")
    preview = page.locator("#diff-preview")
    preview.wait_for()
    assert preview.locator(".diff-added").all_inner_texts() == ["+Greet the user warmly by name."]
    page.fill("#id_change_note", "Back to the warm greeting.")
    admin.screenshot("rollback-01-confirm")

    page.click("input[name=confirm]")
    success = page.locator("ul.messagelist li.success")
    success.wait_for()
    assert f"Rolled back to revision {first.number}" in success.inner_text()
    assert page.locator(".history-source").inner_text() == "rollback"
    assert page.locator(".history-note").inner_text() == "Back to the warm greeting."
    admin.screenshot("rollback-02-done")
    assert admin.problems == []

    status, _, body = call("GET", f"{base_url}/api/v1/assistants/{assistant.id}/config/", key=key)
    assert status == 200
    assert json.loads(body)["instructions"] == PLANNER_INSTRUCTIONS


def test_staff_add_a_key_see_it_once_and_the_browser_keeps_it_in_no_cookie(
    rows, base_url, chromium, artifacts
):
    admin = Watched(chromium.new_page(viewport={"width": 1280, "height": 900}), artifacts)
    log_in(admin, base_url)
    page = admin.page
    page.goto(f"{base_url}/admin/config_backend/apikey/add/")
    page.fill("#id_name", "deployer")
    page.select_option("#id_scope", "write")
    page.check("#id_protected")
    page.click("input[name=_save]")

    shown = page.locator("#new-api-key")
    shown.wait_for()
    key = shown.inner_text()
    admin.screenshot("key-01-shown-once")
    assert page.content().count(key.partition(".")[2]) == 1
    cookies = page.context.cookies()
    assert cookies  # the session's, at least
    assert all(key.partition(".")[2] not in cookie["value"] for cookie in cookies)
    page.goto(f"{base_url}/admin/config_backend/apikey/")
    assert key.partition(".")[2] not in page.content()
    assert admin.problems == []

    status, _, _ = call("GET", f"{base_url}/api/v1/assistants/", key=key)
    assert status == 200
