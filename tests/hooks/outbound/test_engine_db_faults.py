"""The engine against the database's faults, in-process on PostgreSQL: a wall
clock that jumps (the engine keeps the database's time) and a connection the
database ends in the middle of a batch (the batch is recorded and handed on,
not left claimed until its lease runs out).

The host's wall clock is jumped the way bench/faultclock does it for a whole
cluster: ``django.utils.timezone.now`` returns the real time plus an offset.
A connection is ended with ``pg_terminate_backend`` from a separate
administrative connection, as `make faults` does. PostgreSQL only: SQLite is
the embedded mode, one host and one clock, and has no server to end a
connection.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from werkzeug import Response

from bench import faultkit
from hooks.outbound import tasks
from hooks.outbound.engine import attempt, claim, clock, run
from hooks.outbound.models import Delivery, DrainSignal
from synclog.models import DeliveryAttempt
from tests import factories

from .conftest import deliveries, make_sync, queue_purge, queued

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: the embedded mode (SQLite) has one host and one clock")
    clock.forget()
    queue_purge()
    yield
    queue_purge()
    clock.forget()


def database_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


@pytest.fixture
def wall_clock(monkeypatch):
    """Jump this process's wall clock (django.utils.timezone.now), as bench/faultclock does."""
    real_now = timezone.now

    def jump(seconds: float) -> None:
        monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(seconds=seconds))

    return jump


def test_the_engine_keeps_the_database_s_time_when_the_host_s_clock_jumps(wall_clock):
    before = clock.now()
    wall_clock(600)
    assert abs((timezone.now() - database_now()).total_seconds() - 600) < 1  # the jump is real for Django
    assert abs((clock.now() - database_now()).total_seconds()) < 0.5
    assert clock.now() >= before
    wall_clock(-600)
    assert abs((clock.now() - database_now()).total_seconds()) < 0.5


def test_a_host_whose_clock_is_ahead_leaves_other_workers_leases_alone(brand, wall_clock):
    delivery = factories.delivery(brand, state="pending", next_attempt_at=database_now())
    (claimed,) = claim.deliveries_claim()  # another worker's claim: a 60 s lease
    assert claimed.pk == delivery.pk
    wall_clock(600)  # this host's clock jumps 10 minutes ahead
    assert claim.anything_due() is False
    assert claim.deliveries_claim() == []
    assert Delivery.objects.get(pk=delivery.pk).attempts == claimed.attempts  # not taken over, not sent twice


def test_a_delivery_written_on_a_host_whose_clock_is_behind_is_due_at_once(brand, wall_clock):
    """A web process whose clock is 10 minutes late writes the outbox row: it is due now, not in 10 minutes."""
    wall_clock(-600)
    make_sync(brand, "http://127.0.0.1:9")
    factories.customer(brand)  # the create action's outbox row, written in the request's transaction
    (delivery,) = deliveries()
    assert abs((delivery.next_attempt_at - database_now()).total_seconds()) < 2
    assert abs((delivery.deadline - delivery.next_attempt_at).total_seconds() - 24 * 3600) < 1
    wall_clock(0)
    assert claim.due_ids() == [delivery.pk]


def test_the_clock_is_read_again_after_the_resync_interval(settings, monkeypatch):
    settings.HUB_CLOCK_RESYNC_SECONDS = 0
    reads = []
    real_sync = clock.sync
    monkeypatch.setattr(clock, "sync", lambda **kwargs: reads.append(1) or real_sync(**kwargs))
    clock.now()
    clock.now()
    assert len(reads) == 2
    settings.HUB_CLOCK_RESYNC_SECONDS = 60
    clock.now()
    clock.now()
    assert len(reads) == 2


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def terminate_all() -> int:
    """pg_terminate_backend for every connection to the test database (as `make faults` does)."""
    s = connection.settings_dict
    url = f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    return faultkit.pg_terminate(url)


def test_a_connection_ended_mid_batch_records_what_was_sent_and_hands_the_rest_on(brand, httpserver, receiver_url):
    """The database ends the worker's connection while its second request is answered.
    Without the rescue, the task failed at its next statement with six deliveries
    claimed (in flight until the lease ran out, 60 s); now the two sent ones are
    recorded and the rest are pending and handed to a new task at once."""
    received: list[str] = []
    pids: list[int] = []

    def answer(request):
        received.append(request.headers["webhook-id"])
        if len(received) == 2:
            pids.append(terminate_all())
        time.sleep(0.6)  # the worker records after a second: after the second answer
        return Response('{"id": "crm-1"}', status=201, content_type="application/json")

    httpserver.expect_request("/people", method="POST").respond_with_handler(answer)
    make_sync(brand, receiver_url)
    for _ in range(8):
        factories.customer(brand)
    queue_purge()
    worker_pid = backend_pid()

    assert run.deliveries_run() == 2
    # Terminated once, the worker's connection among them (a live-server thread left by an
    # earlier test may hold another); that it was the worker's shows below: it reconnected.
    assert len(pids) == 1 and pids[0] >= 1
    assert len(received) == 2
    rows = deliveries()
    assert [(d.state, d.attempts, d.lease_expires_at) for d in rows] == [("delivered", 1, None)] * 2 + [
        ("pending", 0, None)
    ] * 6
    assert DeliveryAttempt.objects.count() == 2  # each sent delivery recorded once
    assert queued() == 1  # the rest handed on to a new task

    assert backend_pid() != worker_pid  # the worker reconnected
    queue_purge()
    assert run.deliveries_run() == 6
    assert sorted(received) == sorted(d.message_id for d in rows)  # every delivery once, none twice
    assert {d.state for d in deliveries()} == {"delivered"}
    assert DeliveryAttempt.objects.count() == 8


def test_a_recording_whose_commit_answer_was_lost_is_not_written_twice(brand, httpserver, receiver_url):
    """The rescue records again only what is still in flight under this claim."""
    httpserver.expect_request("/people", method="POST").respond_with_json({"id": "crm-1"}, status=201)
    make_sync(brand, receiver_url)
    factories.customer(brand)
    (claimed,) = claim.deliveries_claim()
    result = attempt.delivery_send(delivery=claimed)
    attempt.deliveries_record(results=[result])  # committed; say its answer never came
    attempt.deliveries_record(results=[result], again=True)
    assert DeliveryAttempt.objects.count() == 1
    assert Delivery.objects.get(pk=claimed.pk).state == "delivered"


def test_a_task_starts_on_a_connection_the_database_ended(brand, httpserver, receiver_url):
    """The first statement of a task after pg_terminate_backend reconnects (the task is not lost)."""
    httpserver.expect_request("/people", method="POST").respond_with_json({"id": "crm-1"}, status=201)
    make_sync(brand, receiver_url)
    factories.customer(brand)
    ids = [d.pk for d in deliveries()]
    pid = backend_pid()
    assert terminate_all() == 1

    assert tasks.deliver(ids) == 1
    assert backend_pid() != pid
    assert len(httpserver.log) == 1
    assert DrainSignal.objects.get(pk=1).taken_at is not None  # the task's first statement, on a new connection
