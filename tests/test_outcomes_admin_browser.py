"""Staff compare a rollout's base and candidate in a real browser (Chromium through
Playwright) against a live server: the label page's table and its two server-drawn charts
show, with no script and nothing fetched from elsewhere; the assistant's page lists its
revisions' outcomes. Screenshots in test-artifacts/outcomes-browser/."""

import datetime
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from assistants.models import Assistant
from core.models import Label
from outcomes.models import OutcomeBucket
from tests.factories import newest_revision
from tests.live import ROOT, live_database_url, server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "outcomes-browser"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def assistant_id():
    """Two weeks of hourly outcomes of `production`: the candidate errs more, answers faster."""
    User.objects.create_superuser("staff", "staff@example.com", PASSWORD)
    assistant = Assistant.objects.create(name="Planner", model="gpt-4o-mini")
    label = Label.objects.create(name="production", revision=newest_revision())
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    OutcomeBucket.objects.bulk_create(
        OutcomeBucket(
            assistant=assistant,
            revision=label.revision,
            label="production",
            variant=variant,
            period_start=now - datetime.timedelta(hours=ago),
            runs=runs + ago % 7,
            errors=errors * (1 + ago % 3),
            latency_ms=latency * runs,
            input_tokens=300 * runs,
            output_tokens=80 * runs,
            feedback_up=5,
            feedback_down=1,
        )
        for ago in range(14 * 24)
        for variant, runs, errors, latency in (("base", 40, 1, 900), ("candidate", 10, 1, 700))
    )
    return assistant.pk


@pytest.fixture
def base_url(assistant_id):
    with server(env={"DATABASE_URL": live_database_url()}, workers=1) as url:
        yield url


@pytest.fixture
def page(base_url):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: .venv/bin/pip install -r requirements-dev.txt")
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: run scripts/install-system-deps as root")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(10_000)
            yield page
        finally:
            browser.close()


def screenshot(page, step: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=ARTIFACTS / f"{step}.png", full_page=True)


def test_staff_compare_base_and_candidate_and_see_an_assistants_revisions(
    base_url, page, assistant_id
):
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{base_url}/admin/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")

    page.goto(f"{base_url}/admin/config_backend/label/production/change/")
    comparison = page.locator("#outcome-comparison")
    assert comparison.is_visible()
    base, candidate = page.locator("#outcome-base"), page.locator("#outcome-candidate")
    assert base.locator(".outcome-error-rate").inner_text() != "—"
    assert float(candidate.locator(".outcome-error-rate").inner_text().split()[0]) > float(
        base.locator(".outcome-error-rate").inner_text().split()[0]
    )
    for chart in ("#outcome-runs-chart", "#outcome-error-chart"):
        box = page.locator(chart).bounding_box()
        assert box and box["width"] > 400 and box["height"] > 100
        assert page.locator(f"{chart} polyline").count() == 2
    screenshot(page, "01-label-comparison-30-days")

    page.click("#outcome-comparison a[href='?days=7']")
    page.wait_for_url("**?days=7")
    assert "7" in page.locator("#outcome-comparison strong").inner_text()
    screenshot(page, "02-label-comparison-7-days")

    page.goto(f"{base_url}/admin/assistants/assistant/{assistant_id}/change/")
    assert page.locator("#assistant-outcomes .outcome-revision").count() == 1
    screenshot(page, "03-assistant-revisions")
    assert all(url.startswith(base_url) for url in requests)  # no CDN, nothing from elsewhere
