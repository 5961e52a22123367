"""GET /api/v1/diff/?from=X&to=Y: the net change between two points (revision numbers or
`live`)."""

import pytest

from core.store import committed_counter
from tests.factories import link

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_diff_is_the_net_change_between_two_revisions(reader, secretary, weather_tool):
    start = committed_counter()
    link(secretary, weather_tool)
    secretary.instructions = "First."
    secretary.save()
    secretary.instructions = "Second."
    secretary.save()

    response = reader.get(f"/api/v1/diff/?from={start}&to=live")

    assert response.status_code == 200
    body = response.json()
    assert (body["from"], body["to"]) == (start, committed_counter())
    by_entity = {change["entity"]: change for change in body["changes"]}
    assert by_entity["assistant"]["fields"] == {
        "instructions": {"old": "Help the user.", "new": "Second."}
    }
    assert by_entity["link"]["action"] == "created"
    assert by_entity["link"]["name"] == "Secretary → get_weather"
    assert set(by_entity) == {"assistant", "link"}


def test_the_diff_backwards_undoes_the_changes(reader, secretary):
    start = committed_counter()
    secretary.name = "Front desk"
    secretary.save()

    body = reader.get(f"/api/v1/diff/?from=live&to={start}").json()

    assert body["changes"][0]["fields"] == {"name": {"old": "Front desk", "new": "Secretary"}}


def test_a_diff_of_a_point_with_itself_is_empty(reader, secretary):
    body = reader.get("/api/v1/diff/?from=live&to=live").json()
    assert body["changes"] == [] and body["from"] == body["to"] == committed_counter()


def test_an_unknown_revision_is_404(reader, secretary):
    assert reader.get("/api/v1/diff/?from=99999&to=live").status_code == 404


@pytest.mark.parametrize(
    ("query", "named"),
    [("from=x&to=live", "from"), ("from=live&to=-3", "to"), ("from=live", "to"), ("", "from")],
)
def test_a_malformed_or_missing_point_is_400_naming_it(reader, secretary, query, named):
    response = reader.get(f"/api/v1/diff/?{query}")
    assert response.status_code == 400 and list(response.json()) == [named]
