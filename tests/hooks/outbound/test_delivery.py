"""The delivery engine end to end against a real local HTTP receiver (task
functions called directly; tests/hooks/outbound/test_worker.py runs a real
qcluster)."""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import pytest
from django.db import transaction
from django_q.models import Schedule
from werkzeug import Response

from customers.services import customer_delete, customer_update
from hooks.outbound.engine import claim, outbox, run
from hooks.outbound.models import CrmSyncAction, Delivery, RemoteId
from synclog.models import DeliveryAttempt
from tests import factories

from .conftest import body_of, deliveries, make_sync, queue_purge, queued, run_all

pytestmark = [pytest.mark.engine, pytest.mark.django_db]


def test_create_update_delete_reach_the_crm_in_order_with_the_remote_id(brand, httpserver, receiver_url, clock):
    httpserver.expect_ordered_request("/people", method="POST").respond_with_json({"id": "R-77"}, status=201)
    httpserver.expect_ordered_request("/people/R-77", method="PUT").respond_with_data("", status=204)
    httpserver.expect_ordered_request("/people/R-77", method="DELETE").respond_with_data("", status=200)
    sync = make_sync(brand, receiver_url)

    customer = factories.customer(
        brand, first_name="Ann", last_name="Lee", addresses=[{"kind": "email", "value": "ann@example.com"}]
    )
    customer_update(customer=customer, first_name="Anna", addresses=[{"kind": "telephone", "value": "0612345678"}])
    customer_ref = customer.customer_id
    customer_delete(customer=customer)
    # All three were written in the customers' transactions (outbox) before any was sent.
    assert [d.event_type for d in deliveries()] == ["customer.created", "customer.updated", "customer.deleted"]

    assert run_all() == 3
    httpserver.check_assertions()
    create, update, delete = (request for request, _response in httpserver.log)
    assert body_of(create) == {
        "first_name": "Ann",
        "last_name": "Lee",
        "name": "Ann Lee",
        "email": "ann@example.com",
        "created_at": Delivery.objects.get(event_type="customer.created").context["person"]["created_at"],
    }
    assert body_of(update) == {"name": "Anna Lee", "phone": "+31612345678", "event": "customer.updated"}
    assert delete.args["customer"] == customer_ref
    assert [d.state for d in deliveries()] == ["delivered"] * 3
    assert DeliveryAttempt.objects.filter(succeeded=True).count() == 3
    assert DeliveryAttempt.objects.get(delivery__event_type="customer.created").note == "Remote id R-77 stored."
    assert not RemoteId.objects.filter(sync=sync).exists()  # the delete removed the mapping


def test_update_waits_for_its_create(brand, httpserver, receiver_url, clock):
    answers = iter([500, 201])
    httpserver.expect_request("/people", method="POST").respond_with_handler(
        lambda request: Response(json.dumps({"id": 9}), status=next(answers), content_type="application/json")
    )
    httpserver.expect_request("/people/9", method="PUT").respond_with_data("ok")
    make_sync(brand, receiver_url)
    customer = factories.customer(brand)
    customer_update(customer=customer, first_name="Changed")

    run_all()
    create, update = deliveries()
    assert (create.state, create.attempts) == ("pending", 1)
    assert (update.state, update.attempts) == ("pending", 0)  # blocked behind the create
    assert [r.path for r, _ in httpserver.log] == ["/people"]

    clock.advance(minutes=30)
    run_all()
    assert [r.path for r, _ in httpserver.log] == ["/people", "/people", "/people/9"]
    assert [d.state for d in deliveries()] == ["delivered", "delivered"]


def test_delete_after_a_failed_create_is_obsolete(brand, httpserver, receiver_url, clock, settings):
    settings.HUB_RETRY_WINDOW_SECONDS = 3600
    httpserver.expect_request("/people", method="POST").respond_with_data("down", status=500)
    make_sync(brand, receiver_url)
    customer = factories.customer(brand)
    customer_delete(customer=customer)
    for _ in range(4):
        run_all()
        clock.advance(minutes=30)
    create, delete = deliveries()
    assert (create.state, create.attempts) == ("failed", 3)
    assert delete.state == "obsolete"
    assert "the create for this customer failed" in delete.last_error
    assert all(request.method == "POST" for request, _ in httpserver.log)
    assert not DeliveryAttempt.objects.filter(delivery=delete).exists()


def test_500_twice_then_200_gives_three_attempts_with_one_message_id(brand, httpserver, receiver_url, clock):
    answers = iter([500, 500, 200])
    httpserver.expect_request("/people").respond_with_handler(
        lambda request: Response('{"id": "x1"}', status=next(answers))
    )
    make_sync(brand, receiver_url)
    factories.customer(brand)
    run_all()
    clock.advance(minutes=29)
    assert run_all() == 0  # not due before the 30-minute interval
    clock.advance(minutes=1)
    run_all()
    clock.advance(minutes=30)
    run_all()
    (delivery,) = deliveries()
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("delivered", 3, 200)
    statuses = list(
        DeliveryAttempt.objects.filter(delivery=delivery).order_by("number").values_list("response_status", "succeeded")
    )
    assert statuses == [(500, False), (500, False), (200, True)]
    keys = {request.headers["Idempotency-Key"] for request, _ in httpserver.log}
    assert keys == {delivery.message_id}
    assert {request.headers["webhook-id"] for request, _ in httpserver.log} == {delivery.message_id}


def test_full_default_schedule_every_30_minutes_for_24_hours_then_failed(brand, httpserver, receiver_url, clock):
    httpserver.expect_request("/people").respond_with_data("no", status=503)
    make_sync(brand, receiver_url)
    factories.customer(brand)
    for _ in range(60):
        run_all()
        clock.advance(minutes=30)
    (delivery,) = deliveries()
    assert delivery.state == "failed"
    assert delivery.attempts == 49  # t = 0, 30 min, ..., 24 h
    assert len(httpserver.log) == 49
    times = list(
        DeliveryAttempt.objects.filter(delivery=delivery).order_by("number").values_list("started_at", flat=True)
    )
    assert len(times) == 49


def test_late_attempts_keep_to_the_schedule_grid_and_the_last_is_due_at_the_deadline(
    brand, httpserver, receiver_url, clock
):
    """A worker that comes late never shifts the schedule: attempts stay due at
    0, 30, 60, 90 ... minutes after the change, the last one at 24 h exactly."""
    httpserver.expect_request("/people").respond_with_data("no", status=500)
    make_sync(brand, receiver_url)
    factories.customer(brand)
    start = clock.current
    run_all()
    (delivery,) = deliveries()
    assert delivery.next_attempt_at == start + timedelta(minutes=30)
    clock.advance(minutes=37)  # the worker is 7 minutes late
    run_all()
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.next_attempt_at) == (2, start + timedelta(minutes=60))
    clock.advance(minutes=37)  # t = 74 min
    run_all()
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.next_attempt_at) == (3, start + timedelta(minutes=90))
    clock.current = start + timedelta(hours=23, minutes=59)
    run_all()
    delivery.refresh_from_db()
    assert delivery.next_attempt_at == start + timedelta(hours=24) == delivery.deadline
    clock.current = delivery.deadline
    run_all()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("failed", 5)


@pytest.fixture
def silent_port():
    """A TCP port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


def test_receiver_that_never_answers_ends_failed_after_the_schedule(brand, silent_port, clock, settings):
    settings.HUB_RETRY_WINDOW_SECONDS = 3600  # three attempts: 0, 30, 60 min (the default is tested above)
    sync = make_sync(brand, f"http://127.0.0.1:{silent_port}")
    CrmSyncAction.objects.filter(sync=sync).update(timeout_seconds=1)
    factories.customer(brand)
    for _ in range(4):
        run_all()
        clock.advance(minutes=30)
    (delivery,) = deliveries()
    assert (delivery.state, delivery.attempts) == ("failed", 3)
    errors = list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("error", flat=True))
    assert errors == ["No answer within 1 s"] * 3
    assert delivery.last_error == "No answer within 1 s"


def test_refused_connection_is_retried(brand, clock):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    make_sync(brand, f"http://127.0.0.1:{port}")
    factories.customer(brand)
    run_all()
    (delivery,) = deliveries()
    assert delivery.state == "pending"
    assert delivery.last_error.startswith("Connection failed")
    assert delivery.next_attempt_at == clock.current + timedelta(minutes=30)


@pytest.mark.parametrize(("header", "expected"), [("120", 120), ("999999", 6 * 3600), ("0", 1)])
def test_retry_after_is_honoured_within_bounds(brand, httpserver, receiver_url, clock, header, expected):
    httpserver.expect_request("/people").respond_with_data("slow down", status=429, headers={"Retry-After": header})
    make_sync(brand, receiver_url)
    factories.customer(brand)
    run_all()
    (delivery,) = deliveries()
    assert delivery.state == "pending"
    assert delivery.next_attempt_at == clock.current + timedelta(seconds=expected)


def test_worker_killed_mid_delivery_leads_to_exactly_one_more_attempt(brand, httpserver, receiver_url, clock):
    """Simulated in-process (the real kill -9 is in test_worker.py): the request
    went out, the worker died before recording it, the lease expires, the sweeper
    re-enqueues, and the next run sends it once more with the same message id."""
    httpserver.expect_request("/people").respond_with_json({"id": 5})
    make_sync(brand, receiver_url)
    factories.customer(brand)
    (delivery,) = deliveries()
    claimed = claim.delivery_claim(delivery_id=delivery.pk)
    from hooks.outbound import crm
    from hooks.outbound.rendering import render_request
    from hooks.outbound.transport import send

    config = crm.resolve(delivery.source_id)
    send(render_request(config, {**delivery.context, "remote_id": ""}), message_id=claimed.message_id)
    # ... killed here: nothing recorded, the row stays in flight under its lease.
    assert run_all() == 0
    assert run.deliveries_sweep() == 0
    clock.advance(seconds=61)
    queue_purge()
    assert run.deliveries_sweep() == 1
    assert queued() == 1
    assert run_all() == 1
    assert run_all() == 0
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 2)
    assert [r.headers["webhook-id"] for r, _ in httpserver.log] == [delivery.message_id] * 2
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 1


def test_outbox_rolls_back_with_the_change_and_enqueues_one_task_per_commit(
    brand, receiver_url, django_capture_on_commit_callbacks
):
    make_sync(brand, receiver_url, name="One")
    make_sync(brand, receiver_url, name="Two")
    with pytest.raises(RuntimeError), transaction.atomic():
        factories.customer(brand)
        raise RuntimeError("the change fails")
    assert not Delivery.objects.exists()
    queue_purge()
    with django_capture_on_commit_callbacks(execute=True):
        factories.customer(brand)
    assert Delivery.objects.count() == 2
    assert queued() == 1  # both deliveries in one task


def test_disabled_syncs_and_actions_create_nothing_and_pending_ones_become_obsolete(brand, receiver_url, clock):
    sync = make_sync(brand, receiver_url)
    CrmSyncAction.objects.filter(sync=sync, action="update").update(enabled=False)
    customer = factories.customer(brand)
    customer_update(customer=customer, first_name="X")
    assert [d.event_type for d in deliveries()] == ["customer.created"]
    sync.enabled = False
    sync.save()
    factories.customer(brand)
    assert Delivery.objects.count() == 1
    run_all()
    (delivery,) = deliveries()
    assert delivery.state == "obsolete"
    assert "deleted or disabled" in delivery.last_error


def test_an_invalid_json_body_after_rendering_is_a_logged_delivery_error(brand, httpserver, receiver_url, clock):
    sync = make_sync(brand, receiver_url)
    # Saved around clean() (e.g. by an old import): the unquoted token breaks JSON.
    CrmSyncAction.objects.filter(sync=sync, action="create").update(body='{"name": {{ person.name }}}')
    factories.customer(brand)
    run_all()
    (delivery,) = deliveries()
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.error.startswith("Could not build the request: The data is not valid JSON after rendering")
    assert attempt.response_status is None and not attempt.succeeded
    assert delivery.state == "pending"
    assert len(httpserver.log) == 0


def test_the_sweeper_schedule_exists_once_after_migrate():
    from django.apps import apps

    from hooks.outbound.apps import SWEEP_SCHEDULE_NAME, ensure_sweep_schedule

    ensure_sweep_schedule(apps.get_app_config("outbound"))
    ensure_sweep_schedule(apps.get_app_config("outbound"))
    schedule = Schedule.objects.get(name=SWEEP_SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == ("hooks.outbound.tasks.sweep", "I", 1)


def test_sweeper_leaves_fresh_first_attempts_to_their_task_and_enqueues_due_retries(
    brand, receiver_url, clock, httpserver
):
    httpserver.expect_request("/people").respond_with_data("no", status=500)
    make_sync(brand, receiver_url)
    factories.customer(brand)
    queue_purge()
    assert run.deliveries_sweep() == 0  # its on-commit task will send it
    clock.advance(seconds=61)
    assert run.deliveries_sweep() == 1  # that task was lost
    run_all()
    clock.advance(minutes=30)
    queue_purge()
    assert run.deliveries_sweep() == 1
    assert queued() == 1


def test_retry_now_gives_a_failed_delivery_a_fresh_window(brand, httpserver, receiver_url, clock, settings):
    settings.HUB_RETRY_WINDOW_SECONDS = 60
    answers = iter([500, 500, 201])
    httpserver.expect_request("/people").respond_with_handler(lambda r: Response("{}", status=next(answers)))
    make_sync(brand, receiver_url)
    factories.customer(brand)
    run_all()
    (delivery,) = deliveries()
    assert delivery.state == "failed"
    with transaction.atomic():
        assert outbox.deliveries_retry_now(delivery_ids=[delivery.pk]) == 1
    run_all()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("failed", 2)
    outbox.deliveries_retry_now(delivery_ids=[delivery.pk])
    run_all()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 3)


def test_update_without_a_create_uses_customer_id_or_is_obsolete_when_it_needs_a_remote_id(
    brand, httpserver, receiver_url, clock
):
    httpserver.expect_request("/by-customer", method="PUT").respond_with_data("ok")
    sync = make_sync(brand, receiver_url)
    CrmSyncAction.objects.filter(sync=sync, action="create").update(enabled=False)
    customer = factories.customer(brand)
    customer_update(customer=customer, first_name="Needs remote id")
    run_all()
    (needs_remote,) = deliveries()
    assert needs_remote.state == "obsolete"
    assert needs_remote.last_error == "Not sent: no remote id is known for this customer (no create response gave one)."
    CrmSyncAction.objects.filter(sync=sync, action="update").update(
        url=receiver_url + "/by-customer?id={{ customer_id }}"
    )
    customer_update(customer=customer, first_name="By customer id")
    run_all()
    assert Delivery.objects.order_by("pk").last().state == "delivered"
    ((request, _),) = httpserver.log
    assert request.args["id"] == customer.customer_id


def test_a_lease_shorter_than_one_request_never_spins(brand, httpserver, receiver_url, settings):
    """HUB_DELIVERY_LEASE_SECONDS below one request's timeout + margin (the system
    check refuses it; a worker started with --skip-checks must still not spin):
    every task sends at least one delivery, so the tasks stay bounded by the
    deliveries and everything goes out."""
    httpserver.expect_request("/people").respond_with_json({"id": 1})
    settings.HUB_DELIVERY_LEASE_SECONDS = 4  # shorter than the 2 s timeout + 5 s margin
    make_sync(brand, receiver_url)
    for _ in range(3):
        factories.customer(brand)
    queue_purge()
    tasks = 1
    for _ in range(20):  # run every task the engine asks for, as the workers would
        run.deliveries_run(budget_seconds=5)
        asked = queued()
        queue_purge()
        if not asked:
            break
        tasks += asked
    assert [d.state for d in deliveries()] == ["delivered"] * 3
    assert len(httpserver.log) == 3
    assert tasks <= 3
    assert not Delivery.objects.filter(lease_expires_at__isnull=False).exists()
