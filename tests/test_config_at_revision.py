"""`?revision=N` on both config endpoints: the resolved config as it was at N, cached for good
(a hit: zero SQL, one Redis round trip), immutable for clients."""

import pytest

from assistants.models import Assistant
from core import store
from core.models import ConfigRevision
from core.reads.fast_path import ConfigFastPath, FastPath
from core.store import committed_counter
from tests.factories import link

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def edited_secretary(secretary, weather_tool):
    """The secretary linked to get_weather at revision `secretary.at`, then edited twice."""
    link(secretary, weather_tool)
    secretary.at = committed_counter()
    secretary.instructions = "Be brief."
    secretary.save()
    weather_tool.description = "Changed."
    weather_tool.save()
    return secretary


def test_an_assistant_config_at_a_revision_is_as_it_was_then(reader, edited_secretary):
    live = reader.get(f"/api/v1/assistants/{edited_secretary.id}/config/").json()
    response = reader.get(
        f"/api/v1/assistants/{edited_secretary.id}/config/?revision={edited_secretary.at}"
    )

    assert response.status_code == 200
    then = response.json()
    assert then["revision"] == edited_secretary.at
    assert then["instructions"] == "Help the user."
    assert then["tools"][0]["description"] == "Weather for a city."
    assert live["instructions"] == "Be brief."
    assert set(then) == set(live) and set(then["tools"][0]) == set(live["tools"][0])
    assert response["X-Config-Revision"] == str(edited_secretary.at)
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"


def test_the_config_at_the_current_revision_equals_the_live_config_but_its_revision(
    reader, edited_secretary
):
    url = f"/api/v1/assistants/{edited_secretary.id}/config/"
    live = reader.get(url).json()
    now = reader.get(f"{url}?revision={committed_counter()}").json()

    assert {**now, "revision": None} == {**live, "revision": None}
    assert live["revision"] == store.committed_counter(
        ConfigRevision.for_assistant(edited_secretary.id)
    )


def test_the_bundle_at_a_revision_lists_the_assistants_active_then(
    reader, edited_secretary, calendar_assistant
):
    at = committed_counter()
    calendar_assistant.is_active = False
    calendar_assistant.save()

    then = reader.get(f"/api/v1/config/?revision={at}").json()
    live = reader.get("/api/v1/config/").json()

    assert [config["name"] for config in then["assistants"]] == ["Calendar assistant", "Secretary"]
    assert [config["name"] for config in live["assistants"]] == ["Secretary"]
    assert then["revision"] == at and then["secretary"] == str(edited_secretary.id)
    assert {config["revision"] for config in then["assistants"]} == {at}


def test_a_second_read_at_a_revision_is_a_hit_with_no_query_and_one_round_trip(
    reader, edited_secretary, django_assert_num_queries, redis_commands
):
    url = f"/api/v1/assistants/{edited_secretary.id}/config/?revision={edited_secretary.at}"
    miss = reader.get(url)
    assert miss["X-Config-Cache"] == "miss"
    redis_commands.clear()

    with django_assert_num_queries(0):
        hit = reader.get(url)

    assert redis_commands == ["MGET"]
    assert hit["X-Config-Cache"] == "hit" and hit.content == miss.content
    assert hit["ETag"] == miss["ETag"]
    assert hit["Cache-Control"] == "private, max-age=31536000, immutable"


def test_a_bundle_read_at_a_revision_hits_the_cache_too(
    reader, edited_secretary, django_assert_num_queries, redis_commands
):
    url = f"/api/v1/config/?revision={edited_secretary.at}"
    miss = reader.get(url)
    redis_commands.clear()

    with django_assert_num_queries(0):
        hit = reader.get(url)

    assert redis_commands == ["MGET"] and hit.content == miss.content


def test_a_later_change_does_not_change_a_config_at_a_revision(reader, edited_secretary):
    url = f"/api/v1/assistants/{edited_secretary.id}/config/?revision={edited_secretary.at}"
    first = reader.get(url)
    edited_secretary.instructions = "Changed again."
    edited_secretary.save()
    store.cache_clear()

    rebuilt = reader.get(url)
    assert rebuilt["X-Config-Cache"] == "miss"
    assert rebuilt.content == first.content and rebuilt["ETag"] == first["ETag"]


def test_the_etag_of_a_read_at_a_revision_gets_a_304(reader, edited_secretary):
    url = f"/api/v1/assistants/{edited_secretary.id}/config/?revision={edited_secretary.at}"
    etag = reader.get(url)["ETag"]

    assert reader.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    live_etag = reader.get(f"/api/v1/assistants/{edited_secretary.id}/config/")["ETag"]
    assert live_etag != etag


def test_an_assistant_that_did_not_exist_at_a_revision_is_404(reader, secretary):
    at = committed_counter()
    newcomer = Assistant.objects.create(name="Newcomer", model="m")
    response = reader.get(f"/api/v1/assistants/{newcomer.id}/config/?revision={at}")
    assert response.status_code == 404


def test_an_assistant_inactive_at_a_revision_is_404(reader, secretary):
    secretary.is_active = False
    secretary.save()
    at = committed_counter()
    secretary.is_active = True
    secretary.save()

    assert reader.get(f"/api/v1/assistants/{secretary.id}/config/?revision={at}").status_code == 404
    assert reader.get(f"/api/v1/assistants/{secretary.id}/config/").status_code == 200


def test_an_unknown_revision_is_404(reader, secretary):
    assert reader.get("/api/v1/config/?revision=99999").status_code == 404
    url = f"/api/v1/assistants/{secretary.id}/config/?revision=99999"
    assert reader.get(url).status_code == 404


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", "9" * 30])
def test_a_malformed_revision_is_400_naming_the_parameter(reader, secretary, value):
    response = reader.get(f"/api/v1/config/?revision={value}")
    assert response.status_code == 400
    assert list(response.json()) == ["revision"]


def test_the_wsgi_fast_path_answers_a_revision_read_without_django(reader, edited_secretary):
    url = f"/api/v1/assistants/{edited_secretary.id}/config/"
    query = f"revision={edited_secretary.at}"
    built = reader.get(f"{url}?{query}")  # stored now
    handed_on = []
    fast = ConfigFastPath(lambda environ, start_response: handed_on.append(environ["QUERY_STRING"]))
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": url,
        "HTTP_HOST": "localhost",
        "HTTP_AUTHORIZATION": f"Bearer {reader.raw_key}",
        "wsgi.url_scheme": "http",
    }
    answered = []

    body = fast({**environ, "QUERY_STRING": query}, lambda *args: answered.append(args))
    fast({**environ, "QUERY_STRING": f"{query}&x=1"}, lambda *args: None)

    assert answered[0][0] == "200 OK" and b"".join(body) == built.content
    assert dict(answered[0][1])["Cache-Control"] == "private, max-age=31536000, immutable"
    assert handed_on == [f"{query}&x=1"]


@pytest.mark.parametrize(
    ("query_string", "asked"),
    [("revision=12", 12), (b"revision=12", 12), ("revision=12&a=1", None), ("revision=x", None)],
)
def test_only_a_query_of_exactly_one_revision_is_decided_by_the_fast_path(query_string, asked):
    target = FastPath.target("GET", query_string, "/api/v1/config/")
    assert (target and target.point.revision) == asked
