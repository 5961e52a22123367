"""Reads of users' threads."""

from django.db.models import QuerySet

from threads.models import UserAssistantThread


def thread_list(*, filters: dict | None = None) -> QuerySet[UserAssistantThread]:
    """Threads, most recently used first; `filters` may hold `user_id` and `assistant`."""
    return UserAssistantThread.objects.filter(**(filters or {})).order_by("-last_used", "id")
