import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from assistants.validators import (
    assistant_type_errors,
    instructions_size_error,
    is_active_secretary,
    secretary_conflicts,
)
from core.models import Timestamped


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
        if too_large:
            errors["instructions"] = too_large
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

    def normalize(self) -> None:
        """Store an empty OpenAI assistant id as None: the contract's API and file format show
        null."""
        if self.openai_assistant_id == "":
            self.openai_assistant_id = None
