"""An assistant's instructions are at most MAX_INSTRUCTIONS_BYTES (256 KiB) of UTF-8: refused the
same way in the admin, the API and the import, naming the field and the limit; nothing saved."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from assistants.models import Assistant
from config_backend import transfer
from tests.factories import assistant_form, assistant_payload, key_client

pytestmark = pytest.mark.django_db

LIMIT = 262_144
# Two bytes a character in UTF-8: one character over the limit in bytes, half of it in
# characters, so a count of characters would let it through.
TOO_LARGE = "я" * (LIMIT // 2 + 1)
JUST_FITS = "я" * (LIMIT // 2)
MESSAGE = (
    "Instructions are 262,146 bytes (UTF-8); at most 262,144 are allowed (MAX_INSTRUCTIONS_BYTES)."
)


def test_the_admin_refuses_instructions_over_the_limit_as_a_form_error(admin_client):
    response = admin_client.post(
        reverse("admin:assistants_assistant_add"), assistant_form(instructions=TOO_LARGE)
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["instructions"] == [MESSAGE]
    assert not Assistant.objects.exists()


def test_the_admin_accepts_instructions_of_exactly_the_limit(admin_client):
    response = admin_client.post(
        reverse("admin:assistants_assistant_add"), assistant_form(instructions=JUST_FITS)
    )

    assert response.status_code == 302
    assert Assistant.objects.get().instructions == JUST_FITS


def test_the_api_refuses_instructions_over_the_limit_with_a_400_naming_the_field():
    client = key_client("write")

    response = client.post(
        "/api/v1/assistants/", assistant_payload(instructions=TOO_LARGE), format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"instructions": [MESSAGE]}
    assert not Assistant.objects.exists()


def test_an_api_edit_over_the_limit_changes_nothing(secretary):
    client = key_client("write")

    response = client.patch(
        f"/api/v1/assistants/{secretary.id}/", {"instructions": TOO_LARGE}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"instructions": [MESSAGE]}
    secretary.refresh_from_db()
    assert secretary.instructions == "Help the user."


def test_the_import_refuses_instructions_over_the_limit_naming_the_pointer(tmp_path, secretary):
    before = transfer.config_to_bytes(transfer.export_config(include_threads=True))
    document = {
        "format_version": 1,
        "assistants": [
            {"name": "Secretary", "model": "gpt-4o-mini", "is_secretary": True},
            {"name": "Verbose", "model": "gpt-4o-mini", "instructions": TOO_LARGE},
        ],
        "tools": [],
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    err = StringIO()

    with pytest.raises(CommandError, match="nothing was written") as refused:
        call_command("import_config", str(path), "--no-backup", stdout=StringIO(), stderr=err)

    assert refused.value.returncode == 1
    assert err.getvalue().splitlines() == [f"/assistants/1/instructions: {MESSAGE}"]
    assert transfer.config_to_bytes(transfer.export_config(include_threads=True)) == before
