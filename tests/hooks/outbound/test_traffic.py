"""Traffic to a destination and recovery (hooks.outbound.engine.traffic, hooks.outbound.recovery), in
process against a real receiver on 127.0.0.1: which answers are retried, a
429 Retry-After pausing one destination for everybody, Recover since (the
command and the admin), Replay keeping the message id."""

from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from werkzeug import Response

from hooks.outbound import recovery, registry
from hooks.outbound.engine import claim, run, traffic
from hooks.outbound.models import CrmSyncAction, Delivery, DestinationThrottle, RecoveryJob
from synclog.models import DeliveryAttempt
from tests import factories

from .conftest import make_sync, run_all

pytestmark = pytest.mark.django_db


def create_action(sync) -> CrmSyncAction:
    return sync.actions.get(action="create")


# ------------------------------------------------------------------ which answers are retried


@pytest.mark.parametrize(
    ("status", "stop_on_4xx", "expected"),
    [
        (400, True, "failed"),
        (404, True, "failed"),
        (400, False, "pending"),
        (408, True, "pending"),
        (409, True, "pending"),
        (425, True, "pending"),
        (429, True, "pending"),
        (500, True, "pending"),
        (503, True, "pending"),
    ],
)
def test_a_4xx_fails_at_once_only_when_the_destination_says_so(
    brand, httpserver, receiver_url, status, stop_on_4xx, expected
):
    httpserver.expect_request("/people").respond_with_data("bad request", status=status)
    sync = make_sync(brand, receiver_url)
    CrmSyncAction.objects.filter(sync=sync).update(stop_on_4xx=stop_on_4xx)
    factories.customer(brand)
    run.deliveries_run()
    delivery = Delivery.objects.get()
    assert delivery.state == expected
    assert delivery.attempts == 1
    assert len(httpserver.log) == 1
    if expected == "failed":
        assert delivery.finished_at is not None
        assert delivery.last_error == f"Not retried (stop retrying on 4xx is on): HTTP {status}"
    else:
        assert delivery.next_attempt_at is not None


def test_a_dns_failure_is_retried(brand):
    sync = make_sync(brand, "http://crm.hookhub-test.invalid")  # .invalid never resolves (RFC 6761)
    CrmSyncAction.objects.filter(sync=sync).update(stop_on_4xx=True)
    factories.customer(brand)
    run.deliveries_run()
    delivery = Delivery.objects.get()
    assert delivery.state == "pending"
    assert delivery.next_attempt_at is not None
    assert "DNS lookup of crm.hookhub-test.invalid failed" in delivery.last_error
    assert DeliveryAttempt.objects.get().error.startswith("Connection failed: DNS lookup")


def test_the_verdict_is_one_function():
    class Outcome:
        def __init__(self, status, error=""):
            self.status, self.error = status, error

        @property
        def succeeded(self):
            return self.status is not None and 200 <= self.status < 400 and not self.error

    class Config:
        stop_on_4xx = True

    assert traffic.outcome_verdict(outcome=Outcome(201), config=Config()) == traffic.DELIVERED
    assert traffic.outcome_verdict(outcome=Outcome(None, "No answer within 2 s"), config=Config()) == traffic.RETRY
    assert traffic.outcome_verdict(outcome=Outcome(422), config=Config()) == traffic.PERMANENT
    assert traffic.outcome_verdict(outcome=Outcome(422), config=object()) == traffic.RETRY


# ------------------------------------------------------------------ Retry-After pauses the destination


def test_a_429_with_retry_after_pauses_that_destination_for_everybody_and_not_another(brand, httpserver):
    answers = {"first": True}
    arrivals: dict[str, list[float]] = {"slow": [], "other": []}

    def slow(request):
        arrivals["slow"].append(time.time())
        if answers.pop("first", False):
            return Response("slow down", status=429, headers={"Retry-After": "2"})
        return Response('{"id": "x"}', status=201, content_type="application/json")

    def other(request):
        arrivals["other"].append(time.time())
        return Response('{"id": "y"}', status=201, content_type="application/json")

    httpserver.expect_request("/slow/people").respond_with_handler(slow)
    httpserver.expect_request("/other/people").respond_with_handler(other)
    base = httpserver.url_for("").rstrip("/")
    make_sync(brand, f"{base}/slow", name="Slow CRM")
    make_sync(brand, f"{base}/other", name="Other CRM")
    for number in range(3):
        factories.customer(brand, first_name=f"P{number}")  # one create per sync and customer

    run.deliveries_run()
    # One request reached the slow CRM; its two other deliveries were not attempted.
    assert len(arrivals["slow"]) == 1
    assert len(arrivals["other"]) == 3
    paused_until = DestinationThrottle.objects.get().paused_until
    assert paused_until is not None
    slow_ones = Delivery.objects.filter(source_name__startswith="Slow").order_by("pk")
    assert [d.state for d in slow_ones] == ["pending"] * 3
    assert [d.attempts for d in slow_ones] == [1, 0, 0]
    assert all(d.next_attempt_at >= paused_until - timedelta(milliseconds=5) for d in slow_ones)

    # Another worker (a fresh run reads the shared row) sends nothing there before the pause ends.
    assert run.deliveries_run() == 0
    assert len(arrivals["slow"]) == 1

    deadline = time.monotonic() + 10
    while Delivery.objects.exclude(state="delivered").exists() and time.monotonic() < deadline:
        run.deliveries_run()
        time.sleep(0.1)
    assert not Delivery.objects.exclude(state="delivered").exists()
    waited = arrivals["slow"][1] - arrivals["slow"][0]
    assert 1.9 <= waited < 4, f"the next request came {waited:.2f} s after the 429"


def test_a_deferred_delivery_keeps_its_customer_s_order(brand, httpserver, receiver_url, clock):
    """Paused: the create waits, and the update of the same customer waits behind it."""
    sync = make_sync(brand, receiver_url)
    CrmSyncAction.objects.filter(sync=sync).update(rate_limit_per_second=1)
    customer = factories.customer(brand)
    from customers.services import customer_update

    customer_update(customer=customer, first_name="Later")
    DestinationThrottle.objects.create(
        source_kind="crm_action",
        source_id=create_action(sync).pk,
        next_allowed_at=clock(),
        paused_until=clock() + timedelta(seconds=30),
    )
    assert run.deliveries_run() == 0
    assert httpserver.log == []
    create, update = Delivery.objects.order_by("pk")
    assert (create.state, create.attempts) == ("pending", 0)
    assert update.state == "pending"


# ------------------------------------------------------------------ the rate limit (GCRA with a tolerance)


def limited_action(brand, receiver_url, rate) -> CrmSyncAction:
    sync = make_sync(brand, receiver_url)
    CrmSyncAction.objects.filter(sync=sync).update(rate_limit_per_second=rate)
    return CrmSyncAction.objects.get(sync=sync, action="create")


def test_a_limit_not_reached_never_makes_anyone_wait_and_costs_one_statement(
    brand, receiver_url, clock, django_assert_num_queries
):
    """10/s configured, two workers sending 8 a second in pairs 25 ms apart:
    every request goes at once (a pair is within the 25 ms tolerance), each
    after one UPDATE … RETURNING."""
    action = limited_action(brand, receiver_url, 10)
    key = ("crm_action", action.pk)
    gate = traffic.Gate()
    start = clock()
    traffic._reserve(key, 10.0, 1, gate)  # the destination's first request creates its row
    DestinationThrottle.objects.filter(source_id=action.pk).update(next_allowed_at=start)
    delivery = Delivery(source_kind="crm_action", source_id=action.pk)
    for offset_ms in (0, 25, 250, 275, 500, 525, 750, 775, 1000, 1025):
        clock.current = start + timedelta(milliseconds=offset_ms)
        began = time.monotonic()
        with django_assert_num_queries(1):
            assert traffic.admit(delivery=delivery, config=action, gate=gate) is None
        assert time.monotonic() - began < 0.5  # no sleep for a slot
    assert DestinationThrottle.objects.get(source_id=action.pk).next_allowed_at == start + timedelta(seconds=1.2)


def test_a_high_limit_takes_one_statement_for_a_batch_and_drops_slots_it_came_too_late_for(
    brand, receiver_url, clock, django_assert_num_queries
):
    """2 000/s: one reservation covers the batch's 10 deliveries to the
    destination (25 ms worth of slots at most); a slot used more than 25 ms
    late is dropped and the worker reserves again."""
    action = limited_action(brand, receiver_url, 2000)
    gate = traffic.Gate()
    batch = [Delivery(source_kind="crm_action", source_id=action.pk) for _ in range(60)]
    traffic._reserve(("crm_action", action.pk), 2000.0, 1, gate)  # creates the row
    with django_assert_num_queries(1):
        for index in range(10):
            assert traffic.admit(delivery=batch[index], config=action, gate=gate, rest=batch[index:10]) is None
    assert gate.slots[("crm_action", action.pk)] == []
    with django_assert_num_queries(2):  # 20 left in that batch, at most 50 slots (25 ms) per reservation
        for index in range(10, 20):
            assert traffic.admit(delivery=batch[index], config=action, gate=gate, rest=batch[index:60]) is None
        clock.advance(milliseconds=60)  # the 40 slots left (up to 30 ms ahead) are more than 25 ms late now
        assert traffic.admit(delivery=batch[20], config=action, gate=gate, rest=batch[20:60]) is None
    assert len(gate.slots[("crm_action", action.pk)]) == 39


def test_small_batches_of_one_task_share_a_reservation_while_the_limit_is_far(
    brand, receiver_url, clock, django_assert_num_queries
):
    """2 000/s, deliveries arriving one by one (a batch each, as a live worker
    claims them): one reservation of RESERVE_AHEAD slots covers the task's next
    8 batches; a new task starts without slots."""
    action = limited_action(brand, receiver_url, 2000)
    key = ("crm_action", action.pk)
    traffic._reserve(key, 2000.0, 1, traffic.Gate())  # creates the row
    delivery = Delivery(source_kind="crm_action", source_id=action.pk)
    assert traffic.RESERVE_AHEAD == 8

    def one_batch() -> None:
        assert traffic.admit(delivery=delivery, config=action, gate=traffic.gate(), rest=[delivery]) is None

    with registry.run_memo():
        with django_assert_num_queries(8 + 1):  # each batch's read of paused destinations, one reservation
            for _ in range(8):
                one_batch()
        with django_assert_num_queries(1 + 1):  # the 9th: the next reservation
            one_batch()
    with registry.run_memo(), django_assert_num_queries(1 + 1):  # a new task: nothing carried over
        one_batch()
    assert DestinationThrottle.objects.get(source_id=action.pk).next_allowed_at == clock() + timedelta(
        microseconds=500 * (1 + 8 * 3)
    )


def test_a_worker_that_waited_for_its_slot_reserves_only_what_its_batch_needs(brand, receiver_url, clock):
    """400/s with the destination's time 60 ms ahead (the limit is being
    reached): the first reservation starts 60 ms out, so the worker waits; its
    next reservation takes only the one slot its batch needs, not 8 ahead, so
    unused slots never eat into a limit that is reached."""
    action = limited_action(brand, receiver_url, 400)
    key = ("crm_action", action.pk)
    traffic._reserve(key, 400.0, 1, traffic.Gate())  # creates the row
    start = clock()
    DestinationThrottle.objects.filter(source_id=action.pk).update(next_allowed_at=start + timedelta(milliseconds=60))
    delivery = Delivery(source_kind="crm_action", source_id=action.pk)

    def next_allowed_at():
        return DestinationThrottle.objects.get(source_id=action.pk).next_allowed_at

    with registry.run_memo():
        gate = traffic.gate()
        assert traffic.admit(delivery=delivery, config=action, gate=gate, rest=[delivery]) is None
        assert next_allowed_at() == start + timedelta(milliseconds=60 + 8 * 2.5)  # not busy yet: 8 ahead
        assert key in gate.busy
        for _ in range(7):  # the slots already taken
            assert traffic.admit(delivery=delivery, config=action, gate=gate, rest=[delivery]) is None
        assert next_allowed_at() == start + timedelta(milliseconds=80)
        assert traffic.admit(delivery=delivery, config=action, gate=traffic.gate(), rest=[delivery]) is None
        assert next_allowed_at() == start + timedelta(milliseconds=82.5)  # busy: only the one it needs


def test_the_tolerance_bounds_a_burst_to_5_percent_of_a_second_above_the_limit(brand, receiver_url, clock):
    """100/s, every worker asking at the same instant: 3 requests go at once
    (the 25 ms tolerance), then one every 10 ms; a slot more than 1 s away is
    not taken (the delivery comes back then). With the 25 ms a slot may be used
    late, any n consecutive requests span at least (n - 1)/rate - 50 ms."""
    action = limited_action(brand, receiver_url, 100)
    key = ("crm_action", action.pk)
    gate = traffic.Gate()
    start = clock()
    send_at = []
    while True:
        when, taken = traffic._reserve(key, 100.0, 1, gate)
        if not taken:
            break
        early = (when - start).total_seconds() - traffic.TOLERANCE_SECONDS
        send_at.append(max(round(early, 6), 0.0))  # what admit waits for
        assert len(send_at) < 200
    assert send_at[:6] == [0.0, 0.0, 0.0, 0.005, 0.015, 0.025]
    assert sum(1 for at in send_at if at < 1.0) == 103  # rate x (1 s + 25 ms): the early half of the bound
    assert max(send_at) <= traffic.MAX_WAIT_SECONDS
    for i in range(len(send_at)):
        for j in range(i + 1, len(send_at)):
            assert send_at[j] - send_at[i] >= (j - i) / 100 - traffic.TOLERANCE_SECONDS - 1e-6
    assert traffic.TOLERANCE_SECONDS + traffic.LATE_SECONDS == 0.05  # the documented bound
    # The refused one was told when to come back, and nothing was taken for it.
    assert round((when - start).total_seconds(), 6) == round(send_at[-1] + 0.01, 6)
    before = DestinationThrottle.objects.get(source_id=action.pk).next_allowed_at
    assert traffic._reserve(key, 100.0, 1, gate)[1] is False
    assert DestinationThrottle.objects.get(source_id=action.pk).next_allowed_at == before


# ------------------------------------------------------------------ Recover since


@pytest.fixture
def recovery_world(brand, other_brand, httpserver, receiver_url):
    """Failed, delivered and pending deliveries of two syncs, a rule and another brand, before and after T."""
    from hooks.rules.models import EventRule

    crm = make_sync(brand, receiver_url, name="CRM")
    other_sync = make_sync(brand, receiver_url, name="Other CRM")
    rule = EventRule.objects.create(brand=brand, name="Notify", event_types=["call.logged"], url=f"{receiver_url}/n")
    foreign = make_sync(other_brand, receiver_url, name="CRM")
    since = timezone.now() - timedelta(hours=1)
    earlier = since - timedelta(minutes=5)
    made = {}

    def row(label, source, state, created_at, customer_id):
        delivery = factories.delivery(
            brand if source is not foreign else other_brand,
            source=source.actions.get(action="update") if hasattr(source, "actions") else source,
            state=state,
            customer_id=customer_id,
            order_key=f"crmsync:{customer_id}",
        )
        Delivery.objects.filter(pk=delivery.pk).update(created_at=created_at)
        made[label] = delivery.pk

    row("match_1", crm, "failed", since + timedelta(minutes=1), 1)
    row("match_2", crm, "failed", since + timedelta(minutes=2), 1)
    row("match_3", crm, "failed", since + timedelta(minutes=3), 2)
    row("earlier", crm, "failed", earlier, 3)
    row("delivered", crm, "delivered", since + timedelta(minutes=1), 4)
    row("pending", crm, "pending", since + timedelta(minutes=1), 5)
    row("other_sync", other_sync, "failed", since + timedelta(minutes=1), 6)
    row("rule", rule, "failed", since + timedelta(minutes=1), 7)
    row("other_brand", foreign, "failed", since + timedelta(minutes=1), 8)
    return {"since": since, "ids": made, "rule": rule, "crm": crm}


def snapshot():
    return {d.pk: (d.state, d.message_id, d.deadline, d.attempts) for d in Delivery.objects.all()}


def test_recover_since_re_queues_exactly_the_matching_failed_deliveries(recovery_world, monkeypatch):
    monkeypatch.setattr(recovery, "CHUNK", 2)  # several progress steps
    before = snapshot()
    out = StringIO()
    call_command(
        "deliveries_recover",
        "acme",
        "--since",
        recovery_world["since"].isoformat(),
        "--sync",
        "CRM",
        "--foreground",
        stdout=out,
    )
    after = snapshot()
    ids = recovery_world["ids"]
    matching = {ids["match_1"], ids["match_2"], ids["match_3"]}
    assert {pk for pk in after if after[pk] != before[pk]} == matching
    for pk in matching:
        state, message_id, deadline, attempts = after[pk]
        assert state == "pending"
        assert message_id == before[pk][1]  # the same webhook-id / Idempotency-Key
        assert deadline > timezone.now() + timedelta(hours=23)  # a fresh retry window
        assert attempts == before[pk][3]  # the history stays
    job = RecoveryJob.objects.get()
    assert (job.total, job.done, job.requeued) == (3, 3, 3)
    assert job.delivery_ids == sorted(matching)
    assert job.finished_at is not None
    text = out.getvalue()
    assert f"Recovery job {job.pk}: 3 deliveries" in text
    assert f"/admin/outbound/recoveryjob/{job.pk}/change/" in text
    assert "] 2/3" in text and "] 3/3" in text  # the progress bar
    assert "Re-queued 3 of 3 deliveries." in text


def test_recover_since_for_a_rule_and_for_the_whole_brand(recovery_world):
    ids = recovery_world["ids"]
    since = recovery_world["since"].isoformat()
    call_command("deliveries_recover", "acme", "--since", since, "--rule", "Notify", "--foreground", stdout=StringIO())
    assert Delivery.objects.get(pk=ids["rule"]).state == "pending"
    assert Delivery.objects.get(pk=ids["other_sync"]).state == "failed"
    call_command("deliveries_recover", "acme", "--since", since, "--foreground", stdout=StringIO())
    states = dict(Delivery.objects.values_list("pk", "state"))
    assert states[ids["other_sync"]] == "pending"
    assert states[ids["earlier"]] == "failed"
    assert states[ids["other_brand"]] == "failed"
    assert states[ids["delivered"]] == "delivered"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody", "--since", "2026-01-01T00:00:00Z"], "No brand with slug 'nobody'"),
        (["acme", "--since", "yesterday"], "--since must be an ISO 8601 time"),
        (["acme", "--since", "2026-01-01T00:00:00Z", "--sync", "Nope"], "No CRM sync named 'Nope'"),
        (["acme", "--since", "2026-01-01T00:00:00Z", "--rule", "Nope"], "No dispatcher rule named 'Nope'"),
    ],
)
def test_recover_refuses_bad_input_and_changes_nothing(recovery_world, args, message):
    before = snapshot()
    with pytest.raises(CommandError, match=message):
        call_command("deliveries_recover", *args, "--foreground", stdout=StringIO())
    assert snapshot() == before
    assert not RecoveryJob.objects.exists()


def test_recovered_deliveries_of_one_customer_go_out_oldest_first(recovery_world):
    ids = recovery_world["ids"]
    call_command(
        "deliveries_recover", "acme", "--since", recovery_world["since"].isoformat(), "--sync", "CRM",
        "--foreground", stdout=StringIO(),
    )  # fmt: skip
    claimed = {d.pk for d in claim.deliveries_claim()}
    # Customer 1's older delivery is taken, its newer one waits behind it; customer 2's goes too.
    assert ids["match_1"] in claimed and ids["match_3"] in claimed
    assert ids["match_2"] not in claimed


def test_the_admin_recover_since_action_starts_a_job_with_progress(admin_client, recovery_world):
    changelist = reverse("admin:outbound_crmsync_changelist")
    crm = recovery_world["crm"]
    page = admin_client.post(changelist, {"action": "recover_since", "_selected_action": [crm.pk]})
    assert page.status_code == 200
    assert b"Recover failed deliveries since" in page.content
    since = timezone.localtime(recovery_world["since"]).strftime("%Y-%m-%d %H:%M:%S")
    done = admin_client.post(
        changelist, {"action": "recover_since", "_selected_action": [crm.pk], "apply": "1", "since": since}, follow=True
    )
    job = RecoveryJob.objects.get()
    assert job.total == 3
    assert f"/admin/outbound/recoveryjob/{job.pk}/change/".encode() in done.content
    recovery.recovery_job_run(job_id=job.pk)  # what the django-q2 task does
    ids = recovery_world["ids"]
    assert set(Delivery.objects.filter(state="pending").values_list("pk", flat=True)) == {
        ids["match_1"], ids["match_2"], ids["match_3"], ids["pending"],
    }  # fmt: skip
    page = admin_client.get(reverse("admin:outbound_recoveryjob_change", args=[job.pk]))
    assert b'<progress max="100" value="100"></progress> 3 / 3 (finished)' in page.content


def test_another_brand_s_admin_cannot_recover_this_brand_s_deliveries(client, recovery_world, other_brand):
    from hub.models import Role

    user = factories.member(other_brand, role=Role.ADMIN)
    client.force_login(user)
    crm = recovery_world["crm"]
    client.post(
        reverse("admin:outbound_crmsync_changelist"),
        {"action": "recover_since", "_selected_action": [crm.pk], "apply": "1", "since": "2000-01-01 00:00:00"},
    )
    assert not RecoveryJob.objects.exists()


# ------------------------------------------------------------------ Replay


def test_replay_of_a_delivered_delivery_keeps_its_message_id_and_is_marked(
    admin_client, brand, httpserver, receiver_url
):
    received: list[str] = []
    httpserver.expect_request("/people").respond_with_handler(
        lambda request: (received.append(request.headers["webhook-id"]), Response('{"id": "r"}', status=201))[1]
    )
    make_sync(brand, receiver_url)
    factories.customer(brand)
    run_all()
    delivery = Delivery.objects.get()
    assert delivery.state == "delivered"

    admin_client.post(
        reverse("admin:outbound_delivery_changelist"), {"action": "replay", "_selected_action": [delivery.pk]}
    )
    job = RecoveryJob.objects.get()
    assert job.replay and job.total == 1
    recovery.recovery_job_run(job_id=job.pk)
    run_all()
    delivery.refresh_from_db()
    assert delivery.state == "delivered"
    assert delivery.replayed_at is not None
    assert received == [delivery.message_id, delivery.message_id]
    notes = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number").values_list("note", flat=True))
    assert notes == ["Remote id r stored.", "Replay · Remote id r stored."]
    logs = admin_client.get(reverse("admin:synclog_deliveryattempt_changelist"))
    assert b"Replay" in logs.content


def test_recover_leaves_a_delivered_delivery_alone(brand):
    delivery = factories.delivery(brand, state="delivered")
    assert recovery.deliveries_requeue(ids=[delivery.pk], replay=False) == 0
    delivery.refresh_from_db()
    assert delivery.state == "delivered"
