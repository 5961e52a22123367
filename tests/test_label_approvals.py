"""Four-eyes approvals of protected labels (docs/contract.md "Releases"; docs/approvals.md): with
LABEL_APPROVALS = N, a change to a protected label is a request; N other staff approve it and the
last approval applies it, unless the label changed since; requests are rejected, cancelled,
expire; and the races between them have exactly one outcome."""

import threading
from datetime import timedelta
from functools import partial
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from config_backend.history.approvals import (
    RequestClosed,
    RequestStale,
    approve_request,
    expire_due_requests,
    request_json,
)
from config_backend.history.labels import LabelChange, change_label, label_move
from core.models import Label, LabelMove, LabelRequest, Revision
from tests.factories import (
    APPROVER,
    approver,
    concurrently,
    key_client,
    label_state,
    make_label_request,
    make_webhook,
    session,
    staff_client,
    staff_user,
)
from tests.webhook_receivers import Receiver
from webhooks.models import Delivery
from webhooks.worker import Worker

# Committed transactions: the races run in threads, each on its own connection.
pytestmark = pytest.mark.django_db(transaction=True)

MOVER = ("config_backend.move_label", "config_backend.move_protected_label")


def newest_revision() -> int:
    return Revision.objects.order_by("-number").values_list("number", flat=True).first()


def move(client, name, revision, message=""):
    return client.put(
        f"/api/v1/labels/{name}/", {"revision": revision, "message": message}, format="json"
    )


def approve(client, request_id):
    return client.post(f"/api/v1/label-requests/{request_id}/approve/")


@pytest.fixture
def two_revisions(secretary):
    """production at the first of two revisions (moved before approvals are on); the second
    revision changes the secretary's instructions."""
    first = newest_revision()
    label_move(name="production", revision=first, author="setup")
    secretary.instructions = "Be brief."
    secretary.save()
    return first, newest_revision()


@pytest.fixture
def approvals(settings):
    settings.LABEL_APPROVALS = 1
    return settings


@pytest.fixture
def mover():
    """A write key that may move protected labels."""
    return key_client("write", protected=True)


def production() -> int:
    return Label.objects.get(name="production").revision


# --- requests instead of changes ---------------------------------------------------------------


def test_a_move_of_a_protected_label_becomes_a_pending_request_and_nothing_moves(
    two_revisions, approvals, mover
):
    first, second = two_revisions
    approvals.LABEL_APPROVALS = 2
    moves = LabelMove.objects.count()

    response = move(mover, "production", second, "ship the brief prompt")

    assert response.status_code == 202, response.json()
    body = response.json()
    assert {key: body[key] for key in ("status", "approvals", "needed")} == {
        "status": "pending",
        "approvals": 0,
        "needed": 2,
    }
    assert body["changes"][0]["name"] == "Secretary"
    assert body["changes"][0]["fields"]["instructions"] == {
        "old": "Help the user.",
        "new": "Be brief.",
    }
    assert body["requester"] == {"name": "test write", "kind": "api_key"}
    assert production() == first
    assert LabelMove.objects.count() == moves
    assert mover.get(f"/api/v1/label-requests/{body['id']}/").json() == body


def test_an_unprotected_label_still_moves_at_once(two_revisions, approvals, mover):
    _, second = two_revisions
    assert move(mover, "staging", second).status_code == 201
    assert not LabelRequest.objects.exists()


def test_with_approvals_off_a_protected_label_moves_at_once(two_revisions, mover):
    _, second = two_revisions
    assert move(mover, "production", second).status_code == 200
    assert production() == second


def test_the_nth_approval_by_other_staff_applies_the_change(two_revisions, approvals, mover):
    first, second = two_revisions
    approvals.LABEL_APPROVALS = 2
    request_id = move(mover, "production", second, "brief").json()["id"]
    alice, bob = staff_client(*APPROVER), staff_client(*APPROVER)

    once = approve(alice, request_id)
    assert once.status_code == 200, once.json()
    assert (once.json()["status"], once.json()["approvals"]) == ("pending", 1)
    assert production() == first

    twice = approve(bob, request_id)
    assert twice.status_code == 200, twice.json()
    assert (twice.json()["status"], twice.json()["approvals"]) == ("approved", 2)
    assert production() == second
    applied = LabelMove.objects.filter(label="production").order_by("-id").first()
    assert (applied.from_revision, applied.to_revision, applied.author) == (
        first,
        second,
        "test write",
    )
    names = [one["user"] for one in twice.json()["approved_by"]]
    assert applied.message == f"brief (request {request_id}, approved by {', '.join(names)})"


def test_the_requester_cannot_approve_their_own_request(two_revisions, approvals):
    _, second = two_revisions
    requester = staff_user(*MOVER, *APPROVER)
    request_id = make_label_request("production", second, requester=requester).id
    response = approve(session(requester), request_id)

    assert response.status_code == 403
    assert "another person" in response.json()["detail"]
    assert LabelRequest.objects.get().status == "pending"
    assert not LabelRequest.objects.get().approvals.exists()


def test_an_api_key_may_request_but_never_approve(two_revisions, approvals, mover):
    _, second = two_revisions
    request_id = move(mover, "production", second).json()["id"]
    for key in (mover, key_client("write", protected=True)):
        response = approve(key, request_id)
        assert response.status_code == 403
        assert "never approve" in response.json()["detail"]
    assert LabelRequest.objects.get().status == "pending"


def test_staff_without_approve_label_move_cannot_approve(two_revisions, approvals):
    _, second = two_revisions
    request_id = make_label_request("production", second).id
    response = approve(staff_client(*MOVER, "config_backend.view_labelrequest"), request_id)
    assert response.status_code == 403
    assert "config_backend.approve_label_move" in response.json()["detail"]


def test_approving_twice_is_a_409_and_adds_nothing(two_revisions, approvals):
    approvals.LABEL_APPROVALS = 2
    _, second = two_revisions
    request_id = make_label_request("production", second).id
    alice = staff_client(*APPROVER)
    assert approve(alice, request_id).status_code == 200

    again = approve(alice, request_id)

    assert again.status_code == 409
    assert "already approved" in again.json()["detail"]
    assert LabelRequest.objects.get().approvals.count() == 1


@pytest.mark.parametrize("decision", ["reject", "cancel"])
def test_approving_a_rejected_or_cancelled_request_is_a_409_and_moves_nothing(
    two_revisions, approvals, mover, decision
):
    first, second = two_revisions
    request_id = move(mover, "production", second).json()["id"]
    decider = staff_client(*APPROVER) if decision == "reject" else mover
    decided = decider.post(f"/api/v1/label-requests/{request_id}/{decision}/")
    assert decided.status_code == 200, decided.json()

    response = approve(staff_client(*APPROVER), request_id)

    assert response.status_code == 409
    status = "rejected" if decision == "reject" else "cancelled"
    assert f"is {status}" in response.json()["detail"]
    assert production() == first
    assert LabelRequest.objects.get().status == status


def test_a_request_past_its_expiry_is_expired_and_approving_it_is_a_409(two_revisions, approvals):
    first, second = two_revisions
    label_request = make_label_request("production", second)
    LabelRequest.objects.filter(pk=label_request.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    response = approve(staff_client(*APPROVER), label_request.id)

    assert response.status_code == 409
    assert "is expired" in response.json()["detail"]
    assert LabelRequest.objects.get().status == "expired"
    assert production() == first


def test_reading_the_requests_marks_those_past_their_expiry(two_revisions, approvals, reader):
    _, second = two_revisions
    label_request = make_label_request("production", second)
    LabelRequest.objects.filter(pk=label_request.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert reader.get("/api/v1/label-requests/?status=pending").json()["count"] == 0
    [listed] = reader.get("/api/v1/label-requests/?status=expired").json()["results"]
    assert listed["id"] == label_request.id


def test_requests_expire_after_the_ttl_setting(two_revisions, approvals):
    approvals.LABEL_REQUEST_TTL = 3600
    _, second = two_revisions
    label_request = make_label_request("production", second)
    assert label_request.expires_at - label_request.created_at == pytest.approx(
        timedelta(hours=1), abs=timedelta(seconds=5)
    )


def test_a_label_changed_since_the_request_makes_it_stale_and_nothing_moves(
    two_revisions, approvals
):
    first, second = two_revisions
    request_id = make_label_request("production", second).id
    label_move(name="production", revision=first, message="hotfix", author="ops")  # direct
    moves = LabelMove.objects.count()

    response = approve(staff_client(*APPROVER), request_id)

    assert response.status_code == 409
    assert "changed since" in response.json()["detail"]
    assert LabelRequest.objects.get().status == "stale"
    assert LabelMove.objects.count() == moves
    assert production() == first


def test_only_the_requester_cancels(two_revisions, approvals, mover):
    _, second = two_revisions
    request_id = move(mover, "production", second).json()["id"]
    for other in (key_client("write", protected=True), staff_client(*APPROVER)):
        refused = other.post(f"/api/v1/label-requests/{request_id}/cancel/")
        assert refused.status_code == 403
        assert "Only who made" in refused.json()["detail"]
    assert LabelRequest.objects.get().status == "pending"
    cancelled = mover.post(f"/api/v1/label-requests/{request_id}/cancel/")
    assert cancelled.json()["status"] == "cancelled"


def test_the_list_filters_by_status(two_revisions, approvals, reader):
    _, second = two_revisions
    pending = make_label_request("production", second)
    rejected = make_label_request("production", second)
    LabelRequest.objects.filter(pk=rejected.pk).update(status="rejected")

    listed = reader.get("/api/v1/label-requests/?status=pending").json()["results"]
    assert [one["id"] for one in listed] == [pending.id]
    everything = reader.get("/api/v1/label-requests/").json()["results"]
    assert [one["id"] for one in everything] == [rejected.id, pending.id]


@pytest.mark.parametrize("request_id", ["999", "0", "99999999999999999999999"])
def test_an_unknown_request_is_a_404_even_past_the_largest_id(db, reader, request_id):
    assert reader.get(f"/api/v1/label-requests/{request_id}/").status_code == 404
    for decision in ("approve", "reject"):
        url = f"/api/v1/label-requests/{request_id}/{decision}/"
        assert staff_client(*APPROVER).post(url).status_code == 404
    assert reader.post(f"/api/v1/label-requests/{request_id}/cancel/").status_code == 404


@pytest.mark.parametrize("status", ["open", "PENDING", "pending\x00", "p" * 10_000])
def test_a_hostile_status_filter_is_a_400_naming_it(db, reader, status):
    response = reader.get("/api/v1/label-requests/", {"status": status})
    assert response.status_code == 400
    assert list(response.json()) == ["status"]


def test_config_label_on_a_protected_label_makes_a_request(two_revisions, approvals):
    first, second = two_revisions
    out = StringIO()
    call_command("config_label", "production", str(second), "--message", "brief", stdout=out)
    assert "change request" in out.getvalue()
    label_request = LabelRequest.objects.get()
    assert (label_request.requester_kind, label_request.change) == (
        "command",
        {"action": "move", "revision": second, "rollout": None},
    )
    assert production() == first


def test_the_admin_move_of_a_protected_label_makes_a_request(two_revisions, approvals):
    first, second = two_revisions
    client = session(staff_user(*MOVER, "config_backend.view_label"))
    response = client.post(
        "/admin/config_backend/label/production/move/",
        {"target": str(second), "change_note": "brief", "confirm": "1"},
        follow=True,
    )
    assert response.status_code == 200
    assert "change request" in response.content.decode()
    assert LabelRequest.objects.get().message == "brief"
    assert production() == first


def test_creating_a_protected_label_in_the_admin_makes_a_request_and_the_approval_creates_it(
    secretary, approvals
):
    revision = newest_revision()
    client = session(staff_user(*MOVER, "config_backend.view_label"))
    response = client.post(
        "/admin/config_backend/label/add/",
        {"name": "production", "target": str(revision), "change_note": "first", "confirm": "1"},
        follow=True,
    )
    assert "change request" in response.content.decode()
    request = LabelRequest.objects.get()
    assert (request.label, request.from_revision) == ("production", None)
    assert not Label.objects.exists()

    assert approve(staff_client(*APPROVER), request.id).json()["status"] == "approved"
    assert production() == revision


# --- rollouts, promotes and aborts of a protected label ------------------------------------------


def instructions_diff(body) -> dict:
    """The secretary's instructions in a request's diff: {"old", "new"}."""
    (change,) = body["changes"]
    return change["fields"]["instructions"]


@pytest.fixture
def rolled_out(two_revisions):
    """production at the first revision, the second rolled out to 10 % and `vip` (set before
    approvals are on)."""
    first, second = two_revisions
    rollout = {"revision": second, "percent": 10, "users": ["vip"]}
    change_label("production", LabelChange("rollout", first, rollout), author="setup")
    return first, second


def test_a_rollout_of_a_protected_label_becomes_a_request_and_the_approval_sets_it(
    two_revisions, approvals, mover
):
    first, second = two_revisions
    before = label_state("production")
    rollout = {"revision": "live", "percent": 12.5, "users": ["vip"]}

    response = mover.put(
        "/api/v1/labels/production/", {"rollout": rollout, "message": "canary"}, format="json"
    )

    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "pending"
    # `live` is kept as the revision it was when asked: the one the approvers review.
    assert body["change"] == {
        "action": "rollout",
        "revision": None,
        "rollout": {"revision": second, "percent": 12.5, "users": ["vip"]},
    }
    assert instructions_diff(body) == {"old": "Help the user.", "new": "Be brief."}
    assert label_state("production") == before

    approved = approve(staff_client(*APPROVER), body["id"])
    assert approved.status_code == 200, approved.json()
    label = Label.objects.get(name="production")
    assert (label.revision, label.candidate_revision, str(label.rollout_percent)) == (
        first,
        second,
        "12.50",
    )
    assert label.rollout_users == ["vip"]
    assert LabelMove.objects.filter(label="production").latest("id").action == "rollout"


def test_a_promote_of_a_protected_label_becomes_a_request_with_the_diff_base_to_candidate(
    rolled_out, approvals, mover
):
    first, second = rolled_out
    before = label_state("production")

    response = mover.post("/api/v1/labels/production/promote/", {"message": "all in"}, "json")

    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["status"], body["change"]["action"]) == ("pending", "promote")
    assert instructions_diff(body) == {"old": "Help the user.", "new": "Be brief."}
    assert label_state("production") == before

    assert approve(staff_client(*APPROVER), body["id"]).status_code == 200
    label = Label.objects.get(name="production")
    assert (label.revision, label.candidate_revision) == (second, None)
    latest = LabelMove.objects.filter(label="production").latest("id")
    assert (latest.action, latest.from_revision, latest.to_revision) == ("promote", first, second)


def test_an_abort_of_a_protected_label_becomes_a_request_with_the_diff_candidate_to_base(
    rolled_out, approvals, mover
):
    first, _ = rolled_out
    before = label_state("production")

    response = mover.post("/api/v1/labels/production/abort/", {}, "json")

    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["status"], body["change"]["action"]) == ("pending", "abort")
    # Who gets something else: the candidate's users, back to the base.
    assert instructions_diff(body) == {"old": "Be brief.", "new": "Help the user."}
    assert label_state("production") == before

    assert approve(staff_client(*APPROVER), body["id"]).status_code == 200
    label = Label.objects.get(name="production")
    assert (label.revision, label.candidate_revision) == (first, None)
    assert LabelMove.objects.filter(label="production").latest("id").action == "abort"


def test_a_change_the_label_refuses_is_refused_when_asked_and_makes_no_request(
    two_revisions, approvals, mover
):
    _, second = two_revisions
    before = label_state("production")
    bad = mover.put(
        "/api/v1/labels/production/",
        {"rollout": {"revision": second, "percent": 101}},
        format="json",
    )
    assert bad.status_code == 400
    assert "rollout.percent" in bad.json()
    no_rollout = mover.post("/api/v1/labels/production/promote/", {}, "json")
    assert no_rollout.status_code == 409
    assert "no rollout" in no_rollout.json()["detail"]
    assert not LabelRequest.objects.exists()
    assert label_state("production") == before


def test_a_promote_request_goes_stale_when_the_rollout_is_aborted_meanwhile(
    rolled_out, approvals, mover
):
    request_id = mover.post("/api/v1/labels/production/promote/", {}, "json").json()["id"]
    change_label("production", LabelChange("abort"), author="someone")  # not through approvals
    before = label_state("production")

    response = approve(staff_client(*APPROVER), request_id)

    assert response.status_code == 409
    assert LabelRequest.objects.get(id=request_id).status == "stale"
    assert label_state("production") == before


def test_the_admin_promote_and_abort_of_a_protected_label_make_requests(rolled_out, approvals):
    client = session(staff_user(*MOVER, "config_backend.view_label"))
    before = label_state("production")
    for step in ("promote", "abort"):
        response = client.post(
            f"/admin/config_backend/label/production/{step}/",
            {"confirm": "yes", "change_note": step},
            follow=True,
        )
        assert response.status_code == 200
        assert "change request" in response.content.decode()
    assert list(LabelRequest.objects.order_by("id").values_list("change__action", "message")) == [
        ("promote", "promote"),
        ("abort", "abort"),
    ]
    assert label_state("production") == before


def test_the_admin_rollout_of_a_protected_label_makes_a_request(two_revisions, approvals):
    _, second = two_revisions
    client = session(staff_user(*MOVER, "config_backend.view_label"))
    before = label_state("production")
    response = client.post(
        "/admin/config_backend/label/production/rollout/",
        {"candidate": str(second), "percent": "12.5", "users": "vip", "confirm": "yes"},
        follow=True,
    )
    assert response.status_code == 200
    assert "change request" in response.content.decode()
    assert LabelRequest.objects.get().change["rollout"] == {
        "revision": second,
        "percent": 12.5,
        "users": ["vip"],
    }
    assert label_state("production") == before


def test_config_label_rollout_promote_and_abort_of_a_protected_label_make_requests(
    rolled_out, approvals
):
    first, second = rolled_out
    before = label_state("production")
    for arguments in (
        [str(first), "--rollout", str(second), "--percent", "50"],
        ["--promote"],
        ["--abort"],
    ):
        out = StringIO()
        call_command("config_label", "production", *arguments, stdout=out)
        assert "change request" in out.getvalue()
    assert list(LabelRequest.objects.order_by("id").values_list("change__action", flat=True)) == [
        "rollout",
        "promote",
        "abort",
    ]
    assert label_state("production") == before


# --- the admin's Label requests page ------------------------------------------------------------


def test_the_requests_page_shows_the_buttons_only_to_those_allowed(two_revisions, approvals):
    _, second = two_revisions
    requester = staff_user(*MOVER, *APPROVER)
    label_request = make_label_request("production", second, requester=requester)
    url = "/admin/config_backend/labelrequest/"

    as_approver = session(approver()).get(url).content.decode()
    assert 'name="approve"' in as_approver
    assert "Be brief." in as_approver  # the diff
    as_requester = session(requester).get(url).content.decode()
    assert 'name="approve"' not in as_requester
    assert 'name="cancel"' in as_requester
    as_viewer = session(staff_user("config_backend.view_labelrequest")).get(url)
    assert 'name="approve"' not in as_viewer.content.decode()

    forged = session(requester).post(f"{url}{label_request.id}/approve/")
    assert forged.status_code == 403
    assert LabelRequest.objects.get().status == "pending"


def test_an_approver_approves_on_the_requests_page_and_the_label_moves(two_revisions, approvals):
    _, second = two_revisions
    label_request = make_label_request("production", second)
    client = session(approver())
    response = client.post(
        f"/admin/config_backend/labelrequest/{label_request.id}/approve/", follow=True
    )
    assert "changed as requested" in response.content.decode()
    assert production() == second


def test_the_label_page_shows_the_requests_waiting_for_it(two_revisions, approvals):
    _, second = two_revisions
    label_request = make_label_request("production", second)
    page = session(staff_user("config_backend.view_label")).get(
        "/admin/config_backend/label/production/change/"
    )
    assert f"Request {label_request.id}: move, by {label_request.requester}" in (
        page.content.decode()
    )


# --- webhooks -----------------------------------------------------------------------------------


def test_a_request_and_each_change_of_it_go_to_the_outbox_as_label_request_events(
    two_revisions, approvals, settings
):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    approvals.LABEL_APPROVALS = 2
    _, second = two_revisions
    make_webhook("http://127.0.0.1:9/hook", events=["label_request"])
    request_id = make_label_request("production", second).id
    approve_request(request_id, user=approver())
    approve_request(request_id, user=approver())

    sent = Delivery.objects.filter(event="label_request").order_by("id")
    assert [(d.data["id"], d.data["status"], d.data["approvals"]) for d in sent] == [
        (request_id, "pending", 0),
        (request_id, "pending", 1),
        (request_id, "approved", 2),
    ]


def test_a_receiver_gets_the_label_request_event_signed_with_the_request_as_data(
    two_revisions, approvals, settings
):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    _, second = two_revisions
    with Receiver() as receiver:
        webhook = make_webhook(receiver.url, events=["label_request"])
        label_request = make_label_request("production", second)
        Worker(poll_seconds=0.05).run(until_idle=True)
    [sent] = receiver.received
    payload = sent.verified(webhook.secret)
    assert payload["type"] == "label_request"
    assert payload["data"] == request_json(label_request)
    assert payload["data"]["status"] == "pending"


# --- races (real concurrency on PostgreSQL) -----------------------------------------------------


def in_turn(**functions):
    """One function for concurrently(): each thread that calls it runs the next of `functions`
    and returns (its name, its result or exception), whichever thread it is."""
    calls = iter(functions.items())
    lock = threading.Lock()

    def run():
        with lock:
            name, function = next(calls)
        try:
            return name, function()
        except Exception as exc:  # noqa: BLE001  (asserted by the test)
            return name, exc

    return run


ROUNDS = 4


def test_two_approvals_of_two_requests_on_one_label_apply_exactly_one(two_revisions, approvals):
    first, second = two_revisions
    for _ in range(ROUNDS):
        label_move(name="production", revision=first, author="reset")
        one = make_label_request("production", second)
        other = make_label_request("production", second)
        alice, bob = approver(), approver()
        moves = LabelMove.objects.count()

        results = dict(
            concurrently(
                2,
                in_turn(
                    one=partial(approve_request, one.id, user=alice),
                    other=partial(approve_request, other.id, user=bob),
                ),
            )
        )

        stale = [result for result in results.values() if isinstance(result, RequestStale)]
        applied = [result for result in results.values() if isinstance(result, LabelRequest)]
        assert (len(applied), len(stale)) == (1, 1), results
        statuses = LabelRequest.objects.filter(pk__in=[one.id, other.id])
        assert sorted(statuses.values_list("status", flat=True)) == ["approved", "stale"]
        assert LabelMove.objects.count() == moves + 1
        assert production() == second


def test_an_approval_racing_a_direct_change_either_applies_first_or_goes_stale(
    two_revisions, approvals
):
    first, second = two_revisions
    outcomes = set()
    for _ in range(ROUNDS):
        label_move(name="production", revision=first, author="reset")
        label_request = make_label_request("production", second)
        alice = approver()
        last_move = LabelMove.objects.order_by("-id").first().id

        results = dict(
            concurrently(
                2,
                in_turn(
                    approval=partial(approve_request, label_request.id, user=alice),
                    direct=partial(
                        label_move,
                        name="production",
                        revision=first,
                        message="direct",
                        author="ops",
                    ),
                ),
            )
        )

        status = LabelRequest.objects.get(pk=label_request.pk).status
        outcomes.add(status)
        made = list(
            LabelMove.objects.filter(id__gt=last_move)
            .order_by("id")
            .values_list("to_revision", "author")
        )
        if status == "approved":
            # The request's move, then the direct one on top of it: both whole, in that order.
            assert made == [(second, label_request.requester), (first, "ops")], results
        else:
            assert status == "stale", results
            assert isinstance(results["approval"], RequestStale)
            assert made == [(first, "ops")]
        assert production() == first
    assert outcomes <= {"approved", "stale"}


def test_an_approval_racing_expiry_ends_approved_or_expired_never_both(two_revisions, approvals):
    first, second = two_revisions
    for _ in range(ROUNDS):
        label_move(name="production", revision=first, author="reset")
        label_request = make_label_request("production", second)
        alice = approver()
        moves = LabelMove.objects.count()
        # A sweep as an instance whose clock is past the request's expiry would run it.
        later = label_request.expires_at + timedelta(seconds=1)

        results = dict(
            concurrently(
                2,
                in_turn(
                    approval=partial(approve_request, label_request.id, user=alice),
                    expiry=partial(expire_due_requests, now=later),
                ),
            )
        )

        status = LabelRequest.objects.get(pk=label_request.pk).status
        if status == "approved":
            assert isinstance(results["approval"], LabelRequest)
            assert results["expiry"] == 0  # the sweep found nothing to expire
            assert LabelMove.objects.count() == moves + 1
            assert production() == second
        else:
            assert status == "expired"
            assert isinstance(results["approval"], RequestClosed), results
            assert results["expiry"] == 1
            assert LabelMove.objects.count() == moves
            assert production() == first
