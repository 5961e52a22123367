import uuid
from collections import Counter

from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import Q
from django.utils.text import format_lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.models import Timestamped
from tools.strict_schema import strict_schema_problems
from tools.validators import (
    TOOL_NAME_PATTERN,
    DelegationLink,
    counts_as_active_tool,
    delegate_errors,
    delegation_cycle_message,
    delegation_edges,
    delegation_graph,
    find_delegation_cycle,
    link_sub_assistant,
    makes_delegation_edge,
    tool_choice_dependents_message,
    tool_limit_problems,
    validate_input_schema,
    validate_tool_name,
)

# Assistants sit above tools: they are named by string here, never imported.
ASSISTANT_MODEL = "assistants.Assistant"


def default_input_schema():
    return {"type": "object", "properties": {}}


class Tool(Timestamped):
    # The fields that make up the configuration, in this order: what tool_update changes and the
    # API shows, recorded in its history (core.changes) and written to its files
    # (config_backend.transfer); `assistant` by id.
    CONFIG_FIELDS = (
        "name",
        "tool_type",
        "description",
        "input_schema",
        "strict",
        "assistant",
        "is_active",
    )

    class Type(models.TextChoices):
        CALENDAR = "calendar", _("Calendar")
        REMINDER = "reminder", _("Reminder")
        TIME = "time", _("Time")
        WEATHER = "weather", _("Weather")
        SUB_ASSISTANT = "sub_assistant", _("Sub-assistant (delegates to another assistant)")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(
        verbose_name=_("name"),
        max_length=64,
        unique=True,
        validators=[validate_tool_name],
        help_text=_("The function name the LLM sees: letters, digits, _ and -, at most 64."),
    )
    tool_type = models.CharField(verbose_name=_("tool type"), max_length=20, choices=Type.choices)
    description = models.TextField(verbose_name=_("description"), blank=True)
    input_schema = models.JSONField(
        verbose_name=_("input schema"),
        default=default_input_schema,
        help_text=_('JSON Schema of the call\'s arguments, with top-level "type": "object".'),
    )
    strict = models.BooleanField(
        verbose_name=_("strict"),
        default=False,
        help_text=_(
            "Sent to the model in OpenAI strict mode: the arguments then always match the "
            'schema, which must follow strict mode\'s rules (every object "additionalProperties": '
            'false and every property in "required"; an optional one is nullable).'
        ),
    )
    assistant = models.ForeignKey(
        ASSISTANT_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="delegate_tools",
        verbose_name=_("delegate assistant"),
        help_text=_("The assistant this tool delegates to (sub-assistant tools only)."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("tool")
        verbose_name_plural = _("tools")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(name__regex=TOOL_NAME_PATTERN),
                name="tool_name_format",
                violation_error_message=format_lazy(
                    _("Tool name must match {pattern}"), pattern=TOOL_NAME_PATTERN
                ),
            ),
            models.CheckConstraint(
                condition=Q(
                    tool_type__in=["calendar", "reminder", "time", "weather", "sub_assistant"]
                ),
                name="tool_type_known",
            ),
            models.CheckConstraint(
                condition=Q(tool_type="sub_assistant", assistant__isnull=False)
                | (~Q(tool_type="sub_assistant") & Q(assistant__isnull=True)),
                name="tool_delegate_iff_sub_assistant",
                violation_error_message=_("A sub-assistant tool, and only it, names a delegate."),
            ),
        ]

    def __str__(self):
        return self.name

    @transaction.atomic
    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        sub_assistant = link_sub_assistant(tool_delegate=self.assistant_id)
        self.assistant_links.exclude(sub_assistant_id=sub_assistant).update(
            sub_assistant_id=sub_assistant
        )

    def clean(self):
        errors = {}
        try:
            self.input_schema = validate_input_schema(self.input_schema)
        except ValidationError as exc:
            errors["input_schema"] = exc.messages
        if self.strict and "input_schema" not in errors:
            strict_problems = strict_schema_problems(self.input_schema)
            if strict_problems:
                errors["input_schema"] = [str(problem) for problem in strict_problems]
        errors.update(delegate_errors(tool_type=self.tool_type, delegate=self.assistant_id))
        # A new tool has no links yet; an existing one's active links would become edges.
        if (
            not errors
            and not self._state.adding
            and makes_delegation_edge(
                link_is_active=True, tool_is_active=self.is_active, delegate=self.assistant_id
            )
        ):
            cycle = delegation_cycle_with(tool=self)
            if cycle:
                errors["assistant"] = delegation_cycle_message(cycle, _assistant_names(cycle))
        if not errors and not self._state.adding and self.is_active:
            over = tool_limit_problems(grown_tool_counts(tool=self))
            if over:
                names = _assistant_names(over)
                errors["is_active"] = " ".join(
                    gettext("Assistant “%(name)s” would then have %(problem)s")
                    % {"name": names[pk], "problem": message}
                    for pk, message in sorted(over.items(), key=lambda item: names[item[0]])
                )
        if not errors and not self._state.adding:
            errors.update(self._tool_choice_errors())
        if errors:
            raise ValidationError(errors)

    def _tool_choice_errors(self) -> dict:
        """Rule 10: deactivating or renaming a tool that an assistant's tool_choice names is
        refused, naming the assistant."""
        stored = Tool.objects.filter(pk=self.pk).values_list("name", "is_active").first()
        if stored is None or (self.is_active and self.name == stored[0]):
            return {}
        dependents = tool_choice_dependents(tool_id=self.pk, name=stored[0])
        if not dependents:
            return {}
        field = "is_active" if not self.is_active else "name"
        return {field: tool_choice_dependents_message(tool=stored[0], assistants=dependents)}


class AssistantToolLink(Timestamped):
    # What a link's history records; a link is identified by its assistant and tool.
    CONFIG_FIELDS = ("is_active", "sub_assistant")

    assistant = models.ForeignKey(
        ASSISTANT_MODEL,
        on_delete=models.CASCADE,
        related_name="tool_links",
        verbose_name=_("assistant"),
    )
    tool = models.ForeignKey(
        Tool, on_delete=models.PROTECT, related_name="assistant_links", verbose_name=_("tool")
    )
    sub_assistant = models.ForeignKey(
        ASSISTANT_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="delegating_links",
        help_text=_("The tool's delegate, for sub-assistant tools; kept in sync automatically."),
        verbose_name=_("sub assistant"),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name_plural = _("assistant tool links")
        ordering = ["assistant__name", "tool__name"]
        verbose_name = _("assistant tool link")
        constraints = [
            models.UniqueConstraint(
                fields=["assistant", "tool"],
                name="link_unique_assistant_tool",
                violation_error_message=_("This assistant already has this tool."),
            ),
        ]

    def __str__(self):
        return f"{self.assistant} → {self.tool}"

    def save(self, *args, **kwargs):
        self.sync_sub_assistant()
        super().save(*args, **kwargs)

    @staticmethod
    def history_id(assistant_id, tool_id) -> str:
        """How the history names a link: by its assistant and tool, which identify it."""
        return f"{assistant_id}:{tool_id}"

    def sync_sub_assistant(self) -> None:
        self.sub_assistant_id = link_sub_assistant(tool_delegate=self.tool.assistant_id)

    def clean(self):
        if self.tool_id is None or self.assistant_id is None:
            return
        self.sync_sub_assistant()
        if makes_delegation_edge(
            link_is_active=self.is_active,
            tool_is_active=self.tool.is_active,
            delegate=self.tool.assistant_id,
        ):
            cycle = delegation_cycle_with(link=self)
            if cycle:
                raise ValidationError(
                    {"tool": delegation_cycle_message(cycle, _assistant_names(cycle))}
                )
        if counts_as_active_tool(link_is_active=self.is_active, tool_is_active=self.tool.is_active):
            over = tool_limit_problems(grown_tool_counts(link=self))
            if over:
                raise ValidationError(
                    {
                        "tool": gettext("This assistant would have %(problem)s")
                        % {"problem": over[self.assistant_id]}
                    }
                )
        elif not self._state.adding:
            refusal = self.tool_choice_refusal()
            if refusal:
                raise ValidationError({"is_active": refusal})

    def tool_choice_refusal(self) -> str | None:
        """Rule 10: why this (stored, active) link may not be deactivated or removed: its
        assistant's tool_choice names its tool. None when it may."""
        dependents = tool_choice_dependents(
            tool_id=self.tool_id, name=self.tool.name, assistant_id=self.assistant_id
        )
        if not dependents:
            return None
        return tool_choice_dependents_message(tool=self.tool.name, assistants=dependents)


def lock_delegation_graph():
    """Serialize changes to the delegation graph, so two concurrent edits can't close a cycle."""
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('delegation_graph'))")


def delegation_links() -> list[tuple[object, DelegationLink]]:
    """Every link as the delegation graph sees it (keyed by its id), with its tool's id."""
    # The model's ordering (by assistant name) makes the reported cycle deterministic.
    rows = AssistantToolLink.objects.values_list(
        "tool_id", "pk", "assistant_id", "is_active", "tool__is_active", "tool__assistant_id"
    )
    return [(tool_id, DelegationLink(*link)) for tool_id, *link in rows]


def delegation_cycle_with(*, link=None, tool=None) -> list | None:
    """The cycle that saving this link or tool (as it is in memory) would create, or None."""
    lock_delegation_graph()
    rows = delegation_links()
    if link is not None:
        links = [row for _, row in rows if row.key != link.pk]
        links.append(
            DelegationLink(
                key=link.pk,
                assistant=link.assistant_id,
                is_active=link.is_active,
                tool_is_active=link.tool.is_active,
                delegate=link.tool.assistant_id,
            )
        )
        return find_delegation_cycle(delegation_graph(links), link.assistant_id)
    # The tool's own links see the tool as it is in memory rather than as stored.
    own = [
        row._replace(tool_is_active=tool.is_active, delegate=tool.assistant_id)
        for tool_id, row in rows
        if tool_id == tool.pk
    ]
    others = [row for tool_id, row in rows if tool_id != tool.pk]
    edges = delegation_graph([*others, *own])
    for edge in delegation_edges(own):
        cycle = find_delegation_cycle(edges, edge.assistant)
        if cycle:
            return cycle
    return None


def lock_tool_choices():
    """Serialize rule 10's two sides (setting a tool_choice, deactivating or unlinking its
    tool), so a concurrent pair can't leave a tool_choice naming a tool that is gone."""
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('assistant_tool_choices'))")


def tool_choice_dependents(*, tool_id, name: str, assistant_id=None) -> list[str]:
    """The names of the assistants (of `assistant_id` only, when given) with an active link to
    this tool whose model settings' tool_choice is `name` (rule 10)."""
    lock_tool_choices()
    links = AssistantToolLink.objects.filter(
        tool_id=tool_id, is_active=True, assistant__model_settings__tool_choice=name
    )
    if assistant_id is not None:
        links = links.filter(assistant_id=assistant_id)
    return sorted(links.values_list("assistant__name", flat=True))


def lock_tool_counts():
    """Serialize changes to the assistants' tool counts (rule 9), so two concurrent links
    can't both take the last place."""
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('assistant_tool_counts'))")


def grown_tool_counts(*, link=None, tool=None) -> dict:
    """{assistant id: active tools} of the assistants to which saving this link or tool (as
    it is in memory) adds an active tool.

    Rule 9 is checked on those only, so an assistant over a since-lowered limit can still be
    edited, and its tools deactivated, one at a time.
    """
    lock_tool_counts()
    if link is not None:
        links = AssistantToolLink.objects.filter(assistant_id=link.assistant_id)
    else:
        linking = AssistantToolLink.objects.filter(tool_id=tool.pk).values("assistant_id")
        links = AssistantToolLink.objects.filter(assistant_id__in=linking)
    before, after = Counter(), Counter()
    rows = links.values_list("pk", "assistant_id", "tool_id", "is_active", "tool__is_active")
    for pk, assistant, tool_id, is_active, tool_is_active in rows:
        before[assistant] += counts_as_active_tool(
            link_is_active=is_active, tool_is_active=tool_is_active
        )
        if link is not None and pk == link.pk:
            continue
        if tool is not None and tool_id == tool.pk:
            tool_is_active = tool.is_active
        after[assistant] += counts_as_active_tool(
            link_is_active=is_active, tool_is_active=tool_is_active
        )
    if link is not None:
        after[link.assistant_id] += counts_as_active_tool(
            link_is_active=link.is_active, tool_is_active=link.tool.is_active
        )
    return {pk: count for pk, count in after.items() if count > before[pk]}


def _assistant_names(pks) -> dict:
    assistant_model = Tool._meta.get_field("assistant").related_model
    return dict(assistant_model.objects.filter(pk__in=pks).values_list("pk", "name"))
