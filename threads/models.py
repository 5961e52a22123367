import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from assistants.models import Assistant
from core.models import Timestamped


class UserAssistantThread(Timestamped):
    """The runtime's conversation thread of one user with one assistant."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user_id = models.CharField(verbose_name=_("user id"), max_length=255)
    assistant = models.ForeignKey(
        Assistant, on_delete=models.CASCADE, related_name="threads", verbose_name=_("assistant")
    )
    thread_id = models.CharField(
        verbose_name=_("thread id"),
        max_length=255,
        help_text=_("The runtime's external thread id."),
    )
    last_used = models.DateTimeField(verbose_name=_("last used"), default=timezone.now)

    class Meta:
        verbose_name_plural = _("user threads")
        ordering = ["-last_used"]
        verbose_name = _("user thread")
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "assistant"],
                name="thread_unique_user_assistant",
                violation_error_message=_("This user already has a thread with this assistant."),
            ),
        ]
        indexes = [models.Index(fields=["assistant", "-last_used"])]

    def __str__(self):
        return f"user {self.user_id} · {self.assistant}"
