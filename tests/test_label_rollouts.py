"""Rollouts on labels (docs/contract.md "Rollout on a label", "Reads per user"): a candidate
revision for a share of users, sticky per user; per-user reads on both config endpoints with
their variant, as cheap as any hit; promote and abort in one step; who may; bad input refused
with nothing changed; the events, the command and the admin pages."""

import json

import pytest
from config_client.rollout import BASE, CANDIDATE, bucket, variant
from django.core.cache import cache
from django.core.management import CommandError, call_command

from config_backend.history.labels import LabelChange, change_label
from core.events.replay import label_events_after
from core.models import Label, LabelMove, Revision
from core.reads import points
from tests.factories import (
    assistant_with_tools,
    key_client,
    label_state,
    make_webhook,
    session,
    staff_client,
    staff_user,
)
from webhooks.models import Delivery
from webhooks.outbox import event_data

pytestmark = pytest.mark.django_db(transaction=True)


def newest_revision() -> int:
    return Revision.objects.order_by("-number").values_list("number", flat=True).first()


@pytest.fixture
def revisions(secretary) -> tuple[int, int]:
    """(base, candidate): two revisions whose secretary differs in its instructions."""
    secretary.instructions = "base"
    secretary.save()
    base = newest_revision()
    secretary.instructions = "candidate"
    secretary.save()
    return base, newest_revision()


@pytest.fixture
def mover():
    """A write key that may change protected labels too."""
    return key_client("write", protected=True)


def put(client, name, body):
    return client.put(f"/api/v1/labels/{name}/", body, format="json")


def roll_out(client, name, base, candidate, percent, users=(), **more):
    body = {"revision": base, "rollout": {"revision": candidate, "percent": percent}}
    body["rollout"]["users"] = list(users)
    body.update(more)
    return put(client, name, body)


def users_on(label: dict, variant_name: str, count: int = 2000) -> set[str]:
    return {
        f"user-{n}"
        for n in range(count)
        if variant(label["name"], label["rollout"], f"user-{n}") == variant_name
    }


# --- the bucket rule ---------------------------------------------------------------------------


@pytest.mark.parametrize("percent", [1, 10, 50])
def test_a_hundred_thousand_user_ids_land_on_the_candidate_within_half_a_point(percent):
    on_candidate = sum(
        bucket("production", "3f9c2a1b0d4e5f60", f"user-{n}") < percent * 100
        for n in range(100_000)
    )
    assert abs(on_candidate / 1000 - percent) <= 0.5


# --- setting a rollout -------------------------------------------------------------------------


def test_a_write_key_sets_a_rollout_and_the_label_shows_it_with_an_id(revisions, writer):
    base, candidate = revisions
    response = roll_out(writer, "staging", base, candidate, 12.5, ["alice"])
    assert response.status_code == 201, response.json()
    shown = response.json()
    assert shown["revision"] == base
    assert shown["rollout"]["revision"] == candidate
    assert shown["rollout"]["percent"] == 12.5
    assert shown["rollout"]["users"] == ["alice"]
    assert len(shown["rollout"]["id"]) >= 16
    assert writer.get("/api/v1/labels/staging/").json()["rollout"] == shown["rollout"]
    assert writer.get("/api/v1/labels/").json()["results"][0]["rollout"] == shown["rollout"]


def test_the_rollout_id_stays_when_the_percent_or_users_change_and_not_when_the_candidate_does(
    revisions, writer, secretary
):
    base, candidate = revisions
    first = roll_out(writer, "staging", base, candidate, 5).json()["rollout"]["id"]
    raised = roll_out(writer, "staging", base, candidate, 40, ["bob"]).json()["rollout"]
    assert raised["id"] == first and raised["percent"] == 40

    secretary.instructions = "a third"
    secretary.save()
    moved = roll_out(writer, "staging", base, newest_revision(), 40).json()["rollout"]
    assert moved["id"] != first


def test_raising_the_percent_keeps_every_user_already_on_the_candidate(revisions, writer):
    base, candidate = revisions
    at_ten = roll_out(writer, "staging", base, candidate, 10).json()
    at_thirty = roll_out(writer, "staging", base, candidate, 30).json()
    before, after = users_on(at_ten, CANDIDATE), users_on(at_thirty, CANDIDATE)
    assert before and before < after  # everyone stays, and more join


def test_a_move_keeps_the_rollout_and_put_without_revision_keeps_the_base(revisions, writer):
    base, candidate = revisions
    roll_out(writer, "staging", base, candidate, 10)
    rollout = writer.get("/api/v1/labels/staging/").json()["rollout"]
    response = put(writer, "staging", {"rollout": {**rollout, "percent": 20}})
    assert response.status_code == 200, response.json()
    assert response.json()["revision"] == base
    assert response.json()["rollout"]["id"] == rollout["id"]

    cleared = put(writer, "staging", {"rollout": None})
    assert cleared.json()["rollout"] is None and cleared.json()["revision"] == base


# --- reading per user --------------------------------------------------------------------------


def candidate_and_base_users(label: dict) -> tuple[str, str]:
    on = sorted(users_on(label, CANDIDATE, 200))
    off = sorted(users_on(label, BASE, 200))
    return on[0], off[0]


@pytest.mark.parametrize("endpoint", ["bundle", "assistant"])
def test_a_per_user_read_serves_the_users_variant_with_its_revision(
    revisions, writer, reader, secretary, endpoint
):
    base, candidate = revisions
    label = roll_out(writer, "production-canary", base, candidate, 50).json()
    on, off = candidate_and_base_users(label)
    path = (
        "/api/v1/config/" if endpoint == "bundle" else f"/api/v1/assistants/{secretary.id}/config/"
    )

    def instructions(response):
        config = response.json()
        if endpoint == "bundle":
            config = next(a for a in config["assistants"] if a["id"] == str(secretary.id))
        return config["instructions"]

    for _ in range(2):  # the miss, then the hit
        mine = reader.get(f"{path}?label=production-canary&user_id={on}")
        theirs = reader.get(f"{path}?label=production-canary&user_id={off}")
        assert (mine["X-Config-Variant"], mine["X-Config-Revision"]) == (CANDIDATE, str(candidate))
        assert (theirs["X-Config-Variant"], theirs["X-Config-Revision"]) == (BASE, str(base))
        assert instructions(mine) == "candidate" and instructions(theirs) == "base"
    assert mine["X-Config-Cache"] == "hit" and theirs["X-Config-Cache"] == "hit"
    assert mine["ETag"] != theirs["ETag"]

    anyone = reader.get(f"{path}?label=production-canary")
    assert (anyone["X-Config-Variant"], instructions(anyone)) == (BASE, "base")


def test_a_listed_user_gets_the_candidate_even_at_zero_percent(revisions, writer, reader):
    base, candidate = revisions
    roll_out(writer, "staging", base, candidate, 0, ["vip"])
    assert reader.get("/api/v1/config/?label=staging&user_id=vip")["X-Config-Variant"] == CANDIDATE
    assert reader.get("/api/v1/config/?label=staging&user_id=vap")["X-Config-Variant"] == BASE


def test_a_key_pinned_to_a_label_reads_the_users_variant_with_user_id_alone(revisions, mover):
    base, candidate = revisions
    roll_out(mover, "production", base, candidate, 0, ["vip"], message="canary")
    pinned = key_client("read", label="production")
    for _ in range(2):
        response = pinned.get("/api/v1/config/?user_id=vip")
        assert response["X-Config-Variant"] == CANDIDATE
        assert response["X-Config-Revision"] == str(candidate)
    assert response["X-Config-Cache"] == "hit"
    assert pinned.get("/api/v1/config/?user_id=someone")["X-Config-Variant"] == BASE


def test_live_and_revision_reads_ignore_user_id_and_carry_no_variant(revisions, reader):
    base, _ = revisions
    live = reader.get("/api/v1/config/?user_id=vip")
    at = reader.get(f"/api/v1/config/?revision={base}&user_id=vip")
    assert live.status_code == at.status_code == 200
    assert "X-Config-Variant" not in live and "X-Config-Variant" not in at


def test_a_per_user_label_hit_costs_no_query_and_one_round_trip(
    secretary, writer, django_assert_num_queries, redis_commands
):
    assistant = assistant_with_tools(5)
    base = newest_revision()
    assistant.instructions = "the candidate's"
    assistant.save()
    label = roll_out(writer, "production-canary", base, newest_revision(), 50).json()
    on, off = candidate_and_base_users(label)
    client = key_client("read")
    url = f"/api/v1/assistants/{assistant.id}/config/?label=production-canary&user_id="
    misses = {user: client.get(url + user) for user in (on, off)}
    redis_commands.clear()

    with django_assert_num_queries(0):
        hits = {user: client.get(url + user) for user in (on, off)}
        not_modified = client.get(url + on, HTTP_IF_NONE_MATCH=misses[on]["ETag"])

    assert redis_commands == ["MGET", "MGET", "MGET"]
    assert [hits[user]["X-Config-Variant"] for user in (on, off)] == [CANDIDATE, BASE]
    for user in (on, off):
        assert hits[user]["X-Config-Cache"] == "hit"
        assert hits[user].content == misses[user].content
        assert hits[user]["ETag"] == misses[user]["ETag"]
    assert not_modified.status_code == 304


def test_per_user_query_strings_do_not_grow_the_parse_memo():
    points._parse.cache_clear()
    for n in range(1000):
        point = points.point_asked(f"label=production&user_id=user-{n}")
        assert (point.label, point.user_id) == ("production", f"user-{n}")
    assert points._parse.cache_info().currsize == 1


@pytest.mark.parametrize("user_id", ["", "x" * 256])
def test_an_empty_or_overlong_user_id_is_a_400_naming_it(secretary, reader, user_id):
    response = reader.get(f"/api/v1/config/?label=production&user_id={user_id}")
    assert response.status_code == 400
    assert "user_id" in response.json()


def test_a_rollout_change_is_seen_by_the_next_per_user_read(revisions, writer, reader):
    base, candidate = revisions
    roll_out(writer, "staging", base, candidate, 0)
    url = "/api/v1/config/?label=staging&user_id=vip"
    assert reader.get(url)["X-Config-Variant"] == BASE
    assert reader.get(url)["X-Config-Cache"] == "hit"

    roll_out(writer, "staging", base, candidate, 0, ["vip"])

    assert reader.get(url)["X-Config-Variant"] == CANDIDATE


def test_a_restored_database_with_the_same_move_counter_never_gets_the_old_variant(
    revisions, writer, reader
):
    base, candidate = revisions
    roll_out(writer, "staging", base, candidate, 0, ["vip"])
    url = "/api/v1/config/?label=staging&user_id=vip"
    assert reader.get(url)["X-Config-Variant"] == CANDIDATE
    assert reader.get(url)["X-Config-Cache"] == "hit"  # this process knows the rollout now
    # A restore: the label's row as a backup had it, the same move counter, the cache retired.
    Label.objects.filter(name="staging").update(rollout_users=[])
    cache.clear()

    assert reader.get(url)["X-Config-Variant"] == BASE
    assert reader.get(url)["X-Config-Variant"] == BASE


# --- promote and abort -------------------------------------------------------------------------


def test_promote_moves_the_label_to_the_candidate_in_one_step(revisions, writer, reader):
    base, candidate = revisions
    roll_out(writer, "staging", base, candidate, 10)
    response = writer.post("/api/v1/labels/staging/promote/", {"message": "ship it"}, "json")
    assert response.status_code == 200, response.json()
    assert (response.json()["revision"], response.json()["rollout"]) == (candidate, None)
    latest = writer.get("/api/v1/labels/staging/history/").json()["results"][0]
    assert latest["action"] == "promote"
    assert (latest["from"], latest["to"], latest["message"]) == (base, candidate, "ship it")
    assert reader.get("/api/v1/config/?label=staging&user_id=anyone")["X-Config-Revision"] == str(
        candidate
    )


def test_abort_keeps_the_base_and_clears_the_rollout_in_one_step(revisions, writer, reader):
    base, candidate = revisions
    roll_out(writer, "staging", base, candidate, 0, ["vip"])
    assert reader.get("/api/v1/config/?label=staging&user_id=vip")["X-Config-Variant"] == CANDIDATE
    response = writer.post("/api/v1/labels/staging/abort/", {}, "json")
    assert response.status_code == 200, response.json()
    assert (response.json()["revision"], response.json()["rollout"]) == (base, None)
    history = writer.get("/api/v1/labels/staging/history/").json()["results"]
    assert [(entry["action"], entry["percent"]) for entry in history] == [
        ("abort", None),
        ("rollout", 0),
    ]
    assert reader.get("/api/v1/config/?label=staging&user_id=vip")["X-Config-Variant"] == BASE


@pytest.mark.parametrize("action", ["promote", "abort"])
def test_promote_or_abort_without_a_rollout_is_a_409_and_changes_nothing(revisions, writer, action):
    put(writer, "staging", {"revision": revisions[0]})
    before = label_state("staging")
    response = writer.post(f"/api/v1/labels/staging/{action}/", {}, "json")
    assert response.status_code == 409
    assert "no rollout" in response.json()["detail"]
    assert label_state("staging") == before


@pytest.mark.parametrize("action", ["promote", "abort"])
def test_promote_or_abort_of_an_unknown_label_is_a_404(secretary, writer, action):
    assert writer.post(f"/api/v1/labels/nothing/{action}/", {}, "json").status_code == 404


# --- who may -----------------------------------------------------------------------------------


def test_a_read_key_may_neither_set_a_rollout_nor_promote(revisions, reader, writer):
    base, candidate = revisions
    roll_out(writer, "staging", base, candidate, 10)
    before = label_state("staging")
    assert roll_out(reader, "staging", base, candidate, 20).status_code == 403
    assert reader.post("/api/v1/labels/staging/promote/", {}, "json").status_code == 403
    assert reader.post("/api/v1/labels/staging/abort/", {}, "json").status_code == 403
    assert label_state("staging") == before


def test_a_protected_label_needs_a_protected_key_or_the_protected_permission(revisions, mover):
    base, candidate = revisions
    assert roll_out(mover, "production", base, candidate, 10).status_code == 201
    before = label_state("production")
    plain = key_client("write")
    mere_mover = staff_client("config_backend.move_label", "config_backend.view_label")
    for client in (plain, mere_mover):
        assert roll_out(client, "production", base, candidate, 20).status_code == 403
        assert client.post("/api/v1/labels/production/promote/", {}, "json").status_code == 403
        assert client.post("/api/v1/labels/production/abort/", {}, "json").status_code == 403
    assert label_state("production") == before

    boss = staff_client(
        "config_backend.move_label",
        "config_backend.move_protected_label",
        "config_backend.view_label",
    )
    assert boss.post("/api/v1/labels/production/promote/", {}, "json").status_code == 200


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rollout", "field"),
    [
        ({"percent": 10}, "rollout.revision"),
        ({"revision": "CANDIDATE"}, "rollout.percent"),
        ({"revision": "CANDIDATE", "percent": 100.01}, "rollout.percent"),
        ({"revision": "CANDIDATE", "percent": -1}, "rollout.percent"),
        ({"revision": "CANDIDATE", "percent": 12.345}, "rollout.percent"),
        ({"revision": "CANDIDATE", "percent": "NaN"}, "rollout.percent"),
        ({"revision": "CANDIDATE", "percent": True}, "rollout.percent"),
        ({"revision": "CANDIDATE", "percent": 5, "users": [7]}, "rollout.users"),
        ({"revision": "CANDIDATE", "percent": 5, "users": "alice"}, "rollout.users"),
        ({"revision": "CANDIDATE", "percent": 5, "users": [""]}, "rollout.users"),
        (
            {"revision": "CANDIDATE", "percent": 5, "users": [f"u{n}" for n in range(1001)]},
            "rollout.users",
        ),
        ({"revision": "BASE", "percent": 5}, "rollout.revision"),
        ({"revision": "soon", "percent": 5}, "rollout.revision"),
        ({"revision": "CANDIDATE", "percent": 5, "share": 3}, "rollout.share"),
        ("half", "rollout"),
    ],
)
def test_a_bad_rollout_is_a_400_naming_the_field_and_changes_nothing(
    revisions, writer, rollout, field
):
    base, candidate = revisions
    roll_out(writer, "staging", base, candidate, 10)
    before = label_state("staging")
    if isinstance(rollout, dict) and "revision" in rollout:
        rollout = {
            **rollout,
            "revision": {"BASE": base, "CANDIDATE": candidate}.get(
                rollout["revision"], rollout["revision"]
            ),
        }
    response = put(writer, "staging", {"revision": base, "rollout": rollout})
    assert response.status_code == 400, response.json()
    assert field in response.json(), response.json()
    assert label_state("staging") == before


def test_an_unknown_candidate_revision_is_a_404_and_changes_nothing(revisions, writer):
    base, candidate = revisions
    roll_out(writer, "staging", base, candidate, 10)
    before = label_state("staging")
    assert roll_out(writer, "staging", base, 999_999, 10).status_code == 404
    assert label_state("staging") == before


def test_moving_the_base_onto_the_candidate_is_a_400(revisions, writer):
    base, candidate = revisions
    roll_out(writer, "staging", base, candidate, 10)
    before = label_state("staging")
    response = put(writer, "staging", {"revision": candidate})
    assert response.status_code == 400 and "revision" in response.json()
    assert label_state("staging") == before


def test_a_new_label_needs_a_base_revision(revisions, writer):
    response = put(writer, "fresh", {"rollout": {"revision": revisions[1], "percent": 5}})
    assert response.status_code == 400 and "revision" in response.json()
    assert not Label.objects.filter(name="fresh").exists()


# --- events ------------------------------------------------------------------------------------


def test_the_label_event_and_webhook_body_carry_the_rollout(revisions, writer):
    make_webhook("https://93.184.215.14/rollouts", events=["label"])
    base, candidate = revisions
    rollout = roll_out(writer, "staging", base, candidate, 10, ["vip"]).json()["rollout"]
    writer.post("/api/v1/labels/staging/abort/", {}, "json")

    events = [json.loads(event.data) for event in label_events_after(0, 10)]
    assert events == [
        {"label": "staging", "revision": base, "rollout": rollout},
        {"label": "staging", "revision": base, "rollout": None},
    ]
    bodies = [event_data(d) for d in Delivery.objects.order_by("id")]
    assert bodies == events


# --- the command -------------------------------------------------------------------------------


def test_config_label_sets_a_rollout_then_promotes_it(revisions, capsys):
    base, candidate = revisions
    call_command(
        "config_label",
        "staging",
        str(base),
        "--rollout",
        str(candidate),
        "--percent",
        "5",
        "--user",
        "vip",
        "--message",
        "canary",
    )
    label = Label.objects.get(name="staging")
    assert (label.revision, label.candidate_revision, str(label.rollout_percent)) == (
        base,
        candidate,
        "5.00",
    )
    assert label.rollout_users == ["vip"]
    assert "revision" in capsys.readouterr().out

    call_command("config_label", "staging", "--promote", "--message", "all in")
    label.refresh_from_db()
    assert (label.revision, label.candidate_revision) == (candidate, None)
    assert list(LabelMove.objects.order_by("id").values_list("action", "message")) == [
        ("rollout", "canary"),
        ("promote", "all in"),
    ]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["--abort"], "no rollout"),
        (["BASE", "--rollout", "CANDIDATE", "--percent", "101"], "--percent"),
        (["BASE", "--rollout", "CANDIDATE"], "--percent"),
        (["BASE", "--percent", "5"], "--rollout"),
        (["BASE", "--promote"], "only NAME"),
        (["BASE", "--rollout", "BASE", "--percent", "5"], "--rollout"),
    ],
)
def test_config_label_refuses_a_bad_rollout_clearly(revisions, arguments, says):
    base, candidate = revisions
    change_label("staging", LabelChange("move", base), author="setup")
    before = label_state("staging")
    named = {"BASE": str(base), "CANDIDATE": str(candidate)}
    with pytest.raises(CommandError, match=says):
        call_command("config_label", "staging", *[named.get(a, a) for a in arguments])
    assert label_state("staging") == before


# --- the admin ---------------------------------------------------------------------------------


def test_the_admin_sets_a_rollout_after_the_diff_then_promotes_it(revisions):
    base, candidate = revisions
    change_label("staging", LabelChange("move", base), author="setup")
    mover = session(staff_user("config_backend.view_label", "config_backend.move_label"))
    url = "/admin/config_backend/label/staging/"
    form = {"candidate": str(candidate), "percent": "12.5", "users": "vip\nvap", "change_note": ""}

    preview = mover.post(url + "rollout/", form)
    assert preview.status_code == 200
    assert b"diff-preview" in preview.content and b"candidate" in preview.content
    assert Label.objects.get(name="staging").candidate_revision is None  # not before confirming

    done = mover.post(url + "rollout/", {**form, "confirm": "yes"})
    assert done.status_code == 302
    label = Label.objects.get(name="staging")
    assert (label.candidate_revision, label.rollout_users) == (candidate, ["vip", "vap"])
    page = mover.get(url + "change/").content.decode()
    assert "12.50 %" in page and "promote-link" in page

    assert b"diff-preview" in mover.get(url + "promote/").content
    assert mover.post(url + "promote/", {"confirm": "yes", "change_note": "go"}).status_code == 302
    label.refresh_from_db()
    assert (label.revision, label.candidate_revision) == (candidate, None)
    assert LabelMove.objects.order_by("-id").first().action == "promote"


def test_the_admin_refuses_a_bad_rollout_in_the_form_and_changes_nothing(revisions):
    base, _ = revisions
    change_label("staging", LabelChange("move", base), author="setup")
    before = label_state("staging")
    mover = session(staff_user("config_backend.view_label", "config_backend.move_label"))
    response = mover.post(
        "/admin/config_backend/label/staging/rollout/",
        {"candidate": str(base), "percent": "5", "confirm": "yes"},
    )
    assert response.status_code == 200
    assert "promote the rollout instead" in response.content.decode()
    assert label_state("staging") == before


def test_the_admin_refuses_rollout_pages_to_who_may_not_move_the_label(revisions):
    base, candidate = revisions
    change_label(
        "production",
        LabelChange("rollout", base, {"revision": candidate, "percent": 5}),
        author="setup",
    )
    before = label_state("production")
    mover = session(staff_user("config_backend.view_label", "config_backend.move_label"))
    for step in ("rollout", "promote", "abort"):
        url = f"/admin/config_backend/label/production/{step}/"
        assert mover.get(url).status_code == 403
        assert mover.post(url, {"confirm": "yes"}).status_code == 403
    assert label_state("production") == before
