"""`{% assistant_outcomes assistant %}`: an assistant's recent revisions and how they did (the
assistant's admin page; outcomes/templates/admin/assistants/assistant/change_form.html)."""

import datetime

from django import template
from django.utils import timezone

from outcomes.selectors import assistant_revision_outcomes

register = template.Library()
RECENT_DAYS = 30


@register.inclusion_tag("admin/outcomes/assistant_outcomes.html")
def assistant_outcomes(assistant) -> dict:
    since = timezone.now() - datetime.timedelta(days=RECENT_DAYS)
    rows = assistant_revision_outcomes(assistant_id=assistant.pk, since=since) if assistant else []
    return {"outcome_revisions": rows, "outcome_recent_days": RECENT_DAYS}


@register.filter
def percent(fraction: float | None) -> str:
    """0.0123 → "1.2 %"; None → "—"."""
    return "—" if fraction is None else f"{fraction * 100:.1f} %"
