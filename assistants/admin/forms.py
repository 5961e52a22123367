"""The assistant's admin form: model settings, structured output and variables as typed fields
(not raw JSON), each writing its one JSON field of the model, which the model's own rules check
(assistants.validators: model settings and output; assistants.prompts: rule 11), so the admin
says what the API and the import say. docs/admin.md "Model settings, output, variables".
"""

import json
import math

from config_client.templates import VARIABLE_TYPES
from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from core.admin.actions import ChangeNoteForm
from tools.admin import PrettyJSONFormField
from tools.validators import TOOL_CHOICE_MODES


class LabelledMultiWidget(forms.MultiWidget):
    """A MultiWidget that shows each part with its label, one part a row."""

    template_name = "admin/assistants/widgets/labelled_parts.html"

    def __init__(self, parts: dict, attrs=None):
        # parts: {key: (label, widget)}; the keys are the JSON object's keys.
        self.keys = list(parts)
        self.labels = [label for label, _widget in parts.values()]
        super().__init__([widget for _label, widget in parts.values()], attrs)

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["parts"] = list(
            zip(self.keys, self.labels, context["widget"]["subwidgets"], strict=True)
        )
        return context


# Model settings: one typed field per key of model_settings.schema.json.

EFFORTS = "reasoning_effort"


def _number(label, *, minimum, maximum, step="0.01") -> tuple:
    attrs = {"min": minimum, "max": maximum, "step": step, "style": "width: 8em"}
    return (label, forms.FloatField(required=False), forms.NumberInput(attrs=attrs))


def _model_settings_parts() -> dict:
    """{key: (label, form field, widget)}: the typed parts of model_settings, in the schema's
    order; the bounds shown are hints, the schema (model_settings_problems) decides."""
    blank = [("", _("(provider's default)"))]
    return {
        "temperature": _number(_("Temperature"), minimum=0, maximum=2),
        "top_p": _number(_("Top p"), minimum=0, maximum=1),
        "max_output_tokens": (
            _("Max output tokens"),
            forms.IntegerField(required=False),
            forms.NumberInput(
                attrs={"min": 1, "max": settings.MAX_OUTPUT_TOKENS, "style": "width: 8em"}
            ),
        ),
        EFFORTS: (
            _("Reasoning effort"),
            forms.ChoiceField(required=False),  # choices: the setting, in ModelSettingsField
            forms.Select(),
        ),
        "verbosity": (
            _("Verbosity"),
            forms.ChoiceField(required=False, choices=blank + [(v, v) for v in VERBOSITIES]),
            forms.Select(choices=blank + [(v, v) for v in VERBOSITIES]),
        ),
        "tool_choice": (
            _("Tool choice"),
            forms.CharField(required=False, max_length=64),
            forms.TextInput(attrs={"list": "tool-choice-options", "style": "width: 14em"}),
        ),
        "parallel_tool_calls": (
            _("Parallel tool calls"),
            forms.NullBooleanField(required=False),
            DefaultYesNoSelect(),
        ),
        "frequency_penalty": _number(_("Frequency penalty"), minimum=-2, maximum=2),
        "presence_penalty": _number(_("Presence penalty"), minimum=-2, maximum=2),
    }


VERBOSITIES = ("low", "medium", "high")


class DefaultYesNoSelect(forms.NullBooleanSelect):
    """Yes, no, or unset (the provider's default)."""

    def __init__(self, attrs=None):
        super().__init__(attrs)
        self.choices = [
            ("unknown", _("(provider's default)")),
            ("true", _("Yes")),
            ("false", _("No")),
        ]


class ModelSettingsWidget(LabelledMultiWidget):
    def decompress(self, value):
        value = value if isinstance(value, dict) else {}
        return [value.get(key) for key in self.keys]

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["datalist"] = ("tool-choice-options", self.tool_choices)
        return context

    tool_choices: tuple = TOOL_CHOICE_MODES


class ModelSettingsField(forms.MultiValueField):
    """model_settings as typed fields; the keys left empty are left out ({} = the provider's
    defaults)."""

    def __init__(self, **kwargs):
        parts = _model_settings_parts()
        efforts = [("", _("(provider's default)"))] + [
            (effort, effort) for effort in settings.REASONING_EFFORTS
        ]
        parts[EFFORTS][1].choices = efforts
        parts[EFFORTS][2].choices = efforts
        self.keys = list(parts)
        widget = ModelSettingsWidget({key: (label, w) for key, (label, _f, w) in parts.items()})
        super().__init__(
            fields=[field for _label, field, _widget in parts.values()],
            widget=widget,
            require_all_fields=False,
            required=False,
            **kwargs,
        )

    def compress(self, data_list):
        return {
            key: value
            for key, value in zip(self.keys, data_list or [None] * len(self.keys), strict=True)
            if value not in (None, "")
        }


# Structured output: name, strict, and the schema as a JSON text.


class OutputWidget(LabelledMultiWidget):
    def decompress(self, value):
        if not isinstance(value, dict):
            return [None, None, None]
        schema = value.get("schema")
        shown = json.dumps(schema, indent=2, ensure_ascii=False) if schema is not None else ""
        return [value.get("name"), value.get("strict"), shown]


class OutputField(forms.MultiValueField):
    """output as a name, a strict flag and a JSON Schema; all empty = free text (null)."""

    def __init__(self, **kwargs):
        schema = PrettyJSONFormField(required=False)  # the admin's one reader of typed JSON
        widget = OutputWidget(
            {
                "name": (_("Name"), forms.TextInput(attrs={"style": "width: 20em"})),
                "strict": (_("Strict"), forms.CheckboxInput()),
                "schema": (
                    _("JSON Schema"),
                    forms.Textarea(
                        attrs={"rows": 10, "cols": 80, "style": "font-family: monospace"}
                    ),
                ),
            }
        )
        super().__init__(
            fields=[forms.CharField(required=False), forms.BooleanField(required=False), schema],
            widget=widget,
            require_all_fields=False,
            required=False,
            **kwargs,
        )

    def compress(self, data_list):
        if not data_list:
            return None
        name, strict, schema = data_list
        if not name and schema in (None, "") and not strict:
            return None
        output = {"name": name or "", "strict": bool(strict)}
        if schema not in (None, ""):
            output["schema"] = schema
        return output


# Variables: rows like an inline, over the one JSON list.

VARIABLE_TYPE_CHOICES = [(kind, kind) for kind in VARIABLE_TYPES]
EXTRA_VARIABLE_ROWS = 2


def typed_default(kind: str, text: str):
    """A default typed in the admin, as a value of the variable's type when it reads as one
    (else the text: rule 11 then says what is wrong with it)."""
    text = text.strip()
    if text == "":
        return None
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            return text
    if kind == "number":
        for read in (int, float):
            try:
                number = read(text)
            except ValueError:
                continue
            # "nan" and "inf" read as floats, and are no JSON numbers.
            return number if math.isfinite(number) else text
        return text
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower(), text)
    return text


class VariablesWidget(forms.Widget):
    """The declared variables as the rows of a table, like an inline: name, type, required,
    default, enum values (one per line) and description, with empty rows to add more and a
    delete box per row."""

    template_name = "admin/assistants/widgets/variables.html"
    columns = ("name", "type", "required", "default", "enum", "description")

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        rows = []
        for variable in value if isinstance(value, list) else []:
            if not isinstance(variable, dict):
                continue
            default = variable.get("default")
            rows.append(
                {
                    "name": variable.get("name", ""),
                    "type": variable.get("type", "string"),
                    "required": variable.get("required") is True,
                    "default": "" if default is None else _shown(default),
                    "enum": "\n".join(map(str, variable.get("enum") or [])),
                    "description": variable.get("description", ""),
                }
            )
        rows += [
            {"name": "", "type": "string", "required": False, "default": "", "enum": ""}
            for _ in range(EXTRA_VARIABLE_ROWS)
        ]
        context["widget"]["rows"] = rows
        context["widget"]["types"] = VARIABLE_TYPE_CHOICES
        return context

    def value_from_datadict(self, data, files, name):
        if f"{name}-TOTAL" not in data:
            return None
        try:
            total = min(int(data[f"{name}-TOTAL"]), 1000)
        except ValueError:
            return []
        variables = []
        for index in range(total):
            row = f"{name}-{index}-"
            if data.get(row + "DELETE"):
                continue
            variable_name = data.get(row + "name", "").strip()
            if not variable_name:
                continue  # an empty row
            kind = data.get(row + "type", "string")
            variable = {
                "name": variable_name,
                "type": kind,
                "required": bool(data.get(row + "required")),
                "default": typed_default(kind, data.get(row + "default", "")),
                "description": data.get(row + "description", ""),
            }
            if kind == "enum":
                variable["enum"] = [
                    line.strip() for line in data.get(row + "enum", "").splitlines() if line.strip()
                ]
            variables.append(variable)
        return variables

    def value_omitted_from_data(self, data, files, name):
        return f"{name}-TOTAL" not in data


def _shown(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class VariablesField(forms.Field):
    widget = VariablesWidget

    def __init__(self, **kwargs):
        super().__init__(required=False, **kwargs)

    def to_python(self, value):
        return value if isinstance(value, list) else []

    def has_changed(self, initial, data):
        return (initial or []) != (data or [])


class AssistantForm(ChangeNoteForm):
    """The assistant's form with the agent's typed fields. The model's clean() checks what they
    make (model_settings_problems, output_problems, variables_problems and rule 10/11)."""

    model_settings = ModelSettingsField(
        label=_("Model settings"),
        help_text=_(
            "Leave a setting empty for the provider's default. Tool choice: auto, required, none "
            "or the name of one of this assistant's active linked tools."
        ),
    )
    output = OutputField(
        label=_("Structured output"),
        help_text=_(
            'All empty: free text. Else every answer follows the JSON Schema (top-level "type": '
            '"object"); strict: OpenAI strict mode, whose rules the schema must then follow.'
        ),
    )
    variables = VariablesField(
        label=_("Variables"),
        help_text=_(
            "What the instructions' {{ placeholders }} may name, each with its type; a required "
            "one without a default must be given at every run. Enum values: one per line. Clear "
            "a name (or tick Delete) to remove a row."
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "model_settings" in self.fields and self.instance.pk is not None:
            names = self.instance.tool_links.order_by("tool__name").values_list(
                "tool__name", flat=True
            )
            widget = self.fields["model_settings"].widget
            widget.tool_choices = (*TOOL_CHOICE_MODES, *names)
