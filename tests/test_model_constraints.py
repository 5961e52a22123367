"""Database constraints hold even when model validation is bypassed (bulk writes, raw saves)."""

import pytest
from django.db import DatabaseError, transaction
from django.db.models import ProtectedError

from assistants.models import Assistant
from tests.factories import link, make_delegate_tool
from threads.models import UserAssistantThread
from tools.models import Tool

pytestmark = pytest.mark.django_db


def assert_refused(create):
    with pytest.raises(DatabaseError), transaction.atomic():
        create()


def test_assistant_names_are_unique(secretary):
    assert_refused(lambda: Assistant.objects.create(name="Secretary", model="m"))


def test_assistant_name_must_not_be_empty():
    assert_refused(lambda: Assistant.objects.create(name="", model="m"))


def test_only_one_active_secretary(secretary):
    assert_refused(lambda: Assistant.objects.create(name="Other", model="m", is_secretary=True))


def test_inactive_secretaries_do_not_count(secretary):
    Assistant.objects.create(name="Old", model="m", is_secretary=True, is_active=False)
    Assistant.objects.create(name="Older", model="m", is_secretary=True, is_active=False)
    assert Assistant.objects.filter(is_secretary=True).count() == 3


def test_llm_assistant_needs_a_model():
    assert_refused(lambda: Assistant.objects.create(name="No model", assistant_type="llm"))


def test_openai_api_assistant_needs_an_openai_id():
    assert_refused(lambda: Assistant.objects.create(name="No id", assistant_type="openai_api"))
    Assistant.objects.create(
        name="Has id", assistant_type="openai_api", openai_assistant_id="asst_1"
    )


def test_unknown_assistant_type_is_refused():
    assert_refused(lambda: Assistant.objects.create(name="X", assistant_type="gpt", model="m"))


def test_tool_names_are_unique(weather_tool):
    assert_refused(lambda: Tool.objects.create(name="get_weather", tool_type="weather"))


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "dot.name", "ünicode"])
def test_tool_name_format_is_enforced_by_the_database(name):
    assert_refused(lambda: Tool.objects.create(name=name, tool_type="time"))


def test_sub_assistant_tool_needs_a_delegate_in_the_database():
    assert_refused(lambda: Tool.objects.create(name="ask", tool_type="sub_assistant"))


def test_other_tools_must_not_have_a_delegate_in_the_database(calendar_assistant):
    assert_refused(
        lambda: Tool.objects.create(name="w", tool_type="weather", assistant=calendar_assistant)
    )


def test_an_assistant_links_a_tool_once(secretary, weather_tool):
    link(secretary, weather_tool)
    assert_refused(lambda: link(secretary, weather_tool))


def test_a_user_has_one_thread_per_assistant(secretary, calendar_assistant):
    UserAssistantThread.objects.create(user_id="42", assistant=secretary, thread_id="t1")
    UserAssistantThread.objects.create(user_id="42", assistant=calendar_assistant, thread_id="t2")
    assert_refused(
        lambda: UserAssistantThread.objects.create(
            user_id="42", assistant=secretary, thread_id="t3"
        )
    )


def test_links_mirror_the_delegate_of_their_tool(secretary, calendar_assistant):
    tool = make_delegate_tool("ask_calendar", calendar_assistant)
    the_link = link(secretary, tool)
    assert the_link.sub_assistant == calendar_assistant
    reminders = Assistant.objects.create(name="Reminders", model="m")
    tool.assistant = reminders
    tool.save()
    the_link.refresh_from_db()
    assert the_link.sub_assistant == reminders


def test_deleting_a_delegate_assistant_is_refused(secretary, calendar_assistant):
    link(secretary, make_delegate_tool("ask_calendar", calendar_assistant))
    with pytest.raises(ProtectedError):
        calendar_assistant.delete()


def test_deleting_a_linked_tool_is_refused(secretary, weather_tool):
    link(secretary, weather_tool)
    with pytest.raises(ProtectedError):
        weather_tool.delete()


def test_deleting_an_assistant_removes_its_own_links_and_threads(secretary, weather_tool):
    link(secretary, weather_tool)
    UserAssistantThread.objects.create(user_id="1", assistant=secretary, thread_id="t")
    secretary.delete()
    assert not weather_tool.assistant_links.exists()
    assert not UserAssistantThread.objects.exists()


def test_models_read_as_names(secretary, weather_tool):
    the_link = link(secretary, weather_tool)
    thread = UserAssistantThread.objects.create(user_id="42", assistant=secretary, thread_id="t")
    assert str(secretary) == "Secretary"
    assert str(weather_tool) == "get_weather"
    assert str(the_link) == "Secretary → get_weather"
    assert str(thread) == "user 42 · Secretary"
