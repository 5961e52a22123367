"""The OpenAPI document and Swagger UI: public, valid, complete, and served offline."""

import io
import re

import jsonschema
import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        out = io.StringIO()
        call_command("spectacular", "--format", "openapi-json", stdout=out)
    import json

    return json.loads(out.getvalue())


def test_the_schema_validates_without_warnings(tmp_path):
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml")
    )


def test_the_schema_is_public(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    document = yaml.safe_load(response.content)
    assert document["openapi"].startswith("3.")


def test_the_schema_is_public_even_with_a_bad_key(client):
    response = client.get("/api/schema/?format=json", HTTP_AUTHORIZATION="Bearer bad.key")
    assert response.status_code == 200


def test_it_documents_every_spec_path_and_method(schema):
    paths = {path: set(item) - {"parameters"} for path, item in schema["paths"].items()}
    assert paths == {
        "/api/v1/assistants/": {"get", "post"},
        "/api/v1/assistants/{assistant_id}/": {"get", "put", "patch", "delete"},
        "/api/v1/assistants/{assistant_id}/tools/": {"get"},
        "/api/v1/assistants/{assistant_id}/tools/{tool_id}/": {"post", "delete"},
        "/api/v1/assistants/{assistant_id}/config/": {"get"},
        "/api/v1/assistants/{assistant_id}/render/": {"post"},
        "/api/v1/config/": {"get"},
        "/api/v1/config/events/": {"get"},
        "/api/v1/tools/": {"get", "post"},
        "/api/v1/tools/{tool_id}/": {"get", "put", "patch", "delete"},
        "/api/v1/snippets/": {"get", "post"},
        "/api/v1/snippets/{snippet_id}/": {"get", "put", "patch", "delete"},
        "/api/v1/threads/": {"get", "post"},
        "/api/v1/threads/{thread_pk}/": {"get", "patch", "delete"},
        "/api/v1/revisions/": {"get"},
        "/api/v1/revisions/{number}/": {"get"},
        "/api/v1/diff/": {"get"},
        "/api/v1/rollback/": {"post"},
        "/api/v1/labels/": {"get"},
        "/api/v1/labels/{name}/": {"get", "put"},
        "/api/v1/labels/{name}/history/": {"get"},
        "/api/v1/labels/{name}/promote/": {"post"},
        "/api/v1/labels/{name}/abort/": {"post"},
        "/api/v1/label-requests/": {"get"},
        "/api/v1/label-requests/{request_id}/": {"get"},
        "/api/v1/label-requests/{request_id}/approve/": {"post"},
        "/api/v1/label-requests/{request_id}/reject/": {"post"},
        "/api/v1/label-requests/{request_id}/cancel/": {"post"},
        "/api/v1/webhooks/": {"get", "post"},
        "/api/v1/webhooks/{webhook_id}/": {"get", "put", "patch", "delete"},
        "/api/v1/outcomes/": {"get", "post"},
    }


def test_it_documents_bearer_auth_on_every_operation(schema):
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            assert {"bearerAuth": []} in operation["security"], (method, path)


def test_it_documents_the_status_codes_of_each_operation(schema):
    paths = schema["paths"]

    def codes(path, method):
        return set(paths[path][method]["responses"])

    for path, item in paths.items():
        for method in item:
            assert {"401", "403"} <= codes(path, method), (method, path)
    assert {"200", "304", "404"} <= codes("/api/v1/assistants/{assistant_id}/config/", "get")
    assert {"200", "304"} <= codes("/api/v1/config/", "get")
    assert {"201", "400", "413"} <= codes("/api/v1/assistants/", "post")
    assert {"204", "404", "409"} <= codes("/api/v1/assistants/{assistant_id}/", "delete")
    assert {"204", "404", "409"} <= codes("/api/v1/tools/{tool_id}/", "delete")
    assert {"200", "201", "400"} <= codes("/api/v1/threads/", "post")
    assert {"200", "201", "404"} <= codes(
        "/api/v1/assistants/{assistant_id}/tools/{tool_id}/", "post"
    )
    assert {"400"} <= codes("/api/v1/assistants/", "get")
    assert {"200", "201", "400", "413"} <= codes("/api/v1/outcomes/", "post")


def test_it_documents_the_error_shapes(schema):
    schemas = schema["components"]["schemas"]
    assert "references" in schemas["ReferencedError"]["properties"]
    # One object: field errors, or `{"detail": ...}` for a body that isn't storable JSON.
    bad_request = schemas["BadRequest"]
    assert "anyOf" not in bad_request and "ValidationError" not in schemas
    assert bad_request["properties"]["detail"]["type"] == "string"
    assert bad_request["properties"]["non_field_errors"]["items"] == {"type": "string"}
    assert bad_request["additionalProperties"] == {"type": "array", "items": {"type": "string"}}
    assert "required" not in bad_request


def test_each_error_status_has_one_body_schema_across_the_document(schema):
    bodies: dict[str, set[str]] = {}
    for item in schema["paths"].values():
        for operation in item.values():
            for code, response in operation["responses"].items():
                if int(code) >= 400:
                    body = response["content"]["application/json"]["schema"]
                    bodies.setdefault(code, set()).add(body["$ref"].rsplit("/", 1)[1])
    assert bodies == {
        "400": {"BadRequest"},
        "401": {"Error"},
        "403": {"Error"},
        "404": {"Error"},
        "409": {"ReferencedError"},
        "413": {"Error"},
        "415": {"Error"},
        "503": {"Error"},
    }


def request_schemas(schema):
    """Every request body schema, `$ref`s resolved, with the operation it belongs to."""
    components = schema["components"]["schemas"]

    def resolve(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(components[node["$ref"].rsplit("/", 1)[1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                yield f"{method} {path}", resolve(content["schema"])


def test_no_request_schema_has_a_default_a_generated_client_would_send(schema):
    def defaults(node, pointer=""):
        if isinstance(node, dict):
            found = [pointer] if "default" in node else []
            for key, value in node.items():
                found += defaults(value, f"{pointer}/{key}")
            return found
        if isinstance(node, list):
            return [p for i, value in enumerate(node) for p in defaults(value, f"{pointer}/{i}")]
        return []

    operations = dict(request_schemas(schema))
    assert len(operations) >= 9  # POST/PUT/PATCH of assistants, tools, links, threads
    for operation, body in operations.items():
        assert defaults(body) == [], operation


def test_the_defaults_of_a_post_or_put_are_described_not_declared(schema):
    schemas = schema["components"]["schemas"]
    assert schemas["ToolInput"]["properties"]["is_active"]["description"] == (
        "Default if omitted: `true`."
    )
    assert schemas["AssistantInput"]["properties"]["instructions"]["description"] == (
        'Default if omitted: `""`.'
    )
    patched = schemas["PatchedToolInput"]["properties"]  # an omitted field keeps its value
    assert "description" not in patched["is_active"]
    assert "description" not in patched["description"]


def test_config_reads_declare_their_headers_and_a_304_without_a_body(schema):
    for path in ["/api/v1/config/", "/api/v1/assistants/{assistant_id}/config/"]:
        responses = schema["paths"][path]["get"]["responses"]
        assert set(responses["200"]["headers"]) == {
            "ETag",
            "X-Config-Revision",
            "X-Config-Cache",
            "X-Config-Variant",
        }
        assert set(responses["304"]["headers"]) == {"ETag", "X-Config-Revision", "X-Config-Variant"}
        assert "content" not in responses["304"]
        # Every header but the variant, which only a label read sends.
        headers = responses["200"]["headers"]
        assert [name for name, header in headers.items() if not header.get("required")] == [
            "X-Config-Variant"
        ]


def test_the_event_stream_is_documented_as_text_event_stream_with_json_refusals(schema):
    operation = schema["paths"]["/api/v1/config/events/"]["get"]
    responses = operation["responses"]
    assert set(responses["200"]["content"]) == {"text/event-stream"}
    assert "Last-Event-ID" in responses["200"]["description"]
    for code in ("401", "403"):
        assert set(responses[code]["content"]) == {"application/json"}
    assert {(p["in"], p["name"]) for p in operation["parameters"]} == {
        ("header", "Last-Event-ID"),
        ("query", "last_event_id"),
    }


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/tools/", '{"name": '),
        ("/api/v1/tools/", '{"name": "x", "name": "y"}'),
        ("/api/v1/tools/", "[]"),
        ("/api/v1/tools/", '"text"'),
        ("/api/v1/tools/", '{"name": "", "tool_type": "time", "colour": 1}'),
        ("/api/v1/tools/", '{"name": "t", "tool_type": "time", "input_schema": {"type": 3}}'),
        ("/api/v1/assistants/", '{"name": "A", "is_secretary": "maybe"}'),
    ],
)
def test_every_400_body_has_the_declared_shape(schema, writer, url, body):
    response = writer.generic("POST", url, body, content_type="application/json")

    assert response.status_code == 400
    data = response.json()
    jsonschema.validate(data, schema["components"]["schemas"]["BadRequest"])
    assert "detail" not in data or list(data) == ["detail"]  # never both shapes at once


def test_it_documents_that_inputs_refuse_unknown_keys(schema):
    schemas = schema["components"]["schemas"]
    for name in ["AssistantInput", "PatchedToolInput", "LinkInput", "ThreadRegister"]:
        assert schemas[name]["additionalProperties"] is False, name
    patch = schema["paths"]["/api/v1/threads/{thread_pk}/"]["patch"]["requestBody"]
    assert patch["content"]["application/json"]["schema"]["required"] == ["thread_id"]


def test_it_documents_the_404_of_a_page_that_does_not_exist(schema):
    for path in ["/api/v1/assistants/", "/api/v1/tools/", "/api/v1/threads/"]:
        assert "404" in schema["paths"][path]["get"]["responses"], path


def test_it_documents_the_resolved_config_shape(schema):
    config = schema["components"]["schemas"]["ResolvedConfig"]
    assert list(config["properties"]) == [
        "id",
        "name",
        "assistant_type",
        "model",
        "instructions",
        "openai_assistant_id",
        "is_secretary",
        "model_settings",
        "output",
        "variables",
        "revision",
        "tools",
    ]
    bundle = schema["components"]["schemas"]["ConfigBundle"]
    assert list(bundle["properties"]) == ["revision", "secretary", "assistants"]


def test_swagger_ui_is_public_and_loads_nothing_from_outside(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    external = re.findall(r"""(?:src|href)=["']?(https?:)?//""", html)
    assert external == [], html
    assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    static_assets = [a for a in assets if a.startswith("/static/")]
    assert any("swagger-ui-bundle" in a for a in static_assets)
    for asset in static_assets:
        assert finders.find(asset.removeprefix("/static/")), asset
