"""A staff user works with snippets in a real browser (Chromium through Playwright) against a
live server: creates one, includes it from an assistant's instructions and sees the live
preview expand it, edits it and reads its history, and is refused deactivating it while the
assistant includes it (docs/contract.md "The whole agent in the config", rules 7 and 12).
Screenshots of each step are kept in test-artifacts/admin-snippets/."""

import json

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from assistants.models import Assistant
from core.models import APIKey
from snippets.models import Snippet
from tests.browser import Watched, logged_in_admin
from tests.live import ROOT, call

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "test-artifacts" / "admin-snippets"
PASSWORD = "correct horse battery staple"
FIRST_TEXT = "Sign off with: Kind regards, the travel desk."
EDITED_TEXT = "Sign off with: Best wishes, the travel desk."
INSTRUCTIONS = "You book trips for the user.\n{{> signature }}"


def create_snippet(admin: Watched, base_url: str) -> None:
    page = admin.page
    page.goto(f"{base_url}/admin/snippets/snippet/add/")
    page.fill("#id_name", "signature")
    page.fill("#id_text", FIRST_TEXT)
    page.fill("#id_description", "How every assistant signs off.")
    admin.screenshot("01-new-snippet")
    page.click("input[name=_save]")
    success = page.locator("ul.messagelist li.success")
    success.wait_for()
    assert "signature" in success.inner_text()
    assert page.locator("#result_list").get_by_role("link", name="signature").count() == 1
    admin.screenshot("02-snippet-saved")


def include_it_and_see_the_preview(admin: Watched, base_url: str, assistant_id: str) -> None:
    page = admin.page
    page.goto(f"{base_url}/admin/assistants/assistant/{assistant_id}/change/")
    page.fill("#id_instructions", INSTRUCTIONS)
    # The preview shows the include expanded: the snippet's text, not `{{> signature }}`.
    preview = page.locator("#instructions-preview")
    expect(preview.locator(".preview-output")).to_have_text(
        f"You book trips for the user.\n{FIRST_TEXT}"
    )
    expect(preview.locator(".preview-error")).to_have_text("")
    admin.screenshot("03-preview-expands-the-include")
    page.click("input[name=_continue]")
    page.locator("ul.messagelist li.success").wait_for()
    assert page.locator(".errorlist").count() == 0


def edit_it_and_read_its_history(admin: Watched, base_url: str, snippet_id: str) -> None:
    page = admin.page
    page.goto(f"{base_url}/admin/snippets/snippet/{snippet_id}/change/")
    # The snippet's page says what includes it.
    assert "Secretary" in page.locator(".field-included_by").inner_text()
    page.fill("#id_text", EDITED_TEXT)
    page.fill("#id_change_note", "Warmer sign-off.")
    page.click("input[name=_continue]")
    page.locator("ul.messagelist li.success").wait_for()
    admin.screenshot("04-snippet-edited")

    page.click("a.historylink")
    newest = page.locator(".history-revision").first
    newest.wait_for()
    assert newest.locator(".history-author").inner_text() == "staff"
    assert newest.locator(".history-note").inner_text() == "Warmer sign-off."
    assert newest.locator(".diff-added").all_inner_texts() == [f"+{EDITED_TEXT}"]
    assert newest.locator(".diff-removed").all_inner_texts() == [f"-{FIRST_TEXT}"]
    # The edit, then the creation.
    assert page.locator(".history-revision").count() == 2
    admin.screenshot("05-snippet-history")


def try_to_deactivate_it(admin: Watched, base_url: str, snippet_id: str) -> None:
    page = admin.page
    page.goto(f"{base_url}/admin/snippets/snippet/{snippet_id}/change/")
    page.uncheck("#id_is_active")
    page.click("input[name=_save]")
    refusal = page.locator(".field-is_active ul.errorlist")
    refusal.wait_for()
    assert "“signature” is still included" in refusal.inner_text()
    assert "Secretary" in refusal.inner_text()
    admin.screenshot("06-deactivation-refused")


def test_staff_include_a_snippet_see_it_expanded_edit_it_and_cannot_deactivate_it_while_used():
    User.objects.create_superuser("staff", "staff@example.com", PASSWORD)
    assistant = Assistant.objects.create(name="Secretary", model="gpt-4o-mini")
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
    with logged_in_admin(ARTIFACTS, "staff", PASSWORD) as (admin, base_url):
        create_snippet(admin, base_url)
        # The snippet's id, as the runtime's API lists it (no ORM while the browser runs).
        status, _, body = call("GET", f"{base_url}/api/v1/snippets/", key=key)
        assert status == 200, body
        listed = json.loads(body)
        snippet_id = next(row["id"] for row in listed.get("results", listed))
        include_it_and_see_the_preview(admin, base_url, str(assistant.pk))
        edit_it_and_read_its_history(admin, base_url, snippet_id)
        try_to_deactivate_it(admin, base_url, snippet_id)
        assert admin.problems == []
        status, _, body = call(
            "GET", f"{base_url}/api/v1/assistants/{assistant.pk}/config/", key=key
        )
    assert status == 200, body
    # The runtime reads the instructions with the edited snippet expanded (the browser posts
    # a textarea's line breaks as CRLF, so lines are compared).
    assert json.loads(body)["instructions"].splitlines() == [
        "You book trips for the user.",
        EDITED_TEXT,
    ]
    snippet = Snippet.objects.get()
    assert (snippet.name, snippet.text, snippet.is_active) == ("signature", EDITED_TEXT, True)
    assert Assistant.objects.get().instructions.splitlines() == INSTRUCTIONS.splitlines()
