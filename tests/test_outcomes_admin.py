"""The admin shows outcomes: the label page compares base and candidate side by side with
server-drawn charts, at a query count that does not grow with a year of buckets; each
assistant's page shows its recent revisions' outcomes."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from assistants.models import Assistant
from core.models import Label
from outcomes.models import OutcomeBucket
from tests.factories import newest_revision, session, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def assistant():
    return Assistant.objects.create(name="Secretary", model="gpt-4o-mini", instructions="Hi.")


@pytest.fixture
def production(assistant):
    return Label.objects.create(name="production", revision=newest_revision())


def hour(hours_ago: int) -> datetime.datetime:
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    return now - datetime.timedelta(hours=hours_ago)


def buckets(assistant, label, hours: int, **counts) -> list[OutcomeBucket]:
    """A bucket per hour for `hours` hours, base and candidate (candidate: twice the errors)."""
    made = []
    for variant, errors in (("base", 1), ("candidate", 2)):
        made += [
            OutcomeBucket(
                assistant=assistant,
                revision=label.revision,
                label=label.name,
                variant=variant,
                period_start=hour(ago),
                runs=10,
                errors=errors,
                latency_ms=1500,
                input_tokens=400,
                output_tokens=100,
                feedback_up=3,
                feedback_down=1,
                **counts,
            )
            for ago in range(hours)
        ]
    return OutcomeBucket.objects.bulk_create(made, batch_size=2_000)


def label_page(client, days: int = 30):
    response = client.get(f"/admin/config_backend/label/production/change/?days={days}")
    assert response.status_code == 200
    return response.content.decode()


def test_the_label_page_compares_base_and_candidate_side_by_side_with_charts(assistant, production):
    buckets(assistant, production, 48)
    page = label_page(session(staff_user(superuser=True)))
    base = page[page.index('id="outcome-base"') :][:800]
    candidate = page[page.index('id="outcome-candidate"') :][:800]
    assert '<td class="outcome-runs">480</td>' in base
    assert "10.0 %" in base and "20.0 %" in candidate
    assert "150 ms" in base and ">50<" in base  # mean latency, tokens per run
    assert "0.50 (144 ↑ 48 ↓)" in base
    assert page.count('<svg id="outcome-') == 2 and "<script" not in page.split("outcome-")[1]
    assert 'class="series-base"' in page and 'class="series-candidate"' in page


def test_a_label_without_outcomes_says_so(production):
    assert 'id="outcome-none"' in label_page(session(staff_user(superuser=True)))


def test_the_comparison_costs_the_same_queries_at_a_year_of_buckets(assistant, production):
    staff = session(staff_user(superuser=True))
    buckets(assistant, production, 2)
    label_page(staff, days=365)  # warm: the session, the user, content types
    with CaptureQueriesContext(connection) as few:
        label_page(staff, days=365)
    OutcomeBucket.objects.all().delete()
    year = buckets(assistant, production, 8_760)
    assert len(year) == 17_520
    with CaptureQueriesContext(connection) as many:
        page = label_page(staff, days=365)
    assert '<td class="outcome-runs">87600</td>' in page
    outcome_queries = [q for q in many.captured_queries if "outcomes_outcomebucket" in q["sql"]]
    assert len(outcome_queries) == 2  # the totals and the days, each summed by the database
    assert len(many.captured_queries) == len(few.captured_queries)


def test_the_assistant_page_shows_its_recent_revisions_outcomes(assistant, production):
    buckets(assistant, production, 3)
    OutcomeBucket.objects.create(
        assistant=assistant, revision=production.revision - 1, period_start=hour(5), runs=7
    )
    page = (
        session(staff_user(superuser=True))
        .get(f"/admin/assistants/assistant/{assistant.pk}/change/")
        .content.decode()
    )
    table = page[page.index('id="assistant-outcomes"') :]
    assert table.count('class="outcome-revision"') == 2
    assert (
        '<td class="outcome-runs">60</td>' in table and '<td class="outcome-runs">7</td>' in table
    )
    assert table.index(f"<th>{production.revision}</th>") < table.index(
        f"<th>{production.revision - 1}</th>"
    )
