"""What tests make: rows, API clients holding a key or a staff session, request payloads.

Fixtures live in conftest.py; test modules import these plain functions from here (never
from conftest.py or from another test module).
"""

import asyncio
import itertools
import json
import os
import subprocess
import sys
import threading
from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from jsonschema import Draft202012Validator, exceptions, validators
from rest_framework.test import APIClient

from assistants.models import Assistant
from core.api.json_input import MAX_PROBLEMS, JSONProblem, json_pointer
from core.models import APIKey, ConfigRevision, Label, LabelMove
from snippets.models import Snippet
from tools.models import AssistantToolLink, Tool
from webhooks.models import Webhook
from webhooks.services import webhook_create

# Rows.


def make_delegate_tool(name: str, delegate: Assistant) -> Tool:
    """A sub-assistant tool delegating to `delegate`."""
    return Tool.objects.create(
        name=name,
        tool_type=Tool.Type.SUB_ASSISTANT,
        assistant=delegate,
        input_schema={"type": "object", "properties": {"request": {"type": "string"}}},
    )


def link(assistant: Assistant, tool: Tool, **fields) -> AssistantToolLink:
    return AssistantToolLink.objects.create(assistant=assistant, tool=tool, **fields)


def assistant_including_snippets(count: int, name: str = "Includer") -> Assistant:
    """An assistant whose instructions include `count` snippets (s00, s01, …: the first
    includes the second, the others are included directly), each `Part i.`."""
    snippets = [f"s{i:02}" for i in range(count)]
    for i, snippet in enumerate(snippets):
        text = f"Part {i}." + (" {{> s01 }}" if i == 0 and count > 1 else "")
        Snippet.objects.create(name=snippet, text=text)
    included = [snippet for i, snippet in enumerate(snippets) if i != 1]
    instructions = "Hello {{ user_name }}. " + " ".join(f"{{{{> {s} }}}}" for s in included)
    return Assistant.objects.create(name=name, model="m", instructions=instructions)


def assistant_with_tools(count: int, name: str = "Busy") -> Assistant:
    """An assistant linked to `count` tools, the last of them delegating to a second assistant."""
    assistant = Assistant.objects.create(name=name, model="m")
    delegate = Assistant.objects.create(name=f"{name} delegate", model="m")
    tools = Tool.objects.bulk_create(
        Tool(name=f"{name}_tool_{i:03}", tool_type="time") for i in range(count - 1)
    )
    tools.append(make_delegate_tool(f"{name}_ask", delegate))
    AssistantToolLink.objects.bulk_create(
        AssistantToolLink(assistant=assistant, tool=tool, sub_assistant=tool.assistant)
        for tool in tools
    )
    return assistant


def staff_user(*permissions: str, superuser: bool = False) -> User:
    """A staff user holding exactly these permissions ("assistants.view_assistant")."""
    user = User.objects.create_user(
        username=f"staff{User.objects.count()}",
        password="pw",
        is_staff=True,
        is_superuser=superuser,
    )
    for dotted in permissions:
        app_label, codename = dotted.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def make_webhook(url: str, events=("revision", "label"), **fields) -> Webhook:
    """A webhook to `url` (for a receiver on loopback, the test allows 127.0.0.1 first)."""
    return webhook_create(url=url, events=list(events), **fields)


# API clients.


def key_client(scope: str = "read", **key_fields) -> APIClient:
    """A client sending `Authorization: Bearer <a new key of this scope>`."""
    _, key = APIKey.objects.create_key(name=f"test {scope}", scope=scope, **key_fields)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    client.raw_key = key
    return client


def staff_client(*permissions: str, superuser: bool = False) -> APIClient:
    """A client logged in as a staff user with these permissions ("assistants.view_assistant")."""
    client = APIClient()
    client.force_login(staff_user(*permissions, superuser=superuser))
    return client


# Payloads.


def assistant_payload(**fields) -> dict:
    return {"name": "Helper", "assistant_type": "llm", "model": "gpt-4o-mini", **fields}


def tool_payload(**fields) -> dict:
    return {
        "name": "get_time",
        "tool_type": "time",
        "description": "The time.",
        "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}},
        **fields,
    }


def assistant_form(**overrides) -> dict:
    """The admin's add form of an LLM assistant without tools; an override of None drops a field."""
    data = {
        "name": "Planner",
        "assistant_type": "llm",
        "model": "gpt-4o-mini",
        "openai_assistant_id": "",
        "instructions": "Plan things.",
        "is_active": "on",
        "tool_links-TOTAL_FORMS": "0",
        "tool_links-INITIAL_FORMS": "0",
        "tool_links-MIN_NUM_FORMS": "0",
        "tool_links-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


# Strict tools (rule 8): a schema strict mode accepts, and one it refuses.

STRICT_READY_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": ["integer", "null"], "minimum": 1, "description": "Null for 1."},
        "units": {"type": ["string", "null"], "enum": ["metric", "imperial", None]},
    },
    "required": ["city", "days", "units"],
    "additionalProperties": False,
}
# Strict mode refuses it: "tz" is optional.
OPTIONAL_SCHEMA = {
    "type": "object",
    "properties": {"tz": {"type": "string"}},
    "additionalProperties": False,
}
# What strict mode says about it, at /properties/tz.
OPTIONAL_PROBLEM = (
    'optional (not in "required"); strict mode sends every property: list it in "required" '
    'and, if it may be left out, make it nullable: "type": ["string", "null"].'
)


def write_config_file(tmp_path, document) -> str:
    """`document` written as an import file in tmp_path; returns its path."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def import_error_lines(path, *args) -> list[str]:
    """The error lines of an import (with `args`) that fails and writes nothing."""
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("import_config", path, "--no-backup", *args, stdout=StringIO(), stderr=err)
    return err.getvalue().splitlines()


def python_jsonschema_problems(schema: dict) -> list[JSONProblem]:
    """Rule 1's metaschema walk as it was before jsonschema-rs: Python jsonschema with the
    draft's FORMAT_CHECKER, the first MAX_PROBLEMS errors sorted by its relevance. The reference
    that tests/test_metaschema_differential.py and bench/schema_bench.py hold tools.metaschema
    to. `schema` names a draft Python jsonschema knows, or none."""
    validator = validators.validator_for(schema, default=Draft202012Validator)
    metaschema = validator(validator.META_SCHEMA, format_checker=validator.FORMAT_CHECKER)
    errors = itertools.islice(metaschema.iter_errors(schema), MAX_PROBLEMS)
    return [
        JSONProblem(json_pointer(error.absolute_path), error.message)
        for error in sorted(errors, key=exceptions.relevance)
    ]


def strict_schema_of_values(values: int) -> dict:
    """A strict-ready tool schema of exactly `values` JSON values (5 + 3 per property):
    string properties, every one required."""
    names = [f"p{index}" for index in range((values - 5) // 3)]
    assert 5 + 3 * len(names) == values, "values must be 5 + 3 × properties"
    return {
        "type": "object",
        "properties": {name: {"type": "string"} for name in names},
        "required": names,
        "additionalProperties": False,
    }


def live_get_or_build(*, assistant_id, revision: int, build, cached=None):
    """core.reads.build.get_or_build of a live entry (None: the bundle's) tagged `revision`,
    as the config view calls it; `build()` returns the bytes (None: nothing to serve)."""
    from core.reads.build import Built, get_or_build
    from core.reads.points import PLAIN
    from core.reads.reads import LiveRead

    return get_or_build(
        LiveRead(assistant_id, PLAIN),
        tag=revision,
        build=lambda: Built(build()),
        cached=cached,
    )


def session(user: User) -> Client:
    """A test client logged in as `user` (an admin session)."""
    client = Client()
    client.force_login(user)
    return client


def concurrently(count: int, function) -> list:
    """`function()` in `count` threads released at once; their results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index):
        try:
            barrier.wait()
            results[index] = function()
        except Exception as exc:  # noqa: BLE001  (reported by the test's assertions)
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


async def asgi_get(app, path: str, headers: dict | None = None, on_send=None):
    """One GET of `path` (a query string too) through the ASGI `app`, as an ASGI server sends
    it: (status, headers by lower-case name, body). `on_send` is called with each message the
    app sends, as it sends it. The client stays connected after its request."""
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"localhost"),
            *((name.lower().encode(), value.encode()) for name, value in (headers or {}).items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    requested, messages = [], []

    async def receive():
        if not requested:
            requested.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()

    async def send(message):
        if on_send:
            on_send(message)
        messages.append(message)

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body


def run_manage(*args: str, env: dict, cwd=None) -> subprocess.CompletedProcess:
    """`manage.py ARGS` run in `cwd` (the checkout unless told) with this environment plus
    `env`, its output captured."""
    from tests.live import ROOT

    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=cwd or ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def manage(*args: str, env: dict, cwd=None) -> str:
    """run_manage's output; fails the test unless the command exits 0."""
    result = run_manage(*args, env=env, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# A first local run: debug on, nothing configured (the embedded SQLite file, no Redis).
EMBEDDED = {"DEBUG": "1", "DATABASE_URL": "", "REDIS_URL": "", "SECRET_KEY": ""}


def embedded_manage(project, *args: str) -> str:
    """`manage.py ARGS` of the copy of the project in `project` (the fresh_copy fixture), run as
    on a first local run (EMBEDDED)."""
    return manage(*args, env=EMBEDDED, cwd=project)


def asgi_gets(app, *requests) -> list[tuple[int, dict, bytes]]:
    """GET each (path, headers) in turn through the ASGI `app`, in one event loop; returns
    (status, headers by lower-case name, body) for each."""

    async def all_of_them():
        return [await asgi_get(app, path, headers) for path, headers in requests]

    return asyncio.run(all_of_them())


# Outcomes.


def outcome_row(assistant, revision: int, **fields) -> dict:
    """One row of POST /api/v1/outcomes/ for this hour (counters default to one clean run)."""
    from django.utils import timezone

    return {
        "assistant": str(getattr(assistant, "id", assistant)),
        "revision": revision,
        "label": None,
        "variant": None,
        "period_start": timezone.now().isoformat(),
        "runs": 1,
        **fields,
    }


def newest_revision() -> int:
    """The number of the newest revision of the history (a test made a change first)."""
    from core.models import Revision

    return Revision.objects.order_by("-number").values_list("number", flat=True)[0]


# Label requests (approvals).

APPROVER = ("config_backend.approve_label_move", "config_backend.view_labelrequest")


def approver() -> User:
    """A staff user who may approve label requests (and read them)."""
    return staff_user(*APPROVER)


def make_label_request(name: str, revision: int, *, requester: User | None = None):
    """A pending request to move the label `name` to `revision`, made by `requester` (a new
    staff user if None) through the approvals' service; needs settings.LABEL_APPROVALS > 0."""
    from config_backend.history.approvals import Requester, request_or_change_label
    from config_backend.history.labels import LabelChange

    requester = requester or staff_user(
        "config_backend.move_label", "config_backend.move_protected_label"
    )
    return request_or_change_label(
        name,
        LabelChange("move", revision=revision),
        author=requester.get_username(),
        message="please",
        requester=Requester.of_user(requester),
    )


def label_state(name) -> tuple:
    """Everything a label change could change: the label's row, its history, its counter."""
    label = Label.objects.filter(name=name).values().first()
    if label:
        label.pop("updated_at")
    return (
        label,
        list(LabelMove.objects.filter(label=name).values_list("id", flat=True)),
        ConfigRevision.objects.filter(name=ConfigRevision.for_label(name))
        .values_list("value", flat=True)
        .first(),
    )
