"""Staff edit the config in the admin; every rule shows as a form error and saves nothing."""

import pytest
from django.urls import reverse

from assistants.models import Assistant
from tests.factories import assistant_form, link, make_delegate_tool
from threads.models import UserAssistantThread
from tools.models import AssistantToolLink, Tool

pytestmark = pytest.mark.django_db


def assistant_change_form(assistant, links=(), **overrides):
    """The change form of an existing assistant with its current links, plus new link rows."""
    existing = list(assistant.tool_links.all())
    data = assistant_form(
        name=assistant.name,
        assistant_type=assistant.assistant_type,
        model=assistant.model,
        instructions=assistant.instructions,
        is_secretary="on" if assistant.is_secretary else None,
        **{
            "tool_links-TOTAL_FORMS": str(len(existing) + len(links)),
            "tool_links-INITIAL_FORMS": str(len(existing)),
        },
    )
    for index, row in enumerate(existing):
        data[f"tool_links-{index}-id"] = str(row.pk)
        data[f"tool_links-{index}-assistant"] = str(assistant.pk)
        data[f"tool_links-{index}-tool"] = str(row.tool_id)
        if row.is_active:
            data[f"tool_links-{index}-is_active"] = "on"
    for index, tool in enumerate(links, start=len(existing)):
        data[f"tool_links-{index}-assistant"] = str(assistant.pk)
        data[f"tool_links-{index}-tool"] = str(tool.pk)
        data[f"tool_links-{index}-is_active"] = "on"
    data.update(overrides)
    return data


def tool_form(**overrides):
    data = {
        "name": "get_time",
        "tool_type": "time",
        "assistant": "",
        "is_active": "on",
        "description": "Current time.",
        "input_schema": '{"type": "object", "properties": {"tz": {"type": "string"}}}',
    }
    data.update(overrides)
    return data


def add_url(model):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")


def change_url(obj):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def changelist_url(model):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def form_errors(response) -> str:
    """All errors shown on a re-displayed admin form, main form and inlines."""
    assert response.status_code == 200, "expected the form to be shown again with errors"
    context = response.context
    messages = [str(e) for e in context["adminform"].form.errors.values()]
    for inline in context["inline_admin_formsets"]:
        messages += [str(e) for e in inline.formset.errors if e]
        messages += [str(e) for e in inline.formset.non_form_errors()]
    assert messages, "expected form errors"
    return " ".join(messages)


# Pages a staff user reads.


def test_the_assistant_list_shows_type_model_secretary_and_tool_count(
    admin_client, secretary, weather_tool
):
    link(secretary, weather_tool)
    page = admin_client.get(changelist_url(Assistant))
    assert page.status_code == 200
    row = page.context["cl"].result_list[0]
    assert row.name == "Secretary" and row._tool_count == 1
    for column in ("Assistant type", "Model", "Secretary", "Tools", "Updated at"):
        assert column.lower() in page.content.decode().lower()


def test_the_assistant_list_can_be_searched_and_filtered(
    admin_client, secretary, calendar_assistant
):
    page = admin_client.get(changelist_url(Assistant), {"q": "calendar"})
    assert [a.name for a in page.context["cl"].result_list] == ["Calendar assistant"]
    page = admin_client.get(changelist_url(Assistant), {"is_secretary__exact": "1"})
    assert [a.name for a in page.context["cl"].result_list] == ["Secretary"]


def test_the_tool_page_shows_the_schema_indented_and_who_uses_it(
    admin_client, secretary, weather_tool
):
    link(secretary, weather_tool)
    page = admin_client.get(change_url(weather_tool)).content.decode()
    assert "{\n  &quot;type&quot;: &quot;object&quot;,\n  &quot;properties&quot;" in page
    assert f'href="{change_url(secretary)}">Secretary</a>' in page


def test_threads_can_be_found_by_user_id(admin_client, secretary):
    UserAssistantThread.objects.create(user_id="42", assistant=secretary, thread_id="thread_a")
    UserAssistantThread.objects.create(user_id="421", assistant=secretary, thread_id="thread_b")
    page = admin_client.get(changelist_url(UserAssistantThread), {"q": "42"})
    assert [t.thread_id for t in page.context["cl"].result_list] == ["thread_a"]
    assert "thread_a" in page.content.decode()


def test_the_link_list_reads_as_names(admin_client, secretary, weather_tool):
    link(secretary, weather_tool)
    page = admin_client.get(changelist_url(AssistantToolLink)).content.decode()
    assert "Secretary → get_weather" in page


def test_tools_autocomplete_for_the_inline(admin_client, weather_tool):
    response = admin_client.get(
        "/admin/autocomplete/",
        {
            "app_label": "tools",
            "model_name": "assistanttoollink",
            "field_name": "tool",
            "term": "weat",
        },
    )
    assert [r["text"] for r in response.json()["results"]] == ["get_weather"]


# Saving what is valid.


def test_staff_create_an_assistant_with_tools_inline(
    admin_client, weather_tool, calendar_assistant
):
    ask = make_delegate_tool("ask_calendar", calendar_assistant)
    data = assistant_form(
        **{
            "tool_links-TOTAL_FORMS": "2",
            "tool_links-0-tool": str(weather_tool.pk),
            "tool_links-0-is_active": "on",
            "tool_links-1-tool": str(ask.pk),
            "tool_links-1-is_active": "on",
        }
    )
    response = admin_client.post(add_url(Assistant), data)
    assert response.status_code == 302
    planner = Assistant.objects.get(name="Planner")
    links = {row.tool.name: row.sub_assistant for row in planner.tool_links.all()}
    assert links == {"get_weather": None, "ask_calendar": calendar_assistant}


def test_staff_create_a_tool_from_the_legacy_string_schema(admin_client):
    response = admin_client.post(
        add_url(Tool), tool_form(input_schema='"{\\"type\\": \\"object\\"}"')
    )
    assert response.status_code == 302
    assert Tool.objects.get(name="get_time").input_schema == {"type": "object"}


# Every rule is a form error and saves nothing.


def test_rule_1_a_bad_schema_is_shown_with_its_pointer(admin_client):
    response = admin_client.post(
        add_url(Tool),
        tool_form(input_schema='{"type": "object", "properties": {"tz": {"type": "strin"}}}'),
    )
    assert "/properties/tz/type: &#x27;strin&#x27; is not valid" in form_errors(response)
    assert not Tool.objects.exists()


def test_rule_1_text_that_is_not_json_is_a_form_error(admin_client):
    response = admin_client.post(add_url(Tool), tool_form(input_schema="{type: object"))
    assert "/: not valid JSON (Expecting property name" in form_errors(response)
    assert not Tool.objects.exists()


def test_rule_1_a_non_object_schema_is_refused(admin_client):
    response = admin_client.post(add_url(Tool), tool_form(input_schema='{"type": "array"}'))
    assert "top-level type" in form_errors(response)
    assert not Tool.objects.exists()


def test_rule_2_a_tool_name_the_llm_cannot_call_is_refused(admin_client):
    response = admin_client.post(add_url(Tool), tool_form(name="get time"))
    assert "letters, digits, underscores or hyphens" in form_errors(response)
    assert not Tool.objects.exists()


def test_rule_3_a_sub_assistant_tool_needs_a_delegate(admin_client):
    response = admin_client.post(add_url(Tool), tool_form(tool_type="sub_assistant"))
    assert "must name the assistant it delegates to" in form_errors(response)
    assert not Tool.objects.exists()


def test_rule_3_other_tools_cannot_have_a_delegate(admin_client, calendar_assistant):
    response = admin_client.post(add_url(Tool), tool_form(assistant=str(calendar_assistant.pk)))
    assert "Only sub-assistant tools name a delegate" in form_errors(response)
    assert not Tool.objects.exists()


def test_rule_4_linking_a_tool_that_closes_a_cycle_is_refused(
    admin_client, secretary, calendar_assistant
):
    link(secretary, make_delegate_tool("ask_calendar", calendar_assistant))
    back = make_delegate_tool("ask_secretary", secretary)
    response = admin_client.post(
        change_url(calendar_assistant), assistant_change_form(calendar_assistant, links=[back])
    )
    assert "delegation cycle: Calendar assistant → Secretary → Calendar assistant" in form_errors(
        response
    )
    assert not calendar_assistant.tool_links.exists()


def test_rule_4_an_assistant_delegating_to_itself_is_refused(admin_client, secretary):
    own = make_delegate_tool("ask_myself", secretary)
    response = admin_client.post(
        change_url(secretary), assistant_change_form(secretary, links=[own])
    )
    assert "Secretary → Secretary" in form_errors(response)
    assert not secretary.tool_links.exists()


def test_rule_4_changing_a_delegate_into_a_cycle_is_refused(
    admin_client, secretary, calendar_assistant
):
    link(secretary, make_delegate_tool("ask_calendar", calendar_assistant))
    reminders = Assistant.objects.create(name="Reminders", model="m")
    ask = make_delegate_tool("ask_reminders", reminders)
    link(calendar_assistant, ask)
    response = admin_client.post(
        change_url(ask),
        tool_form(
            name="ask_reminders",
            tool_type="sub_assistant",
            assistant=str(secretary.pk),
            input_schema='{"type": "object"}',
        ),
    )
    assert "Calendar assistant → Secretary → Calendar assistant" in form_errors(response)
    ask.refresh_from_db()
    assert ask.assistant == reminders


def test_rule_5_an_llm_assistant_needs_a_model(admin_client):
    response = admin_client.post(add_url(Assistant), assistant_form(model=""))
    assert "An LLM assistant needs a model." in form_errors(response)
    assert not Assistant.objects.exists()


def test_rule_5_an_openai_api_assistant_needs_its_id(admin_client):
    response = admin_client.post(
        add_url(Assistant), assistant_form(assistant_type="openai_api", model="")
    )
    assert "needs an OpenAI assistant id" in form_errors(response)
    assert not Assistant.objects.exists()


def test_rule_6_a_second_active_secretary_is_refused(admin_client, secretary):
    response = admin_client.post(add_url(Assistant), assistant_form(is_secretary="on"))
    assert "“Secretary” is already the active secretary" in form_errors(response)
    assert Assistant.objects.count() == 1


def test_rule_7_deleting_a_delegate_is_refused_with_what_uses_it(
    admin_client, secretary, calendar_assistant
):
    link(secretary, make_delegate_tool("ask_calendar", calendar_assistant))
    url = reverse("admin:assistants_assistant_delete", args=[calendar_assistant.pk])
    page = admin_client.get(url).content.decode()
    assert "would require deleting the following protected related objects" in page
    assert "ask_calendar" in page
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 200
    assert Assistant.objects.filter(pk=calendar_assistant.pk).exists()


def test_rule_7_deleting_a_linked_tool_is_refused(admin_client, secretary, weather_tool):
    link(secretary, weather_tool)
    url = reverse("admin:tools_tool_delete", args=[weather_tool.pk])
    assert "Secretary → get_weather" in admin_client.get(url).content.decode()
    admin_client.post(url, {"post": "yes"})
    assert Tool.objects.filter(pk=weather_tool.pk).exists()


def test_duplicate_names_are_form_errors(admin_client, secretary, weather_tool):
    response = admin_client.post(add_url(Assistant), assistant_form(name="Secretary"))
    assert "Assistant with this Name already exists." in form_errors(response)
    response = admin_client.post(add_url(Tool), tool_form(name="get_weather"))
    assert "Tool with this Name already exists." in form_errors(response)


# Actions.


def test_staff_deactivate_and_activate_selected_rows(admin_client, secretary, calendar_assistant):
    pks = [str(secretary.pk), str(calendar_assistant.pk)]
    admin_client.post(
        changelist_url(Assistant), {"action": "deactivate_selected", "_selected_action": pks}
    )
    assert not Assistant.objects.filter(is_active=True).exists()
    admin_client.post(
        changelist_url(Assistant), {"action": "activate_selected", "_selected_action": pks}
    )
    assert Assistant.objects.filter(is_active=True).count() == 2


def test_an_action_that_breaks_a_rule_changes_nothing(admin_client, secretary):
    secretary.is_active = False
    secretary.save()
    other = Assistant.objects.create(name="Other", model="m", is_secretary=True)
    response = admin_client.post(
        changelist_url(Assistant),
        {"action": "activate_selected", "_selected_action": [str(secretary.pk), str(other.pk)]},
        follow=True,
    )
    assert "Nothing changed." in response.content.decode()
    secretary.refresh_from_db()
    assert not secretary.is_active


def test_link_actions_refuse_to_close_a_cycle(admin_client, secretary, calendar_assistant):
    link(secretary, make_delegate_tool("ask_calendar", calendar_assistant))
    back = link(calendar_assistant, make_delegate_tool("ask_secretary", secretary), is_active=False)
    response = admin_client.post(
        changelist_url(AssistantToolLink),
        {"action": "activate_selected", "_selected_action": [str(back.pk)]},
        follow=True,
    )
    assert "delegation cycle" in response.content.decode()
    back.refresh_from_db()
    assert not back.is_active
