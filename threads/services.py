"""Writes to users' threads. Registration is race-safe: concurrent registrations of the same
(user_id, assistant) from any number of processes end in one row, and exactly one of them
learns it created it."""

from django.db import transaction
from django.utils import timezone

from assistants.models import Assistant
from threads.models import UserAssistantThread

_REGISTER_ATTEMPTS = 3


def thread_register(
    *, user_id: str, assistant: Assistant, thread_id: str
) -> tuple[UserAssistantThread, bool]:
    """Register the user's thread with the assistant; returns (thread, created).

    When one exists for the pair, the first writer wins: the stored row is returned unchanged
    except for `last_used`, set to now.
    """
    candidate = UserAssistantThread(
        user_id=user_id, assistant=assistant, thread_id=thread_id, last_used=timezone.now()
    )
    candidate.full_clean(exclude=["assistant"], validate_unique=False, validate_constraints=False)
    for _ in range(_REGISTER_ATTEMPTS):
        # INSERT ... ON CONFLICT DO NOTHING: waits for a concurrent insert of the same pair to
        # commit, then leaves the row alone. Our id is in the table only if ours went in.
        UserAssistantThread.objects.bulk_create([candidate], ignore_conflicts=True)
        stored = UserAssistantThread.objects.filter(user_id=user_id, assistant=assistant).first()
        if stored is None:
            continue  # forgotten (deleted) between the two statements: insert again
        if stored.pk == candidate.pk:
            return stored, True
        now = timezone.now()
        UserAssistantThread.objects.filter(pk=stored.pk).update(last_used=now, updated_at=now)
        stored.last_used = stored.updated_at = now
        return stored, False
    raise RuntimeError("thread registration kept racing with deletions")  # pragma: no cover


@transaction.atomic
def thread_update(*, thread: UserAssistantThread, thread_id: str) -> UserAssistantThread:
    """Replace the external thread id; touches `last_used`."""
    thread.thread_id = thread_id
    thread.last_used = timezone.now()
    thread.full_clean(exclude=["assistant"], validate_unique=False, validate_constraints=False)
    thread.save(update_fields=["thread_id", "last_used", "updated_at"])
    return thread


def thread_delete(*, thread: UserAssistantThread) -> None:
    """Forget the thread."""
    thread.delete()
