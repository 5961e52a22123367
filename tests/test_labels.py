"""Labels (docs/contract.md "Labels", "Reading a label"): moving them, who may, their history, and
config reads through a label (`?label=`, or a key pinned to one): the config at the label's
revision, served from the cache with no SQL, an ETag that changes only with the content."""

import json

import pytest
from django.core.management import CommandError, call_command

from assistants.models import Assistant
from core import store
from core.models import APIKey, Label, LabelMove, Revision
from core.reads.entries import label_entry_key
from tests.factories import assistant_with_tools, key_client, staff_client

# Committed transactions: each change set is its own revision only once the previous committed.
pytestmark = pytest.mark.django_db(transaction=True)


def newest_revision() -> int:
    return Revision.objects.order_by("-number").values_list("number", flat=True).first()


def move(client, name, revision, message="", **headers):
    return client.put(
        f"/api/v1/labels/{name}/",
        {"revision": revision, "message": message},
        format="json",
        **headers,
    )


@pytest.fixture
def mover():
    """A write key that may move protected labels too."""
    return key_client("write", protected=True)


# --- moving ------------------------------------------------------------------------------------


def test_a_write_key_creates_a_label_then_moves_it(secretary, writer):
    first = newest_revision()
    created = move(writer, "staging", first, "first cut")
    assert created.status_code == 201, created.json()
    assert created.json()["name"] == "staging"
    assert created.json()["revision"] == first
    assert created.json()["protected"] is False

    secretary.instructions = "v2"
    secretary.save()
    moved = move(writer, "staging", "live")
    assert moved.status_code == 200
    assert moved.json()["revision"] == newest_revision() > first

    listed = writer.get("/api/v1/labels/").json()["results"]
    assert [(label["name"], label["revision"]) for label in listed] == [
        ("staging", newest_revision())
    ]


@pytest.mark.parametrize("name", ["Production", "1st", "a" * 33, "with_underscore", "x.y"])
def test_a_label_name_outside_the_pattern_is_refused_with_a_400_naming_the_name(
    secretary, writer, name
):
    response = move(writer, name, newest_revision())
    assert response.status_code == 400
    assert "name" in response.json()
    assert not Label.objects.exists()


def test_live_cannot_be_a_label_name(secretary, writer):
    response = move(writer, "live", newest_revision())
    assert response.status_code == 400
    assert "reserved" in response.json()["name"][0]


@pytest.mark.parametrize("revision", ["latest", -1, 1.5, True, None])
def test_a_target_that_is_neither_a_revision_nor_live_is_a_400(secretary, writer, revision):
    response = move(writer, "staging", revision)
    assert response.status_code == 400
    assert "revision" in response.json()


def test_an_unknown_revision_is_a_404_and_moves_nothing(secretary, writer):
    move(writer, "staging", newest_revision())
    response = move(writer, "staging", newest_revision() + 1000)
    assert response.status_code == 404
    assert Label.objects.get().revision == newest_revision()
    assert LabelMove.objects.count() == 1


def test_an_unknown_label_is_a_404(secretary, reader):
    assert reader.get("/api/v1/labels/nope/").status_code == 404
    assert reader.get("/api/v1/labels/nope/history/").status_code == 404
    assert reader.get("/api/v1/config/?label=nope").status_code == 404
    url = f"/api/v1/assistants/{secretary.id}/config/?label=nope"
    assert reader.get(url).status_code == 404


def test_a_write_key_without_protected_cannot_move_production(secretary, writer):
    response = move(writer, "production", newest_revision())
    assert response.status_code == 403
    assert "--protected" in response.json()["detail"]
    assert not Label.objects.exists()


def test_a_write_key_created_with_protected_moves_production(secretary, mover):
    assert move(mover, "production", newest_revision()).status_code == 201


def test_a_read_key_cannot_move_a_label(secretary, reader):
    response = move(reader, "staging", newest_revision())
    assert response.status_code == 403
    assert "`write` scope needed" in response.json()["detail"]


def test_staff_without_the_move_permission_cannot_move_a_label(secretary):
    client = staff_client("config_backend.view_label", "config_backend.change_label")
    response = move(client, "staging", newest_revision())
    assert response.status_code == 403
    assert "config_backend.move_label" in response.json()["detail"]


def test_staff_with_move_label_moves_labels_but_not_protected_ones(secretary):
    client = staff_client("config_backend.move_label")
    assert move(client, "staging", newest_revision()).status_code == 201
    refused = move(client, "production", newest_revision())
    assert refused.status_code == 403
    assert "config_backend.move_protected_label" in refused.json()["detail"]


def test_staff_with_both_permissions_moves_production(secretary):
    client = staff_client("config_backend.move_label", "config_backend.move_protected_label")
    assert move(client, "production", newest_revision()).status_code == 201


def test_protected_labels_come_from_the_setting(secretary, writer, settings):
    settings.PROTECTED_LABELS = ["staging"]
    assert move(writer, "staging", newest_revision()).status_code == 403
    assert move(writer, "production", newest_revision()).status_code == 201


def test_the_history_lists_every_move_newest_first_with_author_and_message(secretary, mover):
    first = newest_revision()
    move(mover, "production", first, "launch")
    secretary.instructions = "v2"
    secretary.save()
    second = newest_revision()
    move(mover, "production", second, HTTP_X_CHANGE_NOTE="from the header")

    history = mover.get("/api/v1/labels/production/history/").json()
    assert history["count"] == 2
    assert [(m["from"], m["to"], m["author"], m["message"]) for m in history["results"]] == [
        (first, second, "test write", "from the header"),
        (None, first, "test write", "launch"),
    ]
    assert all(m["created_at"] for m in history["results"])


def test_a_move_announces_itself_on_the_changes_channel_at_commit(secretary, writer):
    pubsub = store.store().client.pubsub()
    pubsub.subscribe(store.CHANGES_CHANNEL)
    pubsub.get_message(timeout=1)  # the subscription's confirmation
    move(writer, "staging", newest_revision())
    messages = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        messages.append(message["data"])
    pubsub.close()
    assert b"label:staging" in messages


# --- reading through a label -------------------------------------------------------------------


def test_a_label_read_serves_the_config_at_the_labels_revision(secretary, mover, reader):
    secretary.instructions = "v1"
    secretary.save()
    v1 = newest_revision()
    move(mover, "production", v1)
    secretary.instructions = "v2"
    secretary.save()

    url = f"/api/v1/assistants/{secretary.id}/config/"
    assert reader.get(url).json()["instructions"] == "v2"
    labelled = reader.get(url + "?label=production")
    assert labelled.status_code == 200
    assert labelled.json()["instructions"] == "v1"
    assert labelled["X-Config-Revision"] == str(v1)
    assert labelled.content == reader.get(f"{url}?revision={v1}").content
    bundle = reader.get("/api/v1/config/?label=production").json()
    assert bundle["revision"] == v1
    assert [a["instructions"] for a in bundle["assistants"]] == ["v1"]


def test_label_live_is_the_live_config(secretary, reader):
    url = f"/api/v1/assistants/{secretary.id}/config/"
    assert reader.get(url + "?label=live").content == reader.get(url).content


def test_an_invalid_label_in_the_query_is_a_400_naming_it(secretary, reader):
    response = reader.get("/api/v1/config/?label=Not_A_Label")
    assert response.status_code == 400
    assert "label" in response.json()


def test_a_label_read_hit_costs_no_query_and_one_round_trip(
    mover, django_assert_num_queries, redis_commands
):
    assistant = assistant_with_tools(10)
    move(mover, "production", newest_revision())
    client = key_client("read")
    url = f"/api/v1/assistants/{assistant.id}/config/?label=production"
    miss = client.get(url)
    assert miss["X-Config-Cache"] == "miss"
    redis_commands.clear()

    with django_assert_num_queries(0):
        hit = client.get(url)

    assert redis_commands == ["MGET"]
    assert hit["X-Config-Cache"] == "hit"
    assert hit.content == miss.content
    assert hit["ETag"] == miss["ETag"]
    with django_assert_num_queries(0):
        assert client.get(url, HTTP_IF_NONE_MATCH=miss["ETag"]).status_code == 304


def test_a_bundle_label_read_hit_costs_no_query(secretary, mover, django_assert_num_queries):
    move(mover, "production", newest_revision())
    client = key_client("read")
    miss = client.get("/api/v1/config/?label=production")
    with django_assert_num_queries(0):
        hit = client.get("/api/v1/config/?label=production")
    assert hit["X-Config-Cache"] == "hit" and hit.content == miss.content


def test_a_label_move_is_seen_by_the_next_read(secretary, mover, reader):
    url = f"/api/v1/assistants/{secretary.id}/config/?label=production"
    secretary.instructions = "v1"
    secretary.save()
    v1 = newest_revision()
    secretary.instructions = "v2"
    secretary.save()
    move(mover, "production", v1)
    assert reader.get(url).json()["instructions"] == "v1"
    assert reader.get(url)["X-Config-Cache"] == "hit"

    move(mover, "production", "live")

    assert reader.get(url).json()["instructions"] == "v2"


def test_an_entry_stored_by_a_read_that_raced_a_move_is_never_served(secretary, mover, reader):
    url = f"/api/v1/assistants/{secretary.id}/config/?label=production"
    v1 = newest_revision()
    secretary.instructions = "v2"
    secretary.save()
    move(mover, "production", v1)
    reader.get(url)
    entry_key = label_entry_key("production", str(secretary.id))
    (stale,) = store.store().get_many([entry_key])  # tagged with the move counter it read

    move(mover, "production", "live")
    store.store().set(entry_key, stale)  # as a slow reader that read before the move stores it

    response = reader.get(url)
    assert response.json()["instructions"] == "v2"


def test_a_move_is_refused_with_a_503_while_redis_is_unreachable(
    secretary, writer, unreachable_redis
):
    response = move(writer, "staging", newest_revision())
    assert response.status_code == 503
    assert not Label.objects.exists() and not LabelMove.objects.exists()


def test_the_etag_stays_when_the_label_moves_where_the_assistant_did_not_change(
    secretary, calendar_assistant, mover, reader
):
    url = f"/api/v1/assistants/{secretary.id}/config/?label=production"
    before = newest_revision()
    move(mover, "production", before)
    first = reader.get(url)

    calendar_assistant.instructions = "only the calendar changes"
    calendar_assistant.save()
    move(mover, "production", "live")
    unchanged = reader.get(url)
    assert unchanged["X-Config-Revision"] != first["X-Config-Revision"]
    assert unchanged["ETag"] == first["ETag"]
    assert reader.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304

    secretary.instructions = "the secretary changes"
    secretary.save()
    move(mover, "production", "live")
    changed = reader.get(url)
    assert changed["ETag"] != first["ETag"]
    assert reader.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 200


def test_a_label_read_etag_differs_from_the_live_one(secretary, mover, reader):
    move(mover, "production", newest_revision())
    url = f"/api/v1/assistants/{secretary.id}/config/"
    assert reader.get(url)["ETag"] != reader.get(url + "?label=production")["ETag"]


def test_an_assistant_inactive_at_the_labels_revision_is_a_404(secretary, mover, reader):
    move(mover, "production", newest_revision())
    later = Assistant.objects.create(name="Later", model="gpt-4o-mini")
    assert reader.get(f"/api/v1/assistants/{later.id}/config/?label=production").status_code == 404


# --- keys pinned to a label --------------------------------------------------------------------


def test_a_key_pinned_to_a_label_reads_that_label_without_asking(
    secretary, mover, django_assert_num_queries, redis_commands
):
    secretary.instructions = "v1"
    secretary.save()
    move(mover, "production", newest_revision())
    secretary.instructions = "v2"
    secretary.save()
    pinned = key_client("read", label="production")
    url = f"/api/v1/assistants/{secretary.id}/config/"

    assert pinned.get(url).json()["instructions"] == "v1"
    assert pinned.get(url).json()["instructions"] == "v1"
    redis_commands.clear()
    with django_assert_num_queries(0):
        hit = pinned.get(url)
    assert hit["X-Config-Cache"] == "hit" and hit.json()["instructions"] == "v1"
    assert redis_commands == ["MGET"]
    # Asking is still possible.
    assert pinned.get(url + "?label=live").json()["instructions"] == "v2"


def test_a_pinned_key_never_gets_a_cached_live_config(secretary, mover, reader):
    move(mover, "production", newest_revision())
    secretary.instructions = "v2"
    secretary.save()
    url = f"/api/v1/assistants/{secretary.id}/config/"
    reader.get(url)
    assert reader.get(url)["X-Config-Cache"] == "hit"  # the live entry is cached

    pinned = key_client("read", label="production")
    assert pinned.get(url).json()["instructions"] == "Help the user."


def test_re_pinning_a_key_takes_effect_on_its_next_read(secretary, mover):
    move(mover, "production", newest_revision())
    secretary.instructions = "v2"
    secretary.save()
    pinned = key_client("read", label="production")
    url = f"/api/v1/assistants/{secretary.id}/config/"
    pinned.get(url)
    assert pinned.get(url)["X-Config-Cache"] == "hit"

    key = APIKey.objects.get(name="test read")
    key.label = None
    key.save()

    assert pinned.get(url).json()["instructions"] == "v2"


# --- commands ----------------------------------------------------------------------------------


def test_config_label_creates_and_moves_a_label(secretary, capsys):
    first = newest_revision()
    call_command("config_label", "production", str(first), "--message", "launch")
    secretary.instructions = "v2"
    secretary.save()
    call_command("config_label", "production", "live")

    assert Label.objects.get().revision == newest_revision()
    moves = list(LabelMove.objects.order_by("id").values_list("to_revision", "message"))
    assert moves == [(first, "launch"), (newest_revision(), "")]
    assert "Moved label “production”" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "target", "says"),
    [
        ("Production", "live", "NAME"),
        ("live", "live", "reserved"),
        ("production", "latest", "X"),
        ("production", "999999", "No revision 999999"),
    ],
)
def test_config_label_refuses_bad_input_clearly(secretary, name, target, says):
    with pytest.raises(CommandError, match=says):
        call_command("config_label", name, target)
    assert not Label.objects.exists()


def test_create_api_key_pins_a_key_to_a_label(db, capsys):
    call_command("create_api_key", "runtime", "--scope", "read", "--label", "production")
    call_command("create_api_key", "deployer", "--scope", "write", "--protected")
    runtime = APIKey.objects.get(name="runtime")
    deployer = APIKey.objects.get(name="deployer")
    assert (runtime.label, runtime.protected) == ("production", False)
    assert (deployer.label, deployer.protected) == (None, True)
    assert "pinned to label production" in capsys.readouterr().out


@pytest.mark.parametrize(
    "arguments",
    [["--label", "Not A Label"], ["--label", "live"], ["--scope", "read", "--protected"]],
)
def test_create_api_key_refuses_a_bad_label_or_protected_read_key(db, arguments):
    with pytest.raises(CommandError):
        call_command("create_api_key", "runtime", *arguments)
    assert not APIKey.objects.exists()


def test_the_admin_form_pins_a_key_to_a_label(admin_client):
    response = admin_client.post(
        "/admin/config_backend/apikey/add/",
        {"name": "runtime", "scope": "read", "label": "production", "expiry_date_0": ""},
    )
    assert response.status_code == 200
    assert response.context.get("adminform") is None, response.content.decode()[:2000]
    assert APIKey.objects.get().label == "production"


def test_the_admin_form_refuses_protected_on_a_key_that_cannot_write(admin_client):
    response = admin_client.post(
        "/admin/config_backend/apikey/add/",
        {"name": "runtime", "scope": "read", "protected": "on", "expiry_date_0": ""},
    )
    assert response.status_code == 200
    assert "Only a key with write scope moves labels" in response.content.decode()
    assert not APIKey.objects.exists()


def test_a_label_read_body_is_json_of_the_resolved_config(secretary, mover, reader):
    move(mover, "production", newest_revision())
    body = reader.get("/api/v1/config/?label=production").content
    assert json.loads(body)["secretary"] == str(secretary.id)
