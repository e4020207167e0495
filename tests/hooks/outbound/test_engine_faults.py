"""Real ``manage.py qcluster`` processes under faults: SIGTERM mid-batch (to
the qcluster process, as Kubernetes and Docker send it, and to its whole
process group, as systemd does), kill -9 of a cluster, a Redis broker that
lost every queued task, and a lease shorter than one request.

Each cluster shares the test database (see test_worker.SharedDatabase) and
sends to a real receiver on 127.0.0.1. Every wait is bounded; every cluster is
killed with its process group on the way out.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django_q.brokers import get_broker
from django_q.models import Schedule, Task
from werkzeug import Response

from hooks.outbound.models import Delivery
from tests import factories

from .conftest import make_sync
from .test_worker import DEADLINE_SECONDS, SharedDatabase, kill, start_worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.engine, pytest.mark.django_db(transaction=True)]

REDIS_TEST_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/3"  # CI sets its own database
STOP_LIMIT_SECONDS = 10


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


class Receiver:
    """A CRM create endpoint that answers slowly and remembers every message id with its arrival time."""

    def __init__(self, httpserver, *, delay: float = 0.0):
        self.delay = delay
        self.arrivals: list[tuple[str, float]] = []
        self.hold = threading.Event()  # set: the next request waits until release
        self.held = threading.Event()
        self.release = threading.Event()
        httpserver.expect_request("/people", method="POST").respond_with_handler(self.handle)
        self.url = httpserver.url_for("").rstrip("/")

    def handle(self, request):
        self.arrivals.append((request.headers["webhook-id"], time.time()))
        if self.hold.is_set():
            self.hold.clear()
            self.held.set()
            self.release.wait(DEADLINE_SECONDS)
        time.sleep(self.delay)
        return Response('{"id": "crm-1"}', status=201, content_type="application/json")

    def ids(self) -> Counter:
        return Counter(message_id for message_id, _ in self.arrivals)


def wait_until(condition, what: str) -> None:
    stop = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < stop:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"Timed out waiting for {what}")


@pytest.fixture
def redis_broker():
    """Redis database 3, flushed before and after."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL)
    client.flushdb()
    yield client
    client.flushdb()


def no_safety_net() -> None:
    """Remove the minute schedule, so only the in-cluster sweeper can bring a delivery back."""
    Schedule.objects.all().delete()


@pytest.mark.parametrize("target", ["qcluster process", "process group"])
def test_sigterm_mid_batch_finishes_the_request_releases_the_rest_and_exits_within_10_s(
    brand, httpserver, tmp_path, target
):
    receiver = Receiver(httpserver, delay=0.4)
    make_sync(brand, receiver.url)
    for number in range(20):
        factories.customer(brand, first_name=f"Burst{number}")
    message_ids = set(Delivery.objects.values_list("message_id", flat=True))
    assert len(message_ids) == 20
    database = SharedDatabase(tmp_path)
    database.push()

    worker = start_worker(database)
    try:
        wait_until(lambda: len(receiver.arrivals) >= 3, "the burst to start")
        asked = time.monotonic()
        if target == "qcluster process":
            os.kill(worker.pid, signal.SIGTERM)
        else:
            os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=STOP_LIMIT_SECONDS)
        while group_members(worker.pid) and time.monotonic() - asked < STOP_LIMIT_SECONDS:
            time.sleep(0.05)
        stopped_after = time.monotonic() - asked
        assert not group_members(worker.pid), "a process of the cluster outlived the stop"
        assert stopped_after < STOP_LIMIT_SECONDS
    finally:
        kill(worker)

    database.pull()
    sent = len(receiver.arrivals)
    assert sent < 20, "the stop came after the burst: nothing was left to release"
    # The request in progress was finished and recorded; the rest went back, unleased.
    assert Delivery.objects.filter(state="delivered").count() == sent
    assert not Delivery.objects.filter(state="in_flight").exists()
    assert not Delivery.objects.exclude(lease_expires_at=None).exists()
    assert set(Delivery.objects.filter(state="pending").values_list("attempts", flat=True)) == {0}

    second = start_worker(database)
    try:
        wait_for(lambda: Delivery.objects.filter(state="delivered").count() == 20, "the rest delivered", database)
    finally:
        kill(second)
    assert set(receiver.ids()) == message_ids
    assert max(receiver.ids().values()) == 1  # nothing sent twice


@pytest.mark.parametrize("broker", ["orm", "redis"])
def test_a_killed_cluster_s_delivery_is_sent_again_within_seconds_of_its_lease_expiring(
    brand, httpserver, tmp_path, broker, request
):
    env = {"HUB_DELIVERY_LEASE_SECONDS": "3"}  # below the system check's floor, hence --skip-checks
    if broker == "redis":
        request.getfixturevalue("redis_broker")
        env["REDIS_URL"] = REDIS_TEST_URL
    receiver = Receiver(httpserver)
    receiver.hold.set()
    make_sync(brand, receiver.url)
    factories.customer(brand, first_name="Kill", last_name="Nine")
    no_safety_net()
    database = SharedDatabase(tmp_path)
    database.push()

    first = start_worker(database, env=env, args=("--skip-checks",))
    try:
        assert receiver.held.wait(DEADLINE_SECONDS), "the first cluster never sent the delivery"
        kill(first)  # kill -9 mid-request: nothing recorded, the lease holds the row
    finally:
        kill(first)
        receiver.release.set()

    database.pull()
    (delivery,) = Delivery.objects.all()
    assert delivery.state == "in_flight"
    assert delivery.lease_expires_at is not None
    lease_expiry = delivery.lease_expires_at.timestamp()

    second = start_worker(database, env=env, args=("--skip-checks",))
    try:
        wait_for(lambda: Delivery.objects.filter(state="delivered").exists(), "the delivery sent again", database)
    finally:
        kill(second)
    assert [message_id for message_id, _ in receiver.arrivals] == [delivery.message_id] * 2
    resent_at = receiver.arrivals[1][1]
    assert resent_at >= lease_expiry  # never while the first cluster's lease held
    assert resent_at - lease_expiry < 4, f"sent again {resent_at - lease_expiry:.1f} s after the lease expired"


def test_a_redis_broker_that_lost_every_queued_task_still_gets_the_deliveries_out(
    brand, httpserver, tmp_path, redis_broker
):
    receiver = Receiver(httpserver)
    make_sync(brand, receiver.url)
    for number in range(5):
        factories.customer(brand, first_name=f"Lost{number}")
    get_broker().purge_queue()  # the tasks asked for on commit are gone: nothing in any broker
    redis_broker.flushdb()
    no_safety_net()
    database = SharedDatabase(tmp_path)
    database.push()

    started = time.monotonic()
    worker = start_worker(database, env={"REDIS_URL": REDIS_TEST_URL})
    try:
        wait_for(lambda: Delivery.objects.filter(state="delivered").count() == 5, "all five delivered", database)
        took = time.monotonic() - started
    finally:
        kill(worker)
    assert len(receiver.arrivals) == 5
    assert took < 15, f"took {took:.1f} s"


def test_a_cluster_with_a_lease_shorter_than_one_request_delivers_without_a_flood_of_tasks(brand, httpserver, tmp_path):
    """A worker started past the system check (--skip-checks) with HUB_DELIVERY_LEASE_SECONDS=1:
    every delivery goes out once, and the tasks stay bounded (no spin)."""
    receiver = Receiver(httpserver, delay=0.2)
    make_sync(brand, receiver.url)
    for number in range(6):
        factories.customer(brand, first_name=f"Short{number}")
    database = SharedDatabase(tmp_path)
    database.push()

    worker = start_worker(database, env={"HUB_DELIVERY_LEASE_SECONDS": "1"}, args=("--skip-checks",))
    try:
        wait_for(lambda: Delivery.objects.filter(state="delivered").count() == 6, "all six delivered", database)
        time.sleep(3)  # a spinning engine would keep enqueueing now
        database.pull()
    finally:
        kill(worker)
    assert max(receiver.ids().values()) == 1
    assert len(receiver.arrivals) == 6
    assert Task.objects.filter(func="hooks.outbound.tasks.deliver").count() + get_broker().queue_size() <= 20
