import uuid
from collections import defaultdict

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q

from assistants.models import Assistant
from tools.validators import (
    TOOL_NAME_PATTERN,
    find_delegation_cycle,
    lock_delegation_graph,
    validate_input_schema,
    validate_tool_name,
)


def default_input_schema():
    return {"type": "object", "properties": {}}


class Tool(models.Model):
    class Type(models.TextChoices):
        CALENDAR = "calendar", "Calendar"
        REMINDER = "reminder", "Reminder"
        TIME = "time", "Time"
        WEATHER = "weather", "Weather"
        SUB_ASSISTANT = "sub_assistant", "Sub-assistant (delegates to another assistant)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(
        max_length=64,
        unique=True,
        validators=[validate_tool_name],
        help_text="The function name the LLM sees: letters, digits, _ and -, at most 64.",
    )
    tool_type = models.CharField(max_length=20, choices=Type.choices)
    description = models.TextField(blank=True)
    input_schema = models.JSONField(
        default=default_input_schema,
        help_text='JSON Schema of the call\'s arguments, with top-level "type": "object".',
    )
    assistant = models.ForeignKey(
        Assistant,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="delegate_tools",
        verbose_name="delegate assistant",
        help_text="The assistant this tool delegates to (sub-assistant tools only).",
    )
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(name__regex=TOOL_NAME_PATTERN),
                name="tool_name_format",
                violation_error_message="Tool name must match " + TOOL_NAME_PATTERN,
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
                violation_error_message="A sub-assistant tool, and only it, names a delegate.",
            ),
        ]

    def __str__(self):
        return self.name

    @transaction.atomic
    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        # Links mirror their tool's delegate (SPEC: kept in sync automatically).
        self.assistant_links.exclude(sub_assistant_id=self.assistant_id).update(
            sub_assistant_id=self.assistant_id
        )

    def clean(self):
        errors = {}
        try:
            self.input_schema = validate_input_schema(self.input_schema)
        except ValidationError as exc:
            errors["input_schema"] = exc.messages
        errors.update(self.delegate_errors())
        if not errors and self.assistant_id and self.is_active and not self._state.adding:
            cycle = delegation_cycle_with(tool=self)
            if cycle:
                errors["assistant"] = delegation_cycle_message(cycle)
        if errors:
            raise ValidationError(errors)

    def delegate_errors(self) -> dict:
        """Rule 3 (only a sub-assistant tool names a delegate). It reads only this row, so the
        import runs it for every row in memory."""
        if self.tool_type == self.Type.SUB_ASSISTANT and self.assistant_id is None:
            return {"assistant": "A sub-assistant tool must name the assistant it delegates to."}
        if self.tool_type != self.Type.SUB_ASSISTANT and self.assistant_id is not None:
            return {"assistant": "Only sub-assistant tools name a delegate assistant."}
        return {}


class AssistantToolLink(models.Model):
    assistant = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="tool_links")
    tool = models.ForeignKey(Tool, on_delete=models.PROTECT, related_name="assistant_links")
    sub_assistant = models.ForeignKey(
        Assistant,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="delegating_links",
        help_text="The tool's delegate, for sub-assistant tools; kept in sync automatically.",
    )
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["assistant__name", "tool__name"]
        verbose_name = "assistant tool link"
        constraints = [
            models.UniqueConstraint(
                fields=["assistant", "tool"],
                name="link_unique_assistant_tool",
                violation_error_message="This assistant already has this tool.",
            ),
        ]

    def __str__(self):
        return f"{self.assistant} → {self.tool}"

    def save(self, *args, **kwargs):
        self.sub_assistant_id = self.tool.assistant_id
        super().save(*args, **kwargs)

    def clean(self):
        if self.tool_id is None or self.assistant_id is None:
            return
        self.sub_assistant_id = self.tool.assistant_id
        if self.is_active and self.tool.is_active and self.sub_assistant_id:
            cycle = delegation_cycle_with(link=self)
            if cycle:
                raise ValidationError({"tool": delegation_cycle_message(cycle)})


def delegation_edges(*, exclude_link=None, exclude_tool=None) -> dict:
    """The delegation graph {assistant id: {delegate ids}} through active links to active tools."""
    links = AssistantToolLink.objects.filter(
        is_active=True, tool__is_active=True, tool__assistant__isnull=False
    )
    if exclude_link is not None and exclude_link.pk is not None:
        links = links.exclude(pk=exclude_link.pk)
    if exclude_tool is not None and exclude_tool.pk is not None:
        links = links.exclude(tool_id=exclude_tool.pk)
    edges = defaultdict(set)
    for assistant_id, delegate_id in links.values_list("assistant_id", "tool__assistant_id"):
        edges[assistant_id].add(delegate_id)
    return edges


def delegation_cycle_with(*, link=None, tool=None) -> list | None:
    """The cycle that saving this link or tool (as it is in memory) would create, or None."""
    lock_delegation_graph()
    if link is not None:
        edges = delegation_edges(exclude_link=link)
        edges[link.assistant_id].add(link.sub_assistant_id)
        return find_delegation_cycle(edges, link.assistant_id)
    edges = delegation_edges(exclude_tool=tool)
    owners = tool.assistant_links.filter(is_active=True).values_list("assistant_id", flat=True)
    for owner_id in owners:
        edges[owner_id].add(tool.assistant_id)
    for owner_id in owners:
        cycle = find_delegation_cycle(edges, owner_id)
        if cycle:
            return cycle
    return None


def delegation_cycle_message(cycle: list, names: dict | None = None) -> str:
    """Name the cycle; `names` ({id: name}) spares the query when the caller has them."""
    if names is None:
        names = dict(Assistant.objects.filter(pk__in=cycle).values_list("pk", "name"))
    return "This would create a delegation cycle: " + " → ".join(names[pk] for pk in cycle) + "."
