"""The OpenAPI document and Swagger UI: public, valid, complete, and served offline."""

import io
import re

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
        "/api/v1/config/": {"get"},
        "/api/v1/tools/": {"get", "post"},
        "/api/v1/tools/{tool_id}/": {"get", "put", "patch", "delete"},
        "/api/v1/threads/": {"get", "post"},
        "/api/v1/threads/{thread_pk}/": {"get", "patch", "delete"},
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


def test_it_documents_the_error_shapes(schema):
    schemas = schema["components"]["schemas"]
    assert schemas["ValidationError"]["additionalProperties"]["type"] == "array"
    assert "references" in schemas["ReferencedError"]["properties"]
    # Field errors, or `{"detail": ...}` for a body that isn't storable JSON.
    assert schemas["BadRequest"]["anyOf"] == [
        {"$ref": "#/components/schemas/ValidationError"},
        {"$ref": "#/components/schemas/Error"},
    ]
    response_400 = schema["paths"]["/api/v1/tools/"]["post"]["responses"]["400"]
    assert response_400["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BadRequest"
    }


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
