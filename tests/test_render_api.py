"""POST /api/v1/assistants/{id}/render/: the instructions rendered with variables, live, at a
revision or at a label; strict (a 400 naming the variable); read scope; the same text the
client renders offline."""

from io import StringIO

import pytest
from config_client import ConfigClient, TemplateError
from config_client._store import write_file
from config_client.templates import render
from django.core.management import call_command

from assistants.models import Assistant
from core.models import Label
from core.store import committed_counter
from tests.factories import key_client, staff_client
from tests.throwaway_servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)

VARIABLES = [
    {"name": "user_name", "type": "string", "required": True},
    {"name": "age", "type": "integer"},
    {"name": "vip", "type": "boolean", "default": False},
    {"name": "tone", "type": "enum", "enum": ["formal", "casual"], "default": "casual"},
]
TEMPLATE = "Hi {{ user_name }} ({{age}}), vip={{ vip }}, be {{tone}}. \\{{ literal"


@pytest.fixture
def greeter(db):
    assistant = Assistant(name="Greeter", model="m", instructions=TEMPLATE, variables=VARIABLES)
    assistant.full_clean()
    assistant.save()
    return assistant


def post(client, assistant, **body):
    return client.post(f"/api/v1/assistants/{assistant.pk}/render/", body, format="json")


def test_a_read_key_renders_the_instructions_with_the_values_and_defaults(reader, greeter):
    response = post(reader, greeter, variables={"user_name": "Ann", "age": 30})
    assert response.status_code == 200, response.json()
    config = reader.get(f"/api/v1/assistants/{greeter.pk}/config/").json()
    assert response.json() == {
        "instructions": "Hi Ann (30), vip=false, be casual. {{ literal",
        "revision": config["revision"],
    }


def test_the_endpoint_renders_exactly_what_the_client_renders(reader, greeter):
    values = {"user_name": "Zoë {{ x }}", "age": -7, "vip": True, "tone": "formal"}
    config = reader.get(f"/api/v1/assistants/{greeter.pk}/config/").json()
    response = post(reader, greeter, variables=values)
    assert response.json()["instructions"] == render(
        config["instructions"], config["variables"], values
    )


@pytest.mark.parametrize(
    ("values", "variable", "message"),
    [
        ({}, "user_name", "variable “user_name” is required"),
        ({"user_name": "A", "nick": "x"}, "nick", "variable “nick” is not declared"),
        ({"user_name": "A", "age": "30"}, "age", "variable “age” must be of type integer"),
        ({"user_name": "A", "age": True}, "age", "variable “age” must be of type integer"),
        ({"user_name": 5}, "user_name", "variable “user_name” must be of type string"),
        ({"user_name": "A", "tone": "rude"}, "tone", "variable “tone” must be one of"),
    ],
)
def test_rendering_is_strict_with_a_400_naming_the_variable(
    reader, greeter, values, variable, message
):
    response = post(reader, greeter, variables=values)
    assert response.status_code == 400
    # Nested errors are flattened to `field.key`, as every 400 of the API (core.api.errors).
    [(field, [text])] = response.json().items()
    assert field == f"variables.{variable}"
    assert text.startswith(message)


def test_it_renders_the_instructions_as_they_were_at_a_revision_and_at_a_label(
    reader, writer, greeter
):
    then = committed_counter()
    Label.objects.create(name="production", revision=then)
    changed = writer.patch(
        f"/api/v1/assistants/{greeter.pk}/",
        {"instructions": "Bye {{ user_name }}."},
        format="json",
    )
    assert changed.status_code == 200
    values = {"user_name": "Ann"}

    live = post(reader, greeter, variables=values).json()
    at_revision = post(reader, greeter, variables=values, revision=then).json()
    at_label = post(reader, greeter, variables=values, label="production").json()

    assert live["instructions"] == "Bye Ann."
    assert at_revision == {
        "instructions": "Hi Ann (), vip=false, be casual. {{ literal",
        "revision": then,
    }
    assert at_label == at_revision
    pinned = key_client("read", label="production")
    assert post(pinned, greeter, variables=values).json() == at_revision


def test_unknown_points_and_assistants_are_404_and_bad_ones_400(reader, greeter):
    assert post(reader, greeter, variables={"user_name": "A"}, revision=10**9).status_code == 404
    assert post(reader, greeter, variables={"user_name": "A"}, label="nope").status_code == 404
    both = post(reader, greeter, variables={"user_name": "A"}, revision=1, label="production")
    assert both.status_code == 400 and "label" in both.json()
    bad_label = post(reader, greeter, variables={"user_name": "A"}, label="Not A Label")
    assert bad_label.status_code == 400 and "label" in bad_label.json()
    inactive = Assistant.objects.create(name="Off", model="m", is_active=False)
    assert post(reader, inactive, variables={}).status_code == 404
    assert post(reader, greeter, variables=[1]).status_code == 400
    assert post(reader, greeter, variables={"user_name": "A"}, colour=1).json() == {
        "colour": ["Unknown field."]
    }


def test_the_rendered_text_is_bounded(reader, db):
    many = "{{ v }}" * 2000
    assistant = Assistant(
        name="Echo", model="m", instructions=many, variables=[{"name": "v", "type": "string"}]
    )
    assistant.full_clean()
    assistant.save()
    response = post(reader, assistant, variables={"v": "x" * 1000})
    assert response.status_code == 400
    assert "exceed 1,048,576 bytes" in response.json()["variables"][0]


def test_a_staff_user_needs_only_the_view_permission(greeter):
    viewer = staff_client("assistants.view_assistant")
    assert post(viewer, greeter, variables={"user_name": "A"}).status_code == 200
    nobody = staff_client()
    refused = post(nobody, greeter, variables={"user_name": "A"})
    assert refused.status_code == 403
    assert "assistants.view_assistant" in refused.json()["detail"]


def test_rendering_writes_nothing(reader, greeter):
    before = committed_counter()
    post(reader, greeter, variables={"user_name": "A"})
    assert committed_counter() == before


def test_the_client_renders_offline_from_its_file_exactly_as_the_endpoint(
    tmp_path, reader, greeter
):
    bundle = reader.get("/api/v1/config/").json()
    path = tmp_path / "config.json"
    write_file(path, bundle, etag=None, label=None, api_key=reader.raw_key)
    # Nothing listens there: the client serves its last-known-good file.
    client = ConfigClient(
        f"http://127.0.0.1:{free_port()}",
        reader.raw_key,
        cache_path=path,
        listen=False,
        start_timeout=0.5,
    ).start()
    try:
        values = {"user_name": "Ann", "age": 3, "vip": True}
        served = post(reader, greeter, variables=values).json()["instructions"]
        assert client.render("Greeter", **values) == served
        with pytest.raises(TemplateError, match="variable “user_name” is required"):
            client.render("Greeter")
        with pytest.raises(TemplateError, match="variable “age” must be of type integer"):
            client.render("Greeter", user_name="Ann", age="3")
    finally:
        client.stop()


def test_the_demo_secretary_has_model_settings_and_renders_its_variable(reader):
    call_command("import_config", "demo/config.json", "--no-backup", stdout=StringIO())
    secretary = Assistant.objects.get(name="Secretary")
    assert secretary.model_settings["max_output_tokens"] == 1024
    named = post(reader, secretary, variables={"user_name": "Ann"}).json()["instructions"]
    unnamed = post(reader, secretary, variables={}).json()["instructions"]
    assert named.startswith("You are Ann's personal secretary.")
    assert unnamed.startswith("You are the user's personal secretary.")
