"""The assistant's admin form: model settings, structured output and variables as typed fields
(assistants.admin.forms), each writing its one JSON field through the model's own rules, and
the live preview of the rendered instructions (AssistantAdmin.preview_view). The browser test's
screenshots are in test-artifacts/admin-agent-form/."""

import json
import shutil

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from assistants.admin.forms import ModelSettingsField
from assistants.models import Assistant
from core.models import APIKey, Revision
from tests.browser import Watched, chromium_browser, log_in_as
from tests.factories import STRICT_READY_SCHEMA, assistant_form, link, session, staff_user
from tests.live import ROOT, call, live_database_url, server
from tools.models import Tool

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:assistants_assistant_add")
PREVIEW_URL = reverse("admin:assistants_assistant_preview")
SETTING_KEYS = ModelSettingsField().keys
ARTIFACTS = ROOT / "test-artifacts" / "admin-agent-form"
PASSWORD = "correct horse battery staple"


def typed_fields(*, settings=None, output=None, variables=()) -> dict:
    """The agent's typed fields as the form posts them: a model setting per input, the output's
    name, strict box and schema text, a row per variable (plus the empty rows)."""
    data = {}
    for index, key in enumerate(SETTING_KEYS):
        value = (settings or {}).get(key, "")
        if key == "parallel_tool_calls":
            value = {True: "true", False: "false"}.get(value, "unknown")
        data[f"model_settings_{index}"] = str(value)
    name, strict, schema = output or ("", False, "")
    data["output_0"] = name
    if strict:
        data["output_1"] = "on"
    data["output_2"] = schema
    rows = list(variables) + [{}, {}]
    data["variables-TOTAL"] = str(len(rows))
    for index, row in enumerate(rows):
        for key in ("name", "type", "default", "enum", "description"):
            data[f"variables-{index}-{key}"] = row.get(key, "string" if key == "type" else "")
        if row.get("required"):
            data[f"variables-{index}-required"] = "on"
    return data


def add(client, **fields):
    form = assistant_form(**fields.pop("form", {}))
    return client.post(ADD_URL, {**form, **typed_fields(**fields)})


@pytest.fixture
def client():
    return session(staff_user(superuser=True))


def test_typed_model_settings_are_stored_as_the_one_json_field(client):
    response = add(
        client,
        settings={
            "temperature": "0.3",
            "max_output_tokens": "500",
            "reasoning_effort": "low",
            "verbosity": "high",
            "parallel_tool_calls": False,
            "presence_penalty": "-1.5",
        },
    )
    assert response.status_code == 302
    assert Assistant.objects.get().model_settings == {
        "temperature": 0.3,
        "max_output_tokens": 500,
        "reasoning_effort": "low",
        "verbosity": "high",
        "parallel_tool_calls": False,
        "presence_penalty": -1.5,
    }


def test_no_setting_typed_in_means_the_providers_defaults(client):
    assert add(client).status_code == 302
    assert Assistant.objects.get().model_settings == {}


def test_a_setting_out_of_range_is_refused_by_the_schema_naming_it(client):
    response = add(client, settings={"temperature": "2.5", "top_p": "0.5"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["model_settings"]
    assert len(errors) == 1 and errors[0].startswith("/temperature: ")
    assert not Assistant.objects.exists()


def test_a_tool_choice_naming_an_unlinked_tool_is_refused(client):
    response = add(client, settings={"tool_choice": "get_weather"})
    errors = response.context["adminform"].form.errors["model_settings"]
    assert "get_weather" in errors[0]
    assert not Assistant.objects.exists()


def test_the_tool_choice_offers_the_modes_and_the_linked_tools(client):
    assistant = Assistant.objects.create(name="Planner", model="m")
    link(assistant, Tool.objects.create(name="get_time", tool_type="time"))
    page = client.get(reverse("admin:assistants_assistant_change", args=[assistant.pk]))
    datalist = page.content.decode().split('<datalist id="tool-choice-options">')[1]
    options = datalist.split("</datalist>")[0]
    assert [part.split('"')[0] for part in options.split('<option value="')[1:]] == [
        "auto",
        "required",
        "none",
        "get_time",
    ]


def test_output_typed_as_name_strict_and_schema_is_stored_as_one_object(client):
    schema = json.dumps(STRICT_READY_SCHEMA, indent=2)
    assert add(client, output=("forecast", True, schema)).status_code == 302
    assert Assistant.objects.get().output == {
        "name": "forecast",
        "schema": STRICT_READY_SCHEMA,
        "strict": True,
    }


def test_a_strict_output_whose_schema_strict_mode_refuses_is_an_error_with_its_pointer(client):
    schema = json.dumps({"type": "object", "properties": {"tz": {"type": "string"}}})
    response = add(client, output=("answer", True, schema))
    errors = response.context["adminform"].form.errors["output"]
    assert any(error.startswith("/schema") for error in errors)
    assert not Assistant.objects.exists()


def test_an_output_schema_that_is_not_json_is_an_error_and_stays_in_the_field(client):
    response = add(client, output=("answer", False, '{"type": "object",'))
    assert "output" in response.context["adminform"].form.errors
    assert "{&quot;type&quot;: &quot;object&quot;," in response.content.decode()
    assert not Assistant.objects.exists()


def test_variables_typed_in_rows_are_stored_typed_as_the_one_list(client):
    response = add(
        client,
        form={"instructions": "Hello {{ user_name }}, {{ days }} days, {{ tone }}, {{ vip }}."},
        variables=[
            {"name": "user_name", "required": True, "description": "Who asks."},
            {"name": "days", "type": "integer", "default": "3"},
            {"name": "tone", "type": "enum", "enum": "warm\nbrief", "default": "brief"},
            {"name": "vip", "type": "boolean", "default": "false"},
        ],
    )
    assert response.status_code == 302
    assert Assistant.objects.get().variables == [
        {
            "name": "user_name",
            "type": "string",
            "required": True,
            "default": None,
            "description": "Who asks.",
        },
        {"name": "days", "type": "integer", "required": False, "default": 3, "description": ""},
        {
            "name": "tone",
            "type": "enum",
            "required": False,
            "default": "brief",
            "enum": ["warm", "brief"],
            "description": "",
        },
        {"name": "vip", "type": "boolean", "required": False, "default": False, "description": ""},
    ]


def test_a_default_of_the_wrong_type_is_refused_naming_its_row(client):
    response = add(
        client,
        form={"instructions": "{{ days }}"},
        variables=[{"name": "days", "type": "integer", "default": "three"}],
    )
    errors = response.context["adminform"].form.errors["variables"]
    assert errors[0].startswith("/0/default: ")
    assert not Assistant.objects.exists()


def test_a_placeholder_naming_no_declared_variable_is_refused(client):
    response = add(client, form={"instructions": "Hello {{ user_name }}"})
    assert "user_name" in response.context["adminform"].form.errors["instructions"][0]
    assert not Assistant.objects.exists()


def test_the_form_shows_what_is_stored_and_saving_it_unchanged_makes_no_revision(client):
    add(
        client,
        form={"instructions": "Hello {{ user_name }}"},
        settings={"temperature": "0.7", "tool_choice": "auto", "parallel_tool_calls": True},
        output=("answer", False, json.dumps({"type": "object"})),
        variables=[{"name": "user_name", "default": "Ann"}],
    )
    assistant = Assistant.objects.get()
    change_url = reverse("admin:assistants_assistant_change", args=[assistant.pk])
    newest = Revision.objects.order_by("-number").first().number
    resubmitted = {
        **assistant_form(instructions="Hello {{ user_name }}"),
        **typed_fields(
            settings={"temperature": "0.7", "tool_choice": "auto", "parallel_tool_calls": True},
            output=("answer", False, json.dumps({"type": "object"}, indent=4)),
            variables=[{"name": "user_name", "default": "Ann"}],
        ),
    }
    assert client.post(change_url, resubmitted).status_code == 302
    assert Revision.objects.order_by("-number").first().number == newest


def preview(client, instructions, *, variables=(), **samples):
    data = {"instructions": instructions, **typed_fields(variables=variables)}
    data.update({f"sample-{name}": value for name, value in samples.items()})
    return client.post(PREVIEW_URL, data).json()


def test_the_preview_renders_the_instructions_with_samples_and_defaults(client):
    variables = [
        {"name": "user_name", "required": True},
        {"name": "days", "type": "integer", "default": "3"},
    ]
    answer = preview(
        client, "Hi {{ user_name }}: {{days}} days. \\{{ kept", variables=variables, user_name="Ann"
    )
    assert answer == {"instructions": "Hi Ann: 3 days. {{ kept"}
    answer = preview(client, "{{ days }}", variables=variables, user_name="Ann", days="10")
    assert answer == {"instructions": "10"}


def test_the_preview_names_what_keeps_the_instructions_from_rendering(client):
    variables = [{"name": "user_name", "required": True}]
    assert "user_name" in preview(client, "Hi {{ user_name }}", variables=variables)["error"]
    assert "days" in preview(client, "{{ days }}", variables=variables, user_name="A")["error"]
    assert (
        "character 3" in preview(client, "Hi {{ oops", variables=variables, user_name="A")["error"]
    )


def test_the_preview_is_for_staff_who_may_view_assistants_and_only_by_post():
    refused = session(staff_user("tools.view_tool")).post(PREVIEW_URL, {"instructions": "x"})
    assert refused.status_code == 403
    viewer = session(staff_user("assistants.view_assistant"))
    assert viewer.post(PREVIEW_URL, {"instructions": "x"}).json() == {"instructions": "x"}
    assert viewer.get(PREVIEW_URL).status_code == 405


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_staff_set_model_settings_a_variable_and_see_the_preview_follow_what_they_type():
    User.objects.create_superuser("staff", "staff@example.com", PASSWORD)
    assistant = Assistant.objects.create(name="Secretary", model="gpt-4o-mini", is_secretary=True)
    link(assistant, Tool.objects.create(name="get_time", tool_type="time"))
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    change_url = reverse("admin:assistants_assistant_change", args=[assistant.pk])
    with (
        server(env={"DATABASE_URL": live_database_url()}, workers=1) as base_url,
        chromium_browser() as chromium,
    ):
        admin = Watched(chromium.new_page(viewport={"width": 1280, "height": 900}), ARTIFACTS)
        page = admin.page
        log_in_as(page, base_url, "staff", PASSWORD)
        page.goto(base_url + change_url)
        settings = {key: f"#id_model_settings_{index}" for index, key in enumerate(SETTING_KEYS)}
        page.fill(settings["temperature"], "0.2")
        page.fill(settings["max_output_tokens"], "800")
        page.select_option(settings["reasoning_effort"], "low")
        page.fill(settings["tool_choice"], "get_time")
        page.fill("#id_instructions", "You help {{ user_name }}. Today is {{ day }}.")
        page.fill("input[name=variables-0-name]", "user_name")
        page.check("input[name=variables-0-required]")
        page.fill("input[name=variables-1-name]", "day")
        page.fill("input[name=variables-1-default]", "Monday")
        preview = page.locator("#instructions-preview")
        # No sample for the required variable yet: the preview names it.
        page.wait_for_function(
            "document.querySelector('#instructions-preview .preview-error').textContent"
            ".includes('user_name')"
        )
        page.fill("#preview-sample-user_name", "Ann")
        page.wait_for_function(
            "document.querySelector('#instructions-preview .preview-output').textContent"
            " === 'You help Ann. Today is Monday.'"
        )
        assert preview.locator(".preview-error").inner_text() == ""
        admin.screenshot("01-typed-settings-variables-and-preview")
        page.click("input[name=_continue]")
        page.wait_for_selector(".messagelist .success")
        admin.screenshot("02-saved")
        assert admin.problems == []
        status, _, body = call(
            "GET", f"{base_url}/api/v1/assistants/{assistant.pk}/config/", key=key
        )
    assert status == 200
    config = json.loads(body)
    assert config["model_settings"] == {
        "temperature": 0.2,
        "max_output_tokens": 800,
        "reasoning_effort": "low",
        "tool_choice": "get_time",
    }
    assert [variable["name"] for variable in config["variables"]] == ["user_name", "day"]
