"""The server and the client cannot drift: on a generated corpus of templates and values, the
API accepts a template exactly when the grammar parses it (with every placeholder declared),
and the render endpoint answers exactly what the client's `render` gives for the config the
API serves (or refuses exactly what it refuses)."""

import pytest
from config_client.templates import Include, Placeholder, TemplateError, parse, render
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistants.models import Assistant
from tests.factories import assistant_payload, key_client

pytestmark = pytest.mark.django_db

VARIABLES = [
    {"name": "s", "type": "string", "required": True},
    {"name": "n", "type": "number", "default": 1.5},
    {"name": "i", "type": "integer"},
    {"name": "b", "type": "boolean", "default": False},
    {"name": "e", "type": "enum", "enum": ["a", "b"], "default": "a"},
]
PIECES = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6),
    st.sampled_from(
        ["{{", "}}", "\\{{", "\\", "{", "{{ s }}", "{{s}}", "{{  n  }}", "{{ i }}", "{{b}}"]
    ),
    st.sampled_from(["{{ e }}", "{{ x }}", "{{ S }}", "{{ s", "{{> snip }}", "{{ 1 }}"]),
)
VALUES = st.fixed_dictionaries(
    {},
    optional={
        "s": st.one_of(st.text(max_size=5), st.integers()),
        "n": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers()),
        "i": st.one_of(st.integers(-(10**6), 10**6), st.booleans()),
        "b": st.booleans(),
        "e": st.sampled_from(["a", "b", "c"]),
        "zz": st.just(1),
    },
)


def client_render(template: str, values: dict) -> tuple[bool, str]:
    try:
        return True, render(template, VARIABLES, values)
    except TemplateError as exc:
        return False, str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(pieces=st.lists(PIECES, max_size=8), values=VALUES)
def test_the_endpoint_and_the_client_agree_on_a_generated_corpus(pieces, values):
    Assistant.objects.all().delete()
    writer, reader = key_client("write"), key_client("read")
    template = "".join(pieces)
    created = writer.post(
        "/api/v1/assistants/",
        assistant_payload(instructions=template, variables=VARIABLES),
        format="json",
    )
    try:
        parts = parse(template)
        declared = {variable["name"] for variable in VARIABLES}
        parses = not any(isinstance(part, Include) for part in parts) and all(
            part.name in declared for part in parts if isinstance(part, Placeholder)
        )
    except TemplateError:
        parses = False
    assert (created.status_code == 201) is parses, (template, created.json())
    if not parses:
        return
    assistant_id = created.json()["id"]
    config = reader.get(f"/api/v1/assistants/{assistant_id}/config/").json()
    served = reader.post(
        f"/api/v1/assistants/{assistant_id}/render/", {"variables": values}, format="json"
    )
    ok, text = client_render(config["instructions"], values)
    assert (served.status_code == 200) is ok, (template, values, served.json(), text)
    if ok:
        assert served.json()["instructions"] == text
    else:
        assert text in str(served.json())
