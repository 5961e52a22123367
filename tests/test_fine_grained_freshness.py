"""An edit changes the config (entry and ETag) of exactly the assistants whose resolved config it
changes, on every app instance: the assistant itself, its links, a linked tool, a delegate's
name or activity, a snippet its instructions include (directly or through another snippet).
The read/invalidate/store race stays closed for each of those edges."""

import json
import threading

import pytest
from django.db import connection

from assistants.models import Assistant
from assistants.prompts import expanded_instructions, snippet_texts
from assistants.services import assistant_update
from config_backend import transfer
from core import store
from core.models import APIKey, ConfigRevision, Revision
from snippets.models import Snippet
from snippets.services import snippet_update
from tests.factories import live_get_or_build, make_delegate_tool
from tests.live import call, live_database_url, server
from tools.models import AssistantToolLink, Tool

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world():
    """Secretary delegates to Calendar (ask_calendar) and links get_weather; Planner links
    get_weather too; Notes links nothing and nobody delegates to it. The secretary's
    instructions include the snippet greeting, which includes tone; the planner's include tone;
    nothing includes spare."""
    tone = Snippet.objects.create(name="tone", text="Be brief.")
    greeting = Snippet.objects.create(name="greeting", text="Hello. {{> tone }}")
    spare = Snippet.objects.create(name="spare", text="Unused.")
    secretary = Assistant.objects.create(
        name="Secretary", model="m", is_secretary=True, instructions="{{> greeting }}"
    )
    calendar = Assistant.objects.create(name="Calendar", model="m", instructions="v1")
    planner = Assistant.objects.create(name="Planner", model="m", instructions="{{> tone }}")
    notes = Assistant.objects.create(name="Notes", model="m")
    weather = Tool.objects.create(
        name="get_weather", tool_type="weather", input_schema={"type": "object"}
    )
    clock = Tool.objects.create(name="get_time", tool_type="time", input_schema={"type": "object"})
    ask = make_delegate_tool("ask_calendar", calendar)
    for assistant, tool in [(secretary, weather), (secretary, ask), (planner, weather)]:
        AssistantToolLink.objects.create(assistant=assistant, tool=tool)
    return {
        "secretary": secretary,
        "calendar": calendar,
        "planner": planner,
        "notes": notes,
        "weather": weather,
        "clock": clock,
        "ask": ask,
        "tone": tone,
        "greeting": greeting,
        "spare": spare,
    }


@pytest.fixture
def keys():
    _, read = APIKey.objects.create_key(name="runtime", scope="read")
    _, write = APIKey.objects.create_key(name="automation", scope="write")
    return read, write


@pytest.fixture(scope="module")
def two_servers(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        env = {"DATABASE_URL": live_database_url()}
    with server(env=env, workers=1) as first, server(env=env, workers=1) as second:
        yield first, second


def etags(base_url, key, world) -> dict:
    """Each assistant's config ETag as `base_url` serves it, read twice (so from its cache)."""
    found = {}
    for name in ("secretary", "calendar", "planner", "notes"):
        url = f"{base_url}/api/v1/assistants/{world[name].id}/config/"
        call("GET", url, key=key)
        status, headers, _ = call("GET", url, key=key)
        assert status in (200, 404)
        found[name] = headers["ETag"] if status == 200 else "gone"  # deactivated
    status, headers, _ = call("GET", f"{base_url}/api/v1/config/", key=key)
    found["bundle"] = headers["ETag"]
    return found


def changed(before: dict, after: dict) -> set:
    return {name for name in before if before[name] != after[name]}


EDGES = {
    "the assistant itself": ("PATCH", "assistants/{planner}/", {"instructions": "v2"}, {"planner"}),
    "a linked tool": ("PATCH", "tools/{weather}/", {"description": "v2"}, {"secretary", "planner"}),
    "a linked tool deactivated": (
        "PATCH",
        "tools/{weather}/",
        {"is_active": False},
        {"secretary", "planner"},
    ),
    "a delegate renamed": (
        "PATCH",
        "assistants/{calendar}/",
        {"name": "Agenda"},
        {"secretary", "calendar"},
    ),
    "a delegate deactivated": (
        "PATCH",
        "assistants/{calendar}/",
        {"is_active": False},
        {"secretary", "calendar"},
    ),
    "a delegate's instructions": (
        "PATCH",
        "assistants/{calendar}/",
        {"instructions": "v2"},
        {"calendar"},
    ),
    "a link added": ("POST", "assistants/{notes}/tools/{clock}/", None, {"notes"}),
    "a link removed": ("DELETE", "assistants/{planner}/tools/{weather}/", None, {"planner"}),
    "an unlinked tool": ("PATCH", "tools/{clock}/", {"description": "v2"}, set()),
    "a snippet included directly and through another": (
        "PATCH",
        "snippets/{tone}/",
        {"text": "v2"},
        {"secretary", "planner"},
    ),
    "a snippet included by one assistant": (
        "PATCH",
        "snippets/{greeting}/",
        {"text": "Hi. {{> tone }}"},
        {"secretary"},
    ),
    "a snippet nothing includes": ("PATCH", "snippets/{spare}/", {"text": "v2"}, set()),
    "a snippet's description": ("PATCH", "snippets/{tone}/", {"description": "v2"}, set()),
    "a snippet created": ("POST", "snippets/", {"name": "fresh"}, set()),
}


@pytest.mark.slow
@pytest.mark.parametrize("edge", EDGES)
def test_an_edit_changes_the_etag_of_exactly_the_assistants_it_touches_on_the_other_instance(
    two_servers, keys, world, edge
):
    first, second = two_servers
    read, write = keys
    method, path, body, expected = EDGES[edge]
    ids = {name: row.id for name, row in world.items()}
    before = etags(second, read, world)

    status, _, answer = call(method, f"{first}/api/v1/{path.format(**ids)}", key=write, body=body)
    assert status in (200, 201, 204), answer

    after = etags(second, read, world)
    # The bundle changes with every change set; an assistant only when its config does.
    assert changed(before, after) == expected | {"bundle"}


@pytest.mark.slow
def test_an_import_changes_the_etags_of_exactly_the_assistants_its_rows_touch(
    two_servers, keys, world
):
    _, second = two_servers
    read, _ = keys
    before = etags(second, read, world)
    document = transfer.export_config(include_threads=False)
    for tool in document["tools"]:
        if tool["name"] == "get_weather":
            tool["description"] = "imported"

    transfer.import_config(document=document)

    assert changed(before, etags(second, read, world)) == {"secretary", "planner", "bundle"}


def test_a_change_set_names_the_assistants_whose_config_it_changed(world):
    tool = world["weather"]
    tool.description = "v2"
    tool.save()

    revision = Revision.objects.get(number=store.committed_counter())
    assert set(revision.assistants) == {str(world["secretary"].id), str(world["planner"].id)}
    assert (
        store.committed_counter(ConfigRevision.for_assistant(world["notes"].id)) < revision.number
    )
    assert (
        store.committed_counter(ConfigRevision.for_assistant(world["planner"].id))
        == revision.number
    )


def test_a_save_that_changes_nothing_makes_no_revision(world):
    before = store.committed_counter()
    planner = Assistant.objects.get(pk=world["planner"].pk)
    planner.save()
    Tool.objects.get(pk=world["weather"].pk).save()

    assert store.committed_counter() == before


def read_config(assistant, build=None) -> bytes:
    """A reader as the config view is: the assistant's revision first, then the data."""
    revision = store.committed_counter(ConfigRevision.for_assistant(assistant.id))
    build = build or (lambda: tool_descriptions(assistant))
    body, _ = live_get_or_build(assistant_id=str(assistant.id), revision=revision, build=build)
    return body


def tool_descriptions(assistant) -> bytes:
    """What the reader builds: the assistant's tools and its instructions as expanded now."""
    links = AssistantToolLink.objects.filter(assistant=assistant, is_active=True)
    rows = links.order_by("tool__name").values_list(
        "tool__name", "tool__description", "tool__assistant__name"
    )
    instructions = Assistant.objects.get(pk=assistant.pk).instructions
    return json.dumps([list(rows), expanded_instructions(instructions, snippet_texts())]).encode()


def _edit_tool(world):
    tool = Tool.objects.get(pk=world["weather"].pk)
    tool.description = "raced"
    tool.save()


def _rename_delegate(world):
    assistant_update(assistant=Assistant.objects.get(pk=world["calendar"].pk), name="Raced")


def _add_link(world):
    AssistantToolLink.objects.create(assistant=world["secretary"], tool=world["clock"])


def _edit_included_snippet(world):
    # The secretary includes greeting, which includes tone: the edge two steps away.
    snippet_update(snippet=Snippet.objects.get(pk=world["tone"].pk), text="Raced.")


@pytest.mark.parametrize(
    "writer, fresh",
    [
        (_edit_tool, lambda body: b"raced" in body),
        (_rename_delegate, lambda body: b"Raced" in body),
        (_add_link, lambda body: b"get_time" in body),
        (_edit_included_snippet, lambda body: b"Raced." in body),
    ],
    ids=["a linked tool edited", "a delegate renamed", "a link added", "a snippet edited"],
)
def test_the_read_invalidate_store_race_leaves_no_stale_entry_for_each_dependency(
    world, writer, fresh
):
    """The reader loads the secretary's rows; a writer commits a change to one of its
    dependencies; the reader then stores what it loaded. The next read must be fresh."""
    secretary = world["secretary"]
    read_config(secretary)  # a current entry and mirror exist

    def commit_in_between():
        writer(world)
        connection.close()

    def slow_build():
        old = tool_descriptions(secretary)
        thread = threading.Thread(target=commit_in_between)
        thread.start()
        thread.join()
        return old

    store.store().delete(store.assistant_config_key(secretary.id))
    served_to_slow_reader = read_config(secretary, build=slow_build)
    assert not fresh(served_to_slow_reader)  # it began before the commit

    assert fresh(read_config(secretary))
    assert fresh(read_config(secretary))
