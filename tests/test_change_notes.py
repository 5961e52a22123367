"""X-Change-Note is UTF-8, raw or percent-encoded (core.change_notes): a Russian or accented note
is stored as written, through Django's test client and through the production server (Granian,
ASGI) with the header's bytes sent as they are. Refusals are in test_hostile_input.py."""

from urllib.parse import quote

import pytest

from core.models import APIKey, Revision
from tests.live import call, live_database_url, server

# Committed transactions: each change set is its own revision only once the previous committed.
pytestmark = pytest.mark.django_db(transaction=True)

NOTES = ["Исправил приветствие", "café"]


def as_servers_give_it(sent: bytes) -> str:
    """A header's bytes as WSGI and ASGI servers hand them to Django: decoded as Latin-1."""
    return sent.decode("latin-1")


def newest_note() -> str:
    return Revision.objects.order_by("-number").first().message


@pytest.mark.parametrize("note", NOTES)
@pytest.mark.parametrize("encode", [str.encode, lambda note: quote(note).encode()])
def test_a_utf8_note_raw_or_percent_encoded_is_stored_as_written(writer, secretary, note, encode):
    response = writer.patch(
        f"/api/v1/assistants/{secretary.id}/",
        {"instructions": "Hello."},
        format="json",
        HTTP_X_CHANGE_NOTE=as_servers_give_it(encode(note)),
    )

    assert response.status_code == 200, response.content
    assert newest_note() == note
    revisions = writer.get("/api/v1/revisions/").json()["results"]
    assert revisions[0]["message"] == note


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        (b"100% sure", "100% sure"),  # no two hex digits after the %: taken as it is
        (b"50%25 off, caf%C3%A9", "50% off, café"),  # percent-encoded throughout
        (b"a+b", "a+b"),  # a plus is a plus, not a space
    ],
)
def test_only_a_percent_with_two_hex_digits_means_percent_encoding(writer, secretary, sent, stored):
    response = writer.patch(
        f"/api/v1/assistants/{secretary.id}/",
        {"instructions": "Hello."},
        format="json",
        HTTP_X_CHANGE_NOTE=as_servers_give_it(sent),
    )

    assert response.status_code == 200, response.content
    assert newest_note() == stored


def test_a_rollback_takes_a_utf8_note_from_the_header(writer, secretary):
    at = Revision.objects.order_by("-number").first().number
    writer.patch(f"/api/v1/assistants/{secretary.id}/", {"instructions": "Oops."}, format="json")

    response = writer.post(
        "/api/v1/rollback/",
        {"to": at},
        format="json",
        HTTP_X_CHANGE_NOTE=as_servers_give_it("Откатил".encode()),
    )

    assert response.status_code == 200, response.content
    assert newest_note() == "Откатил"


@pytest.mark.slow
def test_the_production_server_stores_raw_and_percent_encoded_utf8_notes(secretary):
    _, key = APIKey.objects.create_key(name="editor", scope="write")
    url = f"/api/v1/assistants/{secretary.id}/"
    with server(env={"DATABASE_URL": live_database_url()}, workers=1) as base_url:
        for note in NOTES:
            for sent in (note.encode(), quote(note).encode()):
                # Bytes go on the wire as they are (http.client encodes only str, as Latin-1).
                status, _, body = call(
                    "PATCH",
                    base_url + url,
                    key=key,
                    body={"instructions": f"Hello {sent!r}."},
                    headers={"X-Change-Note": sent},
                )
                assert status == 200, body
                assert newest_note() == note

        status, _, body = call(
            "PATCH",
            base_url + url,
            key=key,
            body={"instructions": "Refused."},
            headers={"X-Change-Note": "café".encode("latin-1")},
        )
        assert status == 400, body
        assert "X-Change-Note" in body.decode()
    secretary.refresh_from_db()
    assert secretary.instructions != "Refused."
