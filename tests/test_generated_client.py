"""A client generated from our live `/api/schema/` by openapi-python-client (the reference
generator, pinned in requirements-dev.txt) works without hand edits: a PATCH sends only the
fields its caller set, a conditional config GET is a 304 with its headers, a 400 parses into the
declared type with each field's messages, and a 403 names the scope or permission missing.

The client is generated once per module, built into a wheel (poetry-core, its build backend,
is installed here) and installed into a fresh venv with no access to ours; the wheels of its
dependencies are downloaded once from the registry, at the versions requirements-dev.txt pins,
into a cache directory reused by later runs (`GENERATED_CLIENT_WHEELS`, by default
~/.cache/assistant-config-backend/wheels). Each test then drives the client in that venv against
a gunicorn server on the test database.
"""

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.test import Client as DjangoClient
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from assistants.models import Assistant
from core.models import APIKey
from tests.factories import staff_user
from tests.live import live_database_url, server
from tools.models import Tool

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PACKAGE = "assistant_config_backend_api_client"
# What the generated package needs at run time (httpx, attrs) and what httpx pulls in.
CLIENT_DEPENDENCIES = [
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "certifi",
    "idna",
    "typing_extensions",
    "attrs",
]
VENV_BIN = Path(sys.executable).parent


def wheel_cache() -> Path:
    default = Path.home() / ".cache" / "assistant-config-backend" / "wheels"
    return Path(os.environ.get("GENERATED_CLIENT_WHEELS", default))


def pip(*args: str, python: Path | None = None) -> None:
    target = ["--python", str(python)] if python else []
    result = subprocess.run(
        [sys.executable, "-m", "pip", *target, *args, "--quiet", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"pip {' '.join(args)}:\n{result.stderr}"


def dependency_wheels() -> Path:
    """The dependencies' wheels, at the versions installed here (requirements-dev.txt pins)."""
    cache = wheel_cache()
    cache.mkdir(parents=True, exist_ok=True)
    cached = {parse_wheel_filename(wheel.name)[:2] for wheel in cache.glob("*.whl")}
    pins = {
        (canonicalize_name(name), Version(importlib.metadata.version(name)))
        for name in CLIENT_DEPENDENCIES
    }
    missing = [f"{name}=={version}" for name, version in sorted(pins - cached)]
    if missing:
        pip("download", "--no-deps", "--only-binary=:all:", "--dest", str(cache), *missing)
    return cache


@pytest.fixture(scope="module")
def served_at(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        database_url = live_database_url()
    with server(env={"DATABASE_URL": database_url}, workers=2) as base_url:
        yield base_url


@dataclass(frozen=True)
class Generated:
    sources: Path  # what openapi-python-client wrote
    python: Path  # of a fresh venv holding only the built client and its dependencies


@pytest.fixture(scope="module")
def generated(served_at, tmp_path_factory) -> Generated:
    work = tmp_path_factory.mktemp("generated")
    schema = work / "schema.json"
    with urllib.request.urlopen(f"{served_at}/api/schema/?format=json", timeout=10) as answer:
        schema.write_bytes(answer.read())
    sources = work / "client"
    generator = [VENV_BIN / "openapi-python-client", "generate", "--path", schema]
    result = subprocess.run(
        [*generator, "--output-path", sources],
        capture_output=True,
        text=True,
        # Our ruff on PATH, so that its post-generation hooks run as on a developer's machine.
        env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = dependency_wheels()
    built = work / "built"
    pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(built), str(sources))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    pip(
        "install", "--no-index", "--find-links", str(wheels), *map(str, built.glob("*.whl")),
        python=python,
    )  # fmt: skip
    return Generated(sources=sources, python=python)


def drive(python: Path, code: str, **values) -> dict:
    """Run `code` with the generated client in its own venv; it puts what it saw in `out`.

    `client(key)` is an AuthenticatedClient for the live server; `sent` collects the bodies
    it sent."""
    prelude = f"""
        import json, sys
        import httpx
        from {PACKAGE} import AuthenticatedClient, Client
        from {PACKAGE}.types import UNSET
        values = json.loads(sys.argv[1])
        sent = []

        def remember(request):
            if request.content:
                sent.append(request.content.decode())

        def client(key):
            return AuthenticatedClient(
                base_url=values["base_url"], token=key,
                httpx_args={{"event_hooks": {{"request": [remember]}}}},
            )

        out = {{}}
    """
    script = textwrap.dedent(prelude) + textwrap.dedent(code) + "\nprint(json.dumps(out))\n"
    result = subprocess.run(
        [python, "-I", "-c", script, json.dumps(values)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def write_key() -> str:
    return APIKey.objects.create_key(name="automation", scope="write")[1]


def test_no_generated_operation_returns_the_same_type_twice(generated):
    sources = [path for path in generated.sources.rglob("api/*/*.py") if path.stem != "__init__"]
    assert sources
    for source in sources:
        signature = re.search(r"def _parse_response\(.*?\) -> (.+?):\n", source.read_text(), re.S)
        returned = re.sub(r"[\s()]", "", signature.group(1)).split("|")
        assert len(returned) == len(set(returned)), (source.name, returned)


def test_a_generated_patch_of_one_field_leaves_every_other_field_unchanged(generated, served_at):
    tool = Tool.objects.create(
        name="get_weather", tool_type="weather", description="Weather for a city."
    )
    secretary = Assistant.objects.create(
        name="Secretary", model="gpt-4o-mini", is_secretary=True, instructions="Help the user."
    )
    out = drive(
        generated.python,
        """
        from uuid import UUID
        from assistant_config_backend_api_client.api.tools import tools_partial_update
        from assistant_config_backend_api_client.api.assistants import assistants_partial_update
        from assistant_config_backend_api_client.models import (
            PatchedAssistantInput, PatchedToolInput
        )
        c = client(values["key"])
        tool = tools_partial_update.sync_detailed(
            UUID(values["tool"]), client=c, body=PatchedToolInput(is_active=False)
        )
        assistant = assistants_partial_update.sync_detailed(
            UUID(values["assistant"]), client=c, body=PatchedAssistantInput(model="gpt-4.1-mini")
        )
        out = {
            "statuses": [tool.status_code, assistant.status_code],
            "sent": sent,
            "tool": [tool.parsed.description, tool.parsed.is_active],
            "assistant": [assistant.parsed.instructions, assistant.parsed.is_secretary],
        }
        """,
        base_url=served_at,
        key=write_key(),
        tool=str(tool.id),
        assistant=str(secretary.id),
    )

    assert out["statuses"] == [200, 200]
    assert [json.loads(body) for body in out["sent"]] == [
        {"is_active": False},
        {"model": "gpt-4.1-mini"},
    ]
    assert out["tool"] == ["Weather for a city.", False]
    assert out["assistant"] == ["Help the user.", True]
    tool.refresh_from_db()
    secretary.refresh_from_db()
    assert (tool.description, tool.is_active) == ("Weather for a city.", False)
    assert (secretary.instructions, secretary.is_secretary, secretary.model) == (
        "Help the user.",
        True,
        "gpt-4.1-mini",
    )


def test_a_conditional_config_get_with_the_etag_is_a_304_with_its_headers(generated, served_at):
    secretary = Assistant.objects.create(name="Secretary", model="gpt-4o-mini", is_secretary=True)
    out = drive(
        generated.python,
        """
        from uuid import UUID
        from assistant_config_backend_api_client.api.assistants import assistants_config
        from assistant_config_backend_api_client.api.config import config_bundle
        c = client(values["key"])
        first = assistants_config.sync_detailed(UUID(values["assistant"]), client=c)
        again = assistants_config.sync_detailed(
            UUID(values["assistant"]), client=c, if_none_match=first.headers["ETag"]
        )
        bundle = config_bundle.sync_detailed(client=c)
        bundle_again = config_bundle.sync_detailed(client=c, if_none_match=bundle.headers["ETag"])
        out = {
            "first": [first.status_code, first.parsed.name, first.parsed.revision,
                      first.headers["ETag"], first.headers["X-Config-Revision"]],
            "again": [again.status_code, again.parsed, again.content.decode(),
                      again.headers["ETag"], again.headers["X-Config-Revision"]],
            "bundle": [bundle.status_code, str(bundle.parsed.secretary)],
            "bundle_again": [bundle_again.status_code, bundle_again.parsed],
        }
        """,
        base_url=served_at,
        key=APIKey.objects.create_key(name="runtime", scope="read")[1],
        assistant=str(secretary.id),
    )

    status, name, revision, etag, revision_header = out["first"]
    assert (status, name) == (200, "Secretary")
    assert etag and revision_header == str(revision)
    assert out["again"] == [304, None, "", etag, revision_header]
    assert out["bundle"] == [200, str(secretary.id)]
    assert out["bundle_again"] == [304, None]


def test_a_400_parses_into_the_declared_type_with_each_fields_messages(generated, served_at):
    out = drive(
        generated.python,
        """
        from assistant_config_backend_api_client.api.tools import tools_create
        from assistant_config_backend_api_client.models import BadRequest, ToolInput, ToolTypeEnum
        c = client(values["key"])
        invalid = tools_create.sync_detailed(
            client=c,
            body=ToolInput(name="", tool_type=ToolTypeEnum.WEATHER),
        )
        # A body that isn't JSON (the generated code never sends one): the same declared type.
        raw = c.get_httpx_client().post(
            "/api/v1/tools/", content=b'{"name": ', headers={"Content-Type": "application/json"}
        )
        malformed = tools_create._build_response(client=c, response=raw)
        out = {
            "invalid": [invalid.status_code, type(invalid.parsed).__name__,
                        invalid.parsed.additional_properties, invalid.parsed.detail is UNSET],
            "malformed": [malformed.status_code, type(malformed.parsed).__name__,
                          malformed.parsed.detail, malformed.parsed.additional_properties],
        }
        """,
        base_url=served_at,
        key=write_key(),
    )

    status, parsed_type, fields, no_detail = out["invalid"]
    assert (status, parsed_type, no_detail) == (400, "BadRequest", True)
    assert fields == {"name": ["This field may not be blank."]}
    status, parsed_type, detail, fields = out["malformed"]
    assert (status, parsed_type, fields) == (400, "BadRequest", {})
    assert detail.startswith("JSON parse error - ")
    assert not Tool.objects.exists()


def test_a_403_names_the_scope_the_api_key_lacks(generated, served_at):
    tool = Tool.objects.create(name="get_time", tool_type="time", description="The time.")
    assistant = Assistant.objects.create(name="Secretary", model="gpt-4o-mini")
    out = drive(
        generated.python,
        """
        from uuid import UUID
        from assistant_config_backend_api_client.api.tools import tools_partial_update
        from assistant_config_backend_api_client.api.threads import threads_register
        from assistant_config_backend_api_client.models import PatchedToolInput, ThreadRegister
        patch = tools_partial_update.sync_detailed(
            UUID(values["tool"]), client=client(values["read"]),
            body=PatchedToolInput(description="Changed."),
        )
        register = threads_register.sync_detailed(
            client=client(values["write"]),
            body=ThreadRegister(user_id="u1", assistant=UUID(values["assistant"]), thread_id="t"),
        )
        out = {
            "patch": [patch.status_code, type(patch.parsed).__name__, patch.parsed.detail],
            "register": [register.status_code, register.parsed.detail],
        }
        """,
        base_url=served_at,
        read=APIKey.objects.create_key(name="runtime", scope="read")[1],
        write=write_key(),
        tool=str(tool.id),
        assistant=str(assistant.id),
    )

    assert out["patch"] == [
        403,
        "Error",
        "This API key's scope `read` does not allow PATCH here; `write` scope needed.",
    ]
    assert out["register"] == [
        403,
        "This API key's scope `write` does not allow POST here; `runtime` scope needed.",
    ]
    tool.refresh_from_db()
    assert tool.description == "The time."


def test_a_403_names_the_permission_the_staff_user_lacks(generated, served_at):
    session = DjangoClient()
    session.force_login(staff_user("assistants.view_assistant"))
    out = drive(
        generated.python,
        """
        from assistant_config_backend_api_client.api.assistants import assistants_list
        from assistant_config_backend_api_client.api.tools import tools_list
        c = Client(base_url=values["base_url"], cookies={"sessionid": values["session"]})
        assistants = assistants_list.sync_detailed(client=c)
        tools = tools_list.sync_detailed(client=c)
        out = {"assistants": assistants.status_code,
                "tools": [tools.status_code, tools.parsed.detail]}
        """,
        base_url=served_at,
        session=session.cookies["sessionid"].value,
    )

    assert out["assistants"] == 200
    assert out["tools"] == [403, "You need the `tools.view_tool` permission to GET here."]
