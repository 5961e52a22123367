"""The admin speaks its staff's language (Russian or English, from the browser's
Accept-Language); the API does not change with it (core.ops.admin_language).

Every string of ours that Django's i18n marks is in the Russian catalogue: the check extracts
the strings afresh, the way `make messages` does, and compares them with the committed .po
(GNU gettext's msgcmp: an untranslated or fuzzy entry counts as missing).
"""

import gettext
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from assistants.models import Assistant
from core.models import Revision
from tests.browser import Watched, chromium_browser, log_in_as
from tests.factories import assistant_form, assistant_payload, key_client, session, staff_user
from tests.live import ROOT, live_database_url, server

pytestmark = pytest.mark.django_db

CATALOGUE = ROOT / "locale" / "ru" / "LC_MESSAGES" / "django.po"
COMPILED = CATALOGUE.with_suffix(".mo")
RUSSIAN = {"HTTP_ACCEPT_LANGUAGE": "ru-RU,ru;q=0.9,en;q=0.5"}
ARTIFACTS = ROOT / "test-artifacts" / "admin-russian"
PASSWORD = "correct horse battery staple"


def the_projects_sources(into: Path) -> None:
    """Copy what holds our strings (each app's package: Python and templates) into `into`,
    with an empty locale/ of its own for makemessages to write to."""
    for package in sorted(path.parent for path in ROOT.glob("*/apps.py")):
        shutil.copytree(
            package,
            into / package.name,
            ignore=shutil.ignore_patterns("__pycache__", "migrations", "locale"),
        )
    (into / "locale").mkdir()


def test_every_string_of_ours_has_a_russian_translation(tmp_path):
    the_projects_sources(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "--locale", "ru", "--no-location"],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",  # xgettext, msgmerge
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "config_backend.settings",
            "SECRET_KEY": "test",
        },
        check=True,
        capture_output=True,
    )
    fresh = tmp_path / "locale" / "ru" / "LC_MESSAGES" / "django.po"
    assert "msgid" in fresh.read_text(encoding="utf-8")
    compared = subprocess.run(
        ["msgcmp", str(CATALOGUE), str(fresh)], capture_output=True, text=True, check=False
    )
    assert compared.returncode == 0, (
        "Strings without a Russian translation (run `make messages`, translate them in "
        f"{CATALOGUE.relative_to(ROOT)}, run it again):\n{compared.stderr}"
    )


def test_the_committed_compiled_catalogue_is_the_po_file_compiled(tmp_path):
    compiled_now = tmp_path / "django.mo"
    subprocess.run(
        ["msgfmt", "--check", "-o", str(compiled_now), str(CATALOGUE)],
        check=True,
        capture_output=True,
    )
    with COMPILED.open("rb") as committed, compiled_now.open("rb") as fresh:
        assert gettext.GNUTranslations(committed)._catalog == (
            gettext.GNUTranslations(fresh)._catalog
        ), "locale/ru/LC_MESSAGES/django.mo is stale: run `make messages`"


def test_the_admin_follows_the_browsers_language():
    client = session(staff_user(superuser=True))
    index = client.get(reverse("admin:index"), **RUSSIAN)
    assert index["Content-Language"] == "ru"
    page = index.content.decode()
    assert "Конфигурация ассистентов" in page  # our site header
    assert "Ассистенты" in page and "Инструменты" in page  # our apps and models
    form = client.get(reverse("admin:assistants_assistant_add"), **RUSSIAN).content.decode()
    assert "Инструкции" in form and "Системный промпт." in form  # label and help text
    assert "Заметка к изменению" in form  # the change note
    english = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert "Assistant configuration" in english.content.decode()
    assert "Конфигурация" not in english.content.decode()


def test_a_validation_message_of_ours_reads_in_russian_and_saves_nothing():
    client = session(staff_user(superuser=True))
    response = client.post(
        reverse("admin:assistants_assistant_add"), assistant_form(model=""), **RUSSIAN
    )
    assert response.status_code == 200
    assert "LLM-ассистенту нужна модель." in response.content.decode()
    assert not Assistant.objects.exists()


def test_the_history_pages_read_in_russian():
    client = session(staff_user(superuser=True))
    client.post(reverse("admin:assistants_assistant_add"), assistant_form(), **RUSSIAN)
    assistant = Assistant.objects.get()
    history = client.get(
        reverse("admin:assistants_assistant_history", args=[assistant.pk]), **RUSSIAN
    ).content.decode()
    assert "История: Planner" in history and "Ревизия" in history
    revision = Revision.objects.order_by("-number").first()
    detail = client.get(
        reverse("admin:config_backend_revision_change", args=[revision.pk]), **RUSSIAN
    ).content.decode()
    assert "1 ассистент" in detail and "0 инструментов" in detail
    assert "Откатить к этой ревизии" in detail


def test_api_messages_stay_english_while_the_admin_speaks_russian():
    admin_page = session(staff_user(superuser=True)).get(reverse("admin:index"), **RUSSIAN)
    assert "Конфигурация ассистентов" in admin_page.content.decode()
    response = key_client("write").post(
        "/api/v1/assistants/", assistant_payload(model=""), format="json", **RUSSIAN
    )
    assert response.status_code == 400
    assert response.json()["model"] == ["An LLM assistant needs a model."]
    assert "Accept-Language" not in response.get("Vary", "")


def test_a_russian_admin_page_leaves_the_next_api_call_on_the_thread_in_english():
    # The test client answers in this thread, as a WSGI worker's thread answers one request
    # after another.
    admin_page = session(staff_user(superuser=True)).get(reverse("admin:index"), **RUSSIAN)
    assert "Конфигурация ассистентов" in admin_page.content.decode()
    response = key_client("write").post(
        "/api/v1/assistants/", assistant_payload(model=""), format="json"
    )
    assert response.json()["model"] == ["An LLM assistant needs a model."]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_russian_browser_gets_the_admin_its_forms_errors_and_history_in_russian():
    """Chromium set to Russian (its Accept-Language): the index, an assistant's form with one
    of our validation messages, its history and the revisions, in Russian; screenshots of each
    in test-artifacts/admin-russian/."""
    User.objects.create_superuser("staff", "staff@example.com", PASSWORD)
    Assistant.objects.create(name="Planner", model="gpt-4o-mini", instructions="Plan things.")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with (
        server(env={"DATABASE_URL": live_database_url()}, workers=1) as base_url,
        chromium_browser() as chromium,
    ):
        context = chromium.new_context(locale="ru-RU", viewport={"width": 1280, "height": 900})
        admin = Watched(context.new_page(), ARTIFACTS)
        page = admin.page
        log_in_as(page, base_url, "staff", PASSWORD)
        assert page.locator("#site-name").inner_text() == "Конфигурация ассистентов"
        assert page.locator("#user-tools").inner_text().upper().startswith("ДОБРО ПОЖАЛОВАТЬ")
        assert page.locator("#delegation-graph-module h2").inner_text().upper() == (
            "ГРАФ ПОРУЧЕНИЙ"
        )
        admin.screenshot("01-index")

        page.goto(f"{base_url}/admin/assistants/assistant/")
        page.click("#result_list a:text('Planner')")
        assert page.locator("label[for=id_instructions]").inner_text().startswith("Инструкции")
        page.fill("#id_model", "")
        page.fill("#id_change_note", "Проверка")
        page.click("input[name=_save]")
        error = page.locator(".field-model ul.errorlist")
        error.wait_for()
        assert error.inner_text() == "LLM-ассистенту нужна модель."
        admin.screenshot("02-assistant-form-with-a-russian-error")

        page.fill("#id_model", "gpt-4o")
        page.fill("#id_change_note", "Новая модель")
        page.click("input[name=_save]")
        page.wait_for_selector("#result_list")
        page.click("#result_list a:text('Planner')")
        page.click("a.historylink")
        history = page.locator("#change-history")
        history.wait_for()
        assert page.locator("h1").inner_text() == "История: Planner"
        assert "Новая модель" in history.inner_text()
        shown = history.inner_text()
        assert "автор: staff" in shown and "ассистент Planner изменение" in shown
        assert "2 ревизии" in shown  # the paginator's count, in Russian plural
        admin.screenshot("03-history")

        page.goto(f"{base_url}/admin/config_backend/revision/")
        page.click("#result_list tbody tr:first-child th a")
        page.wait_for_selector("#rollback-link")
        assert page.locator("#rollback-link").inner_text().upper() == "ОТКАТИТЬ К ЭТОЙ РЕВИЗИИ"
        assert "1 ассистент" in page.locator("#content-main").inner_text()
        admin.screenshot("04-revision")
        assert admin.problems == []
