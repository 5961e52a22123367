"""The admin in a real browser: Debian's Chromium under Playwright (Playwright's own browser
download is never used), and a page whose script errors and failed responses are recorded.
Used by the browser tests (test_*browser.py, test_admin_i18n.py, test_delegation_graph.py, …).
"""

import contextlib
import shutil
from pathlib import Path

import pytest

from tests.live import live_database_url, server

CHROMIUM = Path("/usr/bin/chromium")
# The machine has no network: without these, Chromium's background connections fail noisily.
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


@contextlib.contextmanager
def chromium_browser():
    """Debian's Chromium under Playwright, with a fresh profile; fails (not skips) if missing.

    Django refuses ORM calls while Playwright's event loop runs in this thread, so start it
    after the rows are made; the test makes none while it runs.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: .venv/bin/pip install -r requirements-dev.txt")
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: run scripts/install-system-deps as root")
    with sync_playwright() as playwright:
        # launch() gives every run a new temporary user data dir and removes it afterwards.
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


class Watched:
    """A page whose script errors and failed responses are recorded, to be asserted empty."""

    def __init__(self, page, artifacts: Path):
        self.page = page
        self.artifacts = artifacts
        self.problems: list[str] = []
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("console", self._console)
        page.on(
            "response",
            lambda response: (
                response.status >= 400 and self.problems.append(f"{response.status} {response.url}")
            ),
        )

    def _console(self, message) -> None:
        # The browser's own favicon request (the site has none) is no page's doing.
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            self.problems.append(f"console error: {message.text} at {message.location['url']}")

    def screenshot(self, step: str) -> None:
        # From the top: the admin's sticky sidebar would otherwise be drawn where it was scrolled.
        self.page.evaluate("window.scrollTo(0, 0)")
        self.page.screenshot(path=self.artifacts / f"{step}.png", full_page=True)


def log_in_as(page, base_url: str, username: str, password: str) -> None:
    """Log in on the admin's login page, whatever its language."""
    page.goto(f"{base_url}/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


@contextlib.contextmanager
def logged_in_admin(artifacts: Path, username: str, password: str):
    """The production server on the test database, Chromium, and a watched page logged in to
    its admin as `username`; yields (the page, the server's URL). `artifacts` (the test's
    screenshots) starts empty."""
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    with (
        server(env={"DATABASE_URL": live_database_url()}, workers=1) as base_url,
        chromium_browser() as chromium,
    ):
        admin = Watched(chromium.new_page(viewport={"width": 1280, "height": 900}), artifacts)
        log_in_as(admin.page, base_url, username, password)
        yield admin, base_url
