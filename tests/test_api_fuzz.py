"""Schemathesis against our own OpenAPI document, in process, over every operation.

The schema is read from `/api/schema/` and every request goes through the WSGI application
gunicorn serves (`config_backend.wsgi.application`, cache fast path included), with a key that
may do what is asked: `runtime` for thread writes, `write` for config writes, `read` for the
other GETs. Each response must not be a 5xx and must conform to the document: a documented
status code, the documented content type, headers and body.

Path parameters and the `assistant` references in bodies and queries name the seeded objects
part of the time (fixed ids), random ids otherwise; the documented request examples run too.
Generation is deterministic, so CI runs the same cases every time. To look further:
`FUZZ_EXAMPLES=500 FUZZ_SEED=7 FUZZ_STATS=1 pytest tests/test_api_fuzz.py` (more cases per
operation, another random draw, and the status codes seen per operation).
"""

import os
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
import schemathesis
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from assistants.models import Assistant
from config_backend.history.labels import LabelChange, change_label
from config_backend.wsgi import application
from core.models import APIKey, LabelRequest, Revision
from snippets.models import Snippet
from threads.models import UserAssistantThread
from tools.models import AssistantToolLink, Tool

# Committed transactions, as in production: cache invalidation runs on commit.
pytestmark = pytest.mark.django_db(transaction=True)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# Fixed ids, so that generated cases can name the seeded objects.
# The secretary has the id the documented request examples name, so they succeed.
SECRETARY = uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
CALENDAR_ASSISTANT = uuid.UUID("00000000-0000-4000-8000-000000000002")
RETIRED_ASSISTANT = uuid.UUID("00000000-0000-4000-8000-000000000003")
OPENAI_ASSISTANT = uuid.UUID("00000000-0000-4000-8000-000000000004")
ASSISTANTS = [SECRETARY, CALENDAR_ASSISTANT, RETIRED_ASSISTANT, OPENAI_ASSISTANT]
TOOLS = {
    tool_type: uuid.UUID(f"00000000-0000-4000-8000-0000000001{index:02d}")
    for index, tool_type in enumerate(Tool.Type.values)
}
UNLINKED_TOOL = uuid.UUID("00000000-0000-4000-8000-000000000199")
THREADS = [uuid.UUID(f"00000000-0000-4000-8000-00000000020{n}") for n in range(3)]
# Label requests (approvals): one pending, one rejected; both made by the write key.
LABEL_REQUESTS = [1, 2]
# tone (included by greeting, which the secretary includes), greeting, and spare (included by
# nothing, inactive).
SNIPPETS = {
    name: uuid.UUID(f"00000000-0000-4000-8000-00000000030{n}")
    for n, name in enumerate(["tone", "greeting", "spare"])
}
SEEDED_IDS = {
    "snippet_id": [str(pk) for pk in SNIPPETS.values()],
    "request_id": [str(pk) for pk in LABEL_REQUESTS],
    "assistant_id": [str(pk) for pk in ASSISTANTS],
    "tool_id": [str(pk) for pk in [*TOOLS.values(), UNLINKED_TOOL]],
    "thread_pk": [str(pk) for pk in THREADS],
    # Labels: one under a rollout, one protected without (seed_labels).
    "name": ["staging", "production"],
}

# The same cases on every run (CI), unless FUZZ_SEED asks for others; FUZZ_EXAMPLES for more.
SEED = os.environ.get("FUZZ_SEED")
CONFIG = schemathesis.Config.from_dict(
    {
        **({"seed": int(SEED)} if SEED else {}),
        "generation": {
            "mode": "all",
            "max-examples": int(os.environ.get("FUZZ_EXAMPLES", 100)),
            "deterministic": not SEED,
            "database": "none",
        },
        # Stateful runs need OpenAPI links, which the document doesn't have; the seeded ids
        # (hooks below) give the cases existing objects instead.
        "phases": {"stateful": {"enabled": False}},
        # The config event stream never ends: its first event (hello or reset) is the answer.
        "max-stream-events": 1,
    }
)

schema = schemathesis.openapi.from_wsgi("/api/schema/", application, config=CONFIG)


def with_seeded_ids(values, names: dict[str, str]):
    """A strategy for `values` in which each of these fields (field -> kind of id) is, part of
    the time, one of the seeded ids instead of what the fuzzer made."""
    if not isinstance(values, dict) or not names.keys() & values.keys():
        return st.just(values)
    return st.fixed_dictionaries(
        {
            field: st.one_of(st.just(value), st.sampled_from(SEEDED_IDS[names[field]]))
            if field in names
            else st.just(value)
            for field, value in values.items()
        }
    )


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    return with_seeded_ids(path_parameters, {name: name for name in SEEDED_IDS})


@schema.hook
def flatmap_body(context, body):
    return with_seeded_ids(body, {"assistant": "assistant_id"})


@schema.hook
def flatmap_query(context, query):
    return with_seeded_ids(query, {"assistant": "assistant_id", "label": "name"})


@pytest.fixture
def keys(db):
    """The seeded objects, and a key of each scope."""
    with transaction.atomic():
        seed()
    seed_labels()
    keys = {
        scope: APIKey.objects.create_key(name=f"fuzz {scope}", scope=scope)
        for scope in APIKey.Scope.values
    }
    seed_label_requests(keys["write"][0])
    return {scope: raw for scope, (_, raw) in keys.items()}


def seed() -> None:
    """An active secretary delegating to a calendar assistant, a tool of each type, links,
    threads; an inactive assistant and an unlinked tool; snippets (SNIPPETS)."""
    Snippet.objects.create(id=SNIPPETS["tone"], name="tone", text="Be brief.")
    Snippet.objects.create(id=SNIPPETS["greeting"], name="greeting", text="Hi. {{> tone }}")
    Snippet.objects.create(id=SNIPPETS["spare"], name="spare", text="Unused.", is_active=False)
    secretary = Assistant.objects.create(
        id=SECRETARY,
        name="Secretary",
        is_secretary=True,
        model="gpt-4o-mini",
        instructions=(
            "Help {{ user_name }} ({{ age }}); delegate calendar questions. \\{{ x {{> greeting }}"
        ),
        model_settings={"temperature": 0.5, "max_output_tokens": 500},
        output={"name": "reply", "schema": {"type": "object"}, "strict": False},
        variables=[
            {"name": "user_name", "type": "string", "required": True},
            {"name": "age", "type": "integer", "required": False, "default": 30},
        ],
    )
    calendar = Assistant.objects.create(
        id=CALENDAR_ASSISTANT, name="Calendar assistant", model="gpt-4o-mini"
    )
    Assistant.objects.create(
        id=RETIRED_ASSISTANT, name="Retired", model="gpt-4o-mini", is_active=False
    )
    Assistant.objects.create(
        id=OPENAI_ASSISTANT,
        name="Hosted",
        assistant_type=Assistant.Type.OPENAI_API,
        openai_assistant_id="asst_123",
    )
    object_schema = {"type": "object", "properties": {"request": {"type": "string"}}}
    for tool_type, pk in TOOLS.items():
        tool = Tool.objects.create(
            id=pk,
            name=f"use_{tool_type}",
            tool_type=tool_type,
            description=f"The {tool_type} tool.",
            input_schema=object_schema,
            assistant=calendar if tool_type == Tool.Type.SUB_ASSISTANT else None,
        )
        AssistantToolLink.objects.create(
            assistant=secretary, tool=tool, is_active=tool_type != Tool.Type.TIME
        )
    Tool.objects.create(id=UNLINKED_TOOL, name="unlinked", tool_type=Tool.Type.TIME)
    for pk, (user_id, assistant) in zip(
        THREADS, [("user-1", secretary), ("user-1", calendar), ("user-2", secretary)], strict=True
    ):
        UserAssistantThread.objects.create(
            id=pk, user_id=user_id, assistant=assistant, thread_id=f"thread_{pk.hex[-4:]}"
        )


def seed_labels() -> None:
    """`production` at the seeded revision; `staging` at it too, with a rollout of the next
    one (a second change set) to half the users and user-1."""
    newest = Revision.objects.order_by("-number").values_list("number", flat=True)
    first = newest.first()
    secretary = Assistant.objects.get(id=SECRETARY)
    secretary.instructions = "Help the user, briefly."
    secretary.save()
    change_label("production", LabelChange("move", first), author="fuzz")
    rollout = {"revision": newest.first(), "percent": 50, "users": ["user-1"]}
    change_label("staging", LabelChange("rollout", first, rollout), author="fuzz")


def seed_label_requests(requester: APIKey) -> None:
    """Requests to move production, made by `requester` (so that its cancel can succeed)."""
    for pk, status in zip(LABEL_REQUESTS, ["pending", "rejected"], strict=True):
        LabelRequest.objects.create(
            id=pk,
            label="production",
            change={"action": "move", "revision": 1, "rollout": None},
            requester=requester.name,
            requester_kind=LabelRequest.RequesterKind.API_KEY,
            requester_key=requester,
            status=status,
            needed=1,
            expires_at=timezone.now() + timedelta(days=1),
        )


def key_for(case, keys: dict[str, str]) -> str:
    """The least scope that may do what the case asks."""
    if case.path.startswith("/api/v1/threads/"):
        return keys["runtime"]
    reads = case.method.upper() == "GET" or case.path.endswith("/render/")
    return keys["read" if reads else "write"]


STATUSES: Counter = Counter()


@pytest.fixture(scope="module")
def case_counter(request):
    """Counts the cases and their status codes; reports the total at the end of the module."""
    started = time.perf_counter()
    yield
    total = sum(STATUSES.values())
    lines = [f"API fuzzing: {total} cases in {time.perf_counter() - started:.1f}s"]
    if os.environ.get("FUZZ_STATS"):
        lines += [f"  {label} {status}: {n}" for (label, status), n in sorted(STATUSES.items())]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + "\n".join(lines))


@schema.parametrize()
@settings(suppress_health_check=list(HealthCheck), deadline=None)
def test_every_response_is_documented_and_never_a_server_error(case, keys, case_counter):
    # Identity: the in-process (WSGI) transport sends requests' default Accept-Encoding (gzip,
    # deflate, zstd) but never decodes, and config responses honour it (core.reads.codings).
    headers = {"Authorization": f"Bearer {key_for(case, keys)}", "Accept-Encoding": "identity"}
    response = case.call(headers=headers)
    STATUSES[f"{case.method.upper()} {case.path}", response.status_code] += 1
    case.validate_response(response, checks=CHECKS)
