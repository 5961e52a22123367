"""The API's change note: the `X-Change-Note` header (docs/contract.md "Revisions") as text.

HTTP carries a header's value as bytes, and WSGI and ASGI servers hand it to Django decoded as
Latin-1, so a raw UTF-8 note ("café", "Исправил приветствие") would be stored garbled
("cafÃ©"). The header is read as UTF-8, in either of two forms told apart by one rule:

- percent-encoded (RFC 3986 over UTF-8, as `encodeURIComponent` or `urllib.parse.quote` make
  it) when the value holds a `%` followed by two hex digits: it is percent-decoded (`+` stays a
  plus). A note meaning a literal "%41" is sent percent-encoded itself ("%2541");
- else raw: the bytes as sent (plain ASCII is both).

Bytes that are not UTF-8 in the form the rule picks, and a NUL (PostgreSQL cannot store it), are
a 400 naming the header: nothing is guessed, nothing is changed.
"""

import re
from urllib.parse import unquote_to_bytes

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from core.api.json_input import unstorable_text_problem

CHANGE_NOTE_HEADER = "X-Change-Note"

_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")

# For the API's docs of every write that takes a note (`change_note_parameter`).
CHANGE_NOTE_ENCODING = (
    "UTF-8, raw or percent-encoded (`caf%C3%A9`): a value holding `%` and two hex digits is "
    "percent-decoded, so a literal `%41` is sent as `%2541`. Not UTF-8: 400 naming the header."
)


class MalformedChangeNote(ValueError):
    """Why the header is not a note (one sentence naming the header)."""


def change_note_from_header(value: str) -> str:
    """The note a header value holds (Django's Latin-1 string of its bytes), stripped; or
    MalformedChangeNote."""
    try:
        sent = value.encode("latin-1")
    except UnicodeEncodeError:
        # No server makes such a string from bytes: an in-process caller (Django's test client)
        # passed text, which is taken as it is.
        text = value
    else:
        text = _utf8(sent, form="raw")
    if _PERCENT_ESCAPE.search(text):
        text = _utf8(unquote_to_bytes(text), form="percent-encoded")
    problem = unstorable_text_problem(text)
    if problem:
        raise MalformedChangeNote(f"{CHANGE_NOTE_HEADER} {problem}.")
    return text.strip()


def _utf8(data: bytes, *, form: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedChangeNote(
            f"{CHANGE_NOTE_HEADER} must be UTF-8, raw or percent-encoded; its {form} bytes are not."
        ) from None


def change_note_parameter(purpose: str) -> OpenApiParameter:
    """The header, documented for one operation: `purpose` says what the note is there."""
    return OpenApiParameter(
        CHANGE_NOTE_HEADER,
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        description=f"{purpose} {CHANGE_NOTE_ENCODING}",
    )


# The header of every API write that changes the configuration.
REVISION_NOTE_PARAMETER = change_note_parameter(
    "The note of the revision this change makes (the history, `config_log`)."
)
