"""Bad input is a 4xx naming the problem, never a 500 (and nothing is written)."""

import json

import pytest

from assistants.models import Assistant
from tests.factories import assistant_payload, key_client, tool_payload
from tools.models import Tool

pytestmark = pytest.mark.django_db


def post_raw(client, url, body: bytes | str, content_type="application/json"):
    return client.generic("POST", url, body, content_type=content_type)


@pytest.mark.parametrize(
    "body",
    ['{"name": ', "{'name': 'x'}", "nul\x00", "", "NaN", '{"name": NaN}', b"\xff\xfe{}"],
)
def test_malformed_json_is_400(writer, body):
    response = post_raw(writer, "/api/v1/assistants/", body)
    assert response.status_code == 400
    assert "detail" in response.json() or response.json()


@pytest.mark.parametrize("body", ["[]", '["a"]', '"text"', "3", "null", "true"])
def test_json_that_is_not_an_object_is_400(writer, body):
    response = post_raw(writer, "/api/v1/assistants/", body)
    assert response.status_code == 400
    assert response.json()  # a message, not an empty body


@pytest.mark.parametrize(
    "url, body",
    [
        ("/api/v1/assistants/", assistant_payload(name="nul\x00name")),
        ("/api/v1/assistants/", assistant_payload(instructions="a\x00b")),
        ("/api/v1/tools/", tool_payload(description="\x00")),
        ("/api/v1/tools/", tool_payload(input_schema={"type": "object", "title": "a\x00"})),
        ("/api/v1/tools/", tool_payload(input_schema={"type": "object", "\x00": 1})),
        ("/api/v1/tools/", tool_payload(input_schema='{"type": "object", "title": "\\u0000"}')),
    ],
)
def test_nul_characters_are_400(writer, url, body):
    response = post_raw(writer, url, json.dumps(body))
    assert response.status_code == 400
    assert not Assistant.objects.exists() and not Tool.objects.exists()


def test_nul_characters_in_query_filters_are_400(writer):
    assert writer.get("/api/v1/threads/?user_id=a%00b").status_code == 400


def test_a_body_over_the_upload_limit_is_413(writer, settings):
    body = json.dumps(assistant_payload(instructions="x" * (10 * 1024 * 1024)))
    response = post_raw(writer, "/api/v1/assistants/", body)
    assert response.status_code == 413
    assert "detail" in response.json()
    assert not Assistant.objects.exists()


def test_a_body_just_under_the_limit_is_parsed(writer, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4000
    body = json.dumps(assistant_payload(instructions="x" * 3000))
    assert post_raw(writer, "/api/v1/assistants/", body).status_code == 201
    body = json.dumps(assistant_payload(name="Other", instructions="x" * 4000))
    assert post_raw(writer, "/api/v1/assistants/", body).status_code == 413


def test_deeply_nested_json_is_400(writer):
    body = '{"name": "x", "model": "m", "instructions": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert post_raw(writer, "/api/v1/assistants/", body).status_code == 400
    schema = {"type": "object"}
    for _ in range(40):
        schema = {"type": "object", "properties": {"p": schema}}
    response = post_raw(writer, "/api/v1/tools/", json.dumps(tool_payload(input_schema=schema)))
    assert response.status_code == 400


def test_a_reasonably_nested_schema_is_fine(writer):
    schema = {"type": "object"}
    for _ in range(10):
        schema = {"type": "object", "properties": {"p": schema}}
    response = post_raw(writer, "/api/v1/tools/", json.dumps(tool_payload(input_schema=schema)))
    assert response.status_code == 201


def test_infinite_numbers_are_400(writer):
    body = '{"name": "t", "tool_type": "time", "input_schema": {"type": "object", "maximum": '
    body += "1e999}}"
    assert post_raw(writer, "/api/v1/tools/", body).status_code == 400


def test_huge_integers_are_400(writer):
    body = '{"name": "t", "tool_type": "time", "input_schema": {"type": "object", "maximum": '
    body += "9" * 5000 + "}}"
    assert post_raw(writer, "/api/v1/tools/", body).status_code == 400


def test_a_form_body_is_415(writer):
    form = "application/x-www-form-urlencoded"
    response = post_raw(writer, "/api/v1/assistants/", "name=x", form)
    assert response.status_code == 415


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", None),
        ("name", ["x"]),
        ("name", {"a": 1}),
        ("name", "x" * 256),
        ("is_active", "perhaps"),
        ("is_secretary", None),
        ("model", "m" * 300),
        ("openai_assistant_id", ["asst"]),
    ],
)
def test_wrong_types_are_400_naming_the_field(writer, field, value):
    response = writer.post(
        "/api/v1/assistants/", assistant_payload(**{field: value}), format="json"
    )
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("value", ["not-a-uuid", 12, True, ["x"], {"id": "x"}])
def test_a_malformed_delegate_id_is_400(writer, value):
    body = tool_payload(tool_type="sub_assistant", assistant=value)
    response = writer.post("/api/v1/tools/", body, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["assistant"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/assistants/not-a-uuid/",
        "/api/v1/assistants/00000000-0000-0000-0000-00000000000g/config/",
        "/api/v1/tools/123/",
        "/api/v1/threads/%00/",
        "/api/v1/nothing-here/",
    ],
)
def test_malformed_ids_and_unknown_paths_are_json_404(writer, url):
    response = writer.get(url)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_method_not_offered_is_405(writer, secretary):
    assert key_client("runtime").put("/api/v1/threads/", {}, format="json").status_code == 405
    assert writer.delete("/api/v1/config/").status_code == 405
