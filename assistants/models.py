import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from assistants.prompts import instructions_problem, variables_problems
from assistants.validators import (
    assistant_type_errors,
    instructions_size_error,
    is_active_secretary,
    model_settings_problems,
    output_problems,
    secretary_conflicts,
)
from core.models import Timestamped
from snippets.models import lock_include_graph
from snippets.selectors import active_snippet_texts
from snippets.validators import could_include, expansion_error
from tools.models import lock_tool_choices
from tools.validators import counts_as_active_tool, tool_choice_problem, tool_choice_tool


def default_model_settings():
    return {}


def default_variables():
    return []


class Assistant(Timestamped):
    # The fields that make up the configuration, in this order: what assistant_update changes
    # and the API shows, recorded in its history (core.changes) and written to its files
    # (config_backend.transfer).
    CONFIG_FIELDS = (
        "name",
        "is_secretary",
        "assistant_type",
        "model",
        "instructions",
        "openai_assistant_id",
        "is_active",
        "model_settings",
        "output",
        "variables",
    )

    class Type(models.TextChoices):
        LLM = "llm", _("LLM")
        OPENAI_API = "openai_api", _("OpenAI Assistants API")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(verbose_name=_("name"), max_length=255, unique=True)
    is_secretary = models.BooleanField(
        _("secretary"),
        default=False,
        help_text=_("The top-level assistant that answers users and delegates to the others."),
    )
    assistant_type = models.CharField(
        verbose_name=_("assistant type"), max_length=20, choices=Type.choices, default=Type.LLM
    )
    model = models.CharField(
        verbose_name=_("model"),
        max_length=255,
        blank=True,
        help_text=_("Model name; required for LLM assistants."),
    )
    instructions = models.TextField(
        verbose_name=_("instructions"), blank=True, help_text=_("The system prompt.")
    )
    # null (not "") when unset: the contract's API and file format show it as null.
    openai_assistant_id = models.CharField(  # noqa: DJ001
        _("OpenAI assistant id"),
        max_length=255,
        blank=True,
        null=True,
        help_text=_("Required for OpenAI Assistants API assistants."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    model_settings = models.JSONField(
        _("model settings"),
        default=default_model_settings,
        blank=True,
        help_text=_(
            "Temperature, top_p, max_output_tokens, reasoning_effort, verbosity, tool_choice, "
            "parallel_tool_calls, frequency_penalty, presence_penalty; empty: the provider's "
            "defaults."
        ),
    )
    output = models.JSONField(
        _("structured output"),
        null=True,
        blank=True,
        help_text=_(
            'Null for free text, or {"name", "schema", "strict"}: the JSON Schema (top-level '
            '"type": "object") every answer follows.'
        ),
    )
    variables = models.JSONField(
        _("variables"),
        default=default_variables,
        blank=True,
        help_text=_(
            "The variables the instructions' {{ placeholders }} name: name, type (string, "
            "integer, number, boolean, enum), required, default, enum, description."
        ),
    )

    class Meta:
        verbose_name = _("assistant")
        verbose_name_plural = _("assistants")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_secretary"],
                condition=Q(is_secretary=True, is_active=True),
                name="assistant_one_active_secretary",
                violation_error_message=_("There can be only one active secretary."),
            ),
            models.CheckConstraint(
                condition=~Q(name=""),
                name="assistant_name_not_empty",
                violation_error_message=_("Name must not be empty."),
            ),
            models.CheckConstraint(
                condition=Q(assistant_type__in=["llm", "openai_api"]),
                name="assistant_type_known",
            ),
            models.CheckConstraint(
                condition=~Q(assistant_type="llm", model=""),
                name="assistant_llm_has_model",
                violation_error_message=_("An LLM assistant needs a model."),
            ),
            models.CheckConstraint(
                condition=~Q(assistant_type="openai_api")
                | (Q(openai_assistant_id__isnull=False) & ~Q(openai_assistant_id="")),
                name="assistant_openai_api_has_id",
                violation_error_message=_(
                    "An OpenAI Assistants API assistant needs an OpenAI assistant id."
                ),
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        self.normalize()
        errors = assistant_type_errors(
            assistant_type=self.assistant_type,
            model=self.model,
            openai_assistant_id=self.openai_assistant_id,
        )
        too_large = instructions_size_error(self.instructions or "")
        snippets: dict[str, str] = {}  # what includes may name (none are read without one)
        if too_large:
            errors["instructions"] = too_large
        elif isinstance(self.instructions, str) and could_include(self.instructions):
            # Rule 12: every include names an active snippet, no cycle, expanded within the
            # size bound; under the include graph's lock until the commit (snippets.models).
            lock_include_graph()
            snippets = active_snippet_texts()
            problem = expansion_error(self.instructions, snippets)
            if problem:
                errors["instructions"] = problem
        for name, messages in self.agent_errors(snippets).items():
            errors.setdefault(name, messages)
        if is_active_secretary(is_secretary=self.is_secretary, is_active=self.is_active):
            others = Assistant.objects.filter(is_secretary=True).exclude(pk=self.pk)
            conflicts = secretary_conflicts(
                [
                    (self.pk, self.name, self.is_secretary, self.is_active),
                    *others.values_list("pk", "name", "is_secretary", "is_active"),
                ]
            )
            if self.pk in conflicts:
                errors["is_secretary"] = conflicts[self.pk]
        if errors:
            raise ValidationError(errors)

    def agent_errors(self, snippets: dict[str, str]) -> dict:
        """The model settings (with rule 10), the structured output and rule 11 (variables
        and the placeholders of the instructions): {field: messages}; normalizes the values
        that pass (an output's `strict`, a variable's every key)."""
        errors = {}
        problems = model_settings_problems(self.model_settings)
        if problems:
            errors["model_settings"] = [str(problem) for problem in problems]
        elif tool_choice_tool(self.model_settings):
            problem = tool_choice_problem(
                tool=tool_choice_tool(self.model_settings), usable_tools=self.usable_tool_names()
            )
            if problem:
                errors["model_settings"] = [f"/tool_choice: {problem}"]
        output, problems = output_problems(self.output)
        if problems:
            errors["output"] = [str(problem) for problem in problems]
        else:
            self.output = output
        variables, problems = variables_problems(self.variables)
        if problems:
            errors["variables"] = [str(problem) for problem in problems]
        else:
            self.variables = variables
            if "instructions" not in errors and isinstance(self.instructions, str):
                problem = instructions_problem(self.instructions, variables, snippets)
                if problem:
                    errors["instructions"] = problem
        return errors

    def usable_tool_names(self) -> list[str]:
        """The names of the tools a tool_choice may name (rule 10): active links to active
        tools. None yet for an assistant being created."""
        if self._state.adding:
            return []
        lock_tool_choices()
        rows = self.tool_links.values_list("tool__name", "is_active", "tool__is_active")
        return [
            name
            for name, link_is_active, tool_is_active in rows
            if counts_as_active_tool(link_is_active=link_is_active, tool_is_active=tool_is_active)
        ]

    def normalize(self) -> None:
        """Store an empty OpenAI assistant id as None, which the API and the file format show as
        null (docs/contract.md), and empty model settings and variables as their defaults."""
        if self.openai_assistant_id == "":
            self.openai_assistant_id = None
        # A form or file that leaves them empty means the defaults.
        if self.model_settings is None:
            self.model_settings = default_model_settings()
        if self.variables is None:
            self.variables = default_variables()
