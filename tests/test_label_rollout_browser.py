"""A staff user with `move_label` rolls a revision out to a share of users in a real browser
(Chromium through Playwright) against a live server: sets the rollout on an unprotected label,
sees the diff base → candidate before confirming, sees the label's page show it (and the
runtime serve the candidate to a listed user), promotes it, and reads the actions in the label's
history (docs/contract.md "Releases: rollouts, approvals, outcomes").
Screenshots of each step are kept in test-artifacts/admin-rollout/."""

import pytest
from config_client.rollout import bucket
from playwright.sync_api import expect

from assistants.models import Assistant
from config_backend.history.labels import label_move
from core.models import APIKey, Label, LabelMove
from tests.browser import Watched, logged_in_admin
from tests.factories import newest_revision, staff_user
from tests.live import ROOT, call

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "test-artifacts" / "admin-rollout"
BASE_INSTRUCTIONS = "You plan the user's week.\nGreet the user warmly by name."
CANDIDATE_INSTRUCTIONS = "You plan the user's week.\nGreet the user in one word."


@pytest.fixture
def release():
    """The Planner at revision `base` with `staging` on it, then an edit: revision `candidate`.
    The staff user may view and move labels, nothing more. Made before the browser starts."""
    user = staff_user("config_backend.view_label", "config_backend.move_label")
    assistant = Assistant.objects.create(
        name="Planner", model="gpt-4o-mini", instructions=BASE_INSTRUCTIONS
    )
    base = newest_revision()
    label_move(name="staging", revision=base, author="release bot")
    assistant.instructions = CANDIDATE_INSTRUCTIONS
    assistant.save()
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
    return {
        "user": user.username,
        "assistant": assistant.pk,
        "base": base,
        "candidate": newest_revision(),
        "key": key,
    }


def set_rollout(admin: Watched, base_url: str, release: dict) -> None:
    page = admin.page
    page.goto(f"{base_url}/admin/config_backend/label/")
    row = page.locator("#result_list tr", has_text="staging")
    row.get_by_role("link", name="staging").click()
    expect(page.locator("#label-rollout")).to_contain_text("None: every user gets the base")
    admin.screenshot("01-label-without-rollout")
    page.click("#rollout-link")
    page.fill("#id_candidate", str(release["candidate"]))
    page.fill("#id_percent", "10")
    page.fill("#id_users", "ann\nbob")
    page.fill("#id_change_note", "Try the one-word greeting on a tenth of users.")
    admin.screenshot("02-rollout-form")
    page.click("input[name=preview]")

    # The diff base → candidate, before anything changes.
    preview = page.locator("#diff-preview")
    preview.wait_for()
    assert preview.locator(".diff-removed").all_inner_texts() == ["-Greet the user warmly by name."]
    assert preview.locator(".diff-added").all_inner_texts() == ["+Greet the user in one word."]
    assert page.locator("h1").inner_text() == (
        f"Roll out revision {release['candidate']} of label staging?"
    )
    admin.screenshot("03-rollout-diff")
    page.click("input[name=confirm]")
    success = page.locator("ul.messagelist li.success")
    success.wait_for()
    assert f"revision {release['candidate']} for 10" in success.inner_text()


def see_the_rollout(admin: Watched, release: dict) -> str:
    """The label's page shows the rollout; returns the rollout id it shows."""
    page = admin.page
    rollout = page.locator("#label-rollout")
    expect(rollout).to_contain_text(f"Revision {release['candidate']} for 10")
    expect(rollout).to_contain_text("2 listed users")
    expect(page.locator("#promote-link")).to_be_visible()
    admin.screenshot("04-label-with-rollout")
    return rollout.locator("code").inner_text()


def user_outside_the_share(rollout_id: str, percent: int) -> str:
    """A user id neither listed nor in the share's buckets (the one bucket rule)."""
    return next(
        user_id
        for user_id in (f"user-{number}" for number in range(1000))
        if bucket("staging", rollout_id, user_id) >= percent * 100
    )


def variant_for(base_url: str, release: dict, user_id: str) -> tuple[str, str]:
    status, headers, body = call(
        "GET",
        f"{base_url}/api/v1/assistants/{release['assistant']}/config/"
        f"?label=staging&user_id={user_id}",
        key=release["key"],
    )
    assert status == 200, body
    return headers["X-Config-Variant"], headers["X-Config-Revision"]


def promote(admin: Watched, release: dict) -> None:
    page = admin.page
    page.click("#promote-link")
    preview = page.locator("#diff-preview")
    preview.wait_for()
    assert preview.locator(".diff-added").all_inner_texts() == ["+Greet the user in one word."]
    assert page.locator("h1").inner_text() == (
        f"Promote label staging to revision {release['candidate']}?"
    )
    page.fill("#id_change_note", "Nobody complained.")
    admin.screenshot("05-promote-confirm")
    page.click("input[name=confirm]")
    success = page.locator("ul.messagelist li.success")
    success.wait_for()
    assert f"staging promoted to revision {release['candidate']}" in success.inner_text()
    expect(page.locator("#label-rollout")).to_contain_text("None: every user gets the base")
    expect(page.locator("#promote-link")).to_have_count(0)


def read_the_history(admin: Watched, release: dict) -> None:
    page = admin.page
    rows = page.locator("#label-moves tbody tr")
    # Newest first: the promote, the rollout, the first move.
    expect(rows).to_have_count(3)
    cells = [row.locator("td").all_inner_texts() for row in rows.all()]
    assert [row[1:3] for row in cells] == [
        [release["user"], "promote"],
        [release["user"], "rollout"],
        ["release bot", "move"],
    ]
    promoted, rolled_out = cells[0], cells[1]
    assert promoted[3:5] == [str(release["base"]), str(release["candidate"])]
    assert promoted[7] == "Nobody complained."
    assert rolled_out[5] == str(release["candidate"])
    assert rolled_out[6].startswith("10")
    assert rolled_out[7] == "Try the one-word greeting on a tenth of users."
    admin.screenshot("06-promoted-and-history")


def test_staff_roll_out_a_revision_after_the_diff_see_it_on_the_label_and_promote_it(release):
    with logged_in_admin(ARTIFACTS, release["user"], "pw") as (admin, base_url):
        set_rollout(admin, base_url, release)
        rollout_id = see_the_rollout(admin, release)
        # A listed user gets the candidate at once; a user outside the share keeps the base.
        assert variant_for(base_url, release, "ann") == ("candidate", str(release["candidate"]))
        outsider = user_outside_the_share(rollout_id, 10)
        assert variant_for(base_url, release, outsider) == ("base", str(release["base"]))
        promote(admin, release)
        read_the_history(admin, release)
        assert admin.problems == []
        after = variant_for(base_url, release, "ann")
    assert after == ("base", str(release["candidate"]))
    label = Label.objects.get(name="staging")
    assert (label.revision, label.candidate_revision) == (release["candidate"], None)
    assert list(
        LabelMove.objects.filter(label="staging").order_by("id").values_list("action", flat=True)
    ) == ["move", "rollout", "promote"]
