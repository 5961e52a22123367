"""Rule 9: an assistant has at most MAX_TOOLS_PER_ASSISTANT (128) active tools, through the
API, the admin and the import."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from assistants.models import Assistant
from tests.factories import (
    assistant_form,
    assistant_with_tools,
    import_error_lines,
    link,
    write_config_file,
)
from tools.models import AssistantToolLink, Tool

pytestmark = pytest.mark.django_db

LIMIT_129 = (
    "129 active tools; an assistant may have at most 128 (MAX_TOOLS_PER_ASSISTANT). "
    "Deactivate or unlink some first."
)

# --- rule 9: at most MAX_TOOLS_PER_ASSISTANT active tools ---------------------------------------


def new_tools(count: int, *, is_active=True, prefix="extra") -> list[Tool]:
    return Tool.objects.bulk_create(
        Tool(name=f"{prefix}_{i}", tool_type="time", is_active=is_active) for i in range(count)
    )


def test_the_api_links_a_128th_tool_and_refuses_a_129th(writer):
    busy = assistant_with_tools(127)
    tool_128, tool_129 = new_tools(2)

    def post(tool, **body):
        url = f"/api/v1/assistants/{busy.pk}/tools/{tool.pk}/"
        return writer.post(url, body, format="json")

    assert post(tool_128).status_code == 201
    refused = post(tool_129)
    assert refused.status_code == 400
    assert refused.json() == {"tool": ["This assistant would have " + LIMIT_129]}
    assert busy.tool_links.count() == 128

    # An inactive link doesn't count; activating it does.
    assert post(tool_129, is_active=False).status_code == 201
    activated = post(tool_129, is_active=True)
    assert activated.json() == {"tool": ["This assistant would have " + LIMIT_129]}
    assert not busy.tool_links.get(tool=tool_129).is_active


def test_activating_a_tool_that_would_give_an_assistant_129_is_refused(writer):
    busy = assistant_with_tools(128)
    (sleeping,) = new_tools(1, is_active=False)
    link(busy, sleeping)

    response = writer.patch(f"/api/v1/tools/{sleeping.pk}/", {"is_active": True}, format="json")

    assert response.status_code == 400
    assert response.json() == {"is_active": ["Assistant “Busy” would then have " + LIMIT_129]}
    sleeping.refresh_from_db()
    assert not sleeping.is_active


def inline_form(tools) -> dict:
    data = assistant_form(**{"tool_links-TOTAL_FORMS": str(len(tools))})
    for index, tool in enumerate(tools):
        data[f"tool_links-{index}-tool"] = str(tool.pk)
        data[f"tool_links-{index}-is_active"] = "on"
    return data


def test_the_admin_inline_checks_the_whole_tool_set_submitted(admin_client, settings):
    # Rows added together each pass their own link's check (the stored links are below the
    # limit), so the inline checks them as a set. A limit of 3 keeps the re-rendered form
    # small; 128/129 in the admin is the action test below (the same rule function).
    settings.MAX_TOOLS_PER_ASSISTANT = 3
    tools = new_tools(4)
    url = reverse("admin:assistants_assistant_add")

    refused = admin_client.post(url, inline_form(tools))
    assert refused.status_code == 200
    (formset,) = refused.context["inline_admin_formsets"]
    assert list(formset.formset.non_form_errors()) == [
        "This assistant would have 4 active tools; an assistant may have at most 3 "
        "(MAX_TOOLS_PER_ASSISTANT). Deactivate or unlink some first."
    ]
    assert not Assistant.objects.exists()

    assert admin_client.post(url, inline_form(tools[:3])).status_code == 302
    assert Assistant.objects.get().tool_links.count() == 3


def test_the_admin_inline_refuses_two_rows_that_make_129_with_the_stored_127(admin_client):
    busy = assistant_with_tools(127)
    data = assistant_form(
        name=busy.name,
        model=busy.model,
        # Only the new rows are posted: the stored links count all the same.
        **{"tool_links-TOTAL_FORMS": "2", "tool_links-INITIAL_FORMS": "0"},
    )
    for index, tool in enumerate(new_tools(2)):
        data.update(
            {f"tool_links-{index}-tool": str(tool.pk), f"tool_links-{index}-is_active": "on"}
        )

    response = admin_client.post(reverse("admin:assistants_assistant_change", args=[busy.pk]), data)

    assert response.status_code == 200
    (formset,) = response.context["inline_admin_formsets"]
    assert list(formset.formset.non_form_errors()) == ["This assistant would have " + LIMIT_129]
    assert busy.tool_links.count() == 127


def test_the_admin_action_refuses_to_activate_a_129th_link(admin_client):
    busy = assistant_with_tools(128)
    (extra,) = new_tools(1)
    sleeping = link(busy, extra, is_active=False)

    response = admin_client.post(
        reverse("admin:tools_assistanttoollink_changelist"),
        {"action": "activate_selected", "_selected_action": [str(sleeping.pk)]},
        follow=True,
    )

    assert "Nothing changed." in response.content.decode()
    assert "would have 129 active tools" in response.content.decode()
    sleeping.refresh_from_db()
    assert not sleeping.is_active


def test_the_import_takes_128_tools_and_refuses_129_at_the_tools_list(tmp_path):
    tools = [{"name": f"t{i}", "tool_type": "time"} for i in range(130)]

    def document(count, inactive=0):
        listed = [f"t{i}" for i in range(count)]
        listed += [{"tool": f"t{count + i}", "is_active": False} for i in range(inactive)]
        assistant = {"name": "Busy", "model": "m", "tools": listed}
        return {"format_version": 2, "assistants": [assistant], "tools": tools}

    assert import_error_lines(write_config_file(tmp_path, document(129))) == [
        "/assistants/0/tools: " + LIMIT_129
    ]
    call_command(
        "import_config",
        write_config_file(tmp_path, document(128, inactive=2)),
        "--no-backup",
        stdout=StringIO(),
    )
    assert AssistantToolLink.objects.filter(is_active=True).count() == 128
    assert AssistantToolLink.objects.count() == 130


def test_the_limit_comes_from_the_setting(writer, settings, secretary):
    settings.MAX_TOOLS_PER_ASSISTANT = 1
    first, second = new_tools(2)
    link(secretary, first)

    response = writer.post(f"/api/v1/assistants/{secretary.pk}/tools/{second.pk}/")

    assert response.json() == {
        "tool": [
            "This assistant would have 2 active tools; an assistant may have at most 1 "
            "(MAX_TOOLS_PER_ASSISTANT). Deactivate or unlink some first."
        ]
    }


def test_an_assistant_over_a_lowered_limit_can_still_shed_tools(writer, settings, secretary):
    first, second = new_tools(2)
    link(secretary, first)
    link(secretary, second)
    settings.MAX_TOOLS_PER_ASSISTANT = 1

    response = writer.post(
        f"/api/v1/assistants/{secretary.pk}/tools/{first.pk}/", {"is_active": False}, format="json"
    )

    assert response.status_code == 200, response.content
