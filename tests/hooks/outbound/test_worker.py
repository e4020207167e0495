"""A real django-q2 worker (``manage.py qcluster``) delivering create → update →
delete to a local receiver, killed with SIGKILL in the middle of the create.

The worker process shares the test database: on PostgreSQL the test database
itself; on SQLite (whose test database lives in memory) a file copy made with
SQLite's backup API, copied back to read the outcome. Bounded: every wait has a
deadline and the worker is killed on the way out.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from werkzeug import Response

from customers.services import customer_delete, customer_update
from hooks.outbound.engine import run
from hooks.outbound.models import Delivery
from synclog.models import DeliveryAttempt
from tests import factories

from .conftest import make_sync

pytestmark = [pytest.mark.worker, pytest.mark.engine, pytest.mark.django_db(transaction=True)]

ROOT = Path(settings.BASE_DIR)
DEADLINE_SECONDS = 40


class SharedDatabase:
    def __init__(self, tmp_path: Path):
        self.sqlite = connection.vendor == "sqlite"
        self.file = tmp_path / "worker.sqlite3"

    def url(self) -> str:
        if self.sqlite:
            return f"sqlite:///{self.file}"
        s = connection.settings_dict
        auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"

    def push(self) -> None:
        """Make the worker see what this process wrote."""
        if self.sqlite:
            connection.ensure_connection()
            with sqlite3.connect(self.file) as target:
                connection.connection.backup(target)

    def pull(self) -> None:
        """Make this process see what the worker wrote."""
        if self.sqlite:
            connection.ensure_connection()
            with sqlite3.connect(self.file) as source:
                source.backup(connection.connection)


def start_worker(
    database: SharedDatabase, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> subprocess.Popen:
    """``manage.py qcluster`` in its own process group (``env`` adds settings)."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": database.url(),
        "Q_WORKERS": "2",
        "LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster", *args],
        cwd=ROOT,
        env=environment,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill(process: subprocess.Popen) -> None:
    """SIGKILL the worker's whole process group (workers its Sentinel left behind too)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def wait_for(condition, what: str, database: SharedDatabase | None = None) -> None:
    stop = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < stop:
        if database is not None:
            database.pull()
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"Timed out waiting for {what}")


def test_worker_killed_mid_delivery_then_create_update_delete_arrive_in_order(brand, httpserver, tmp_path):
    receiver_url = httpserver.url_for("").rstrip("/")
    first_create_arrived = threading.Event()
    release = threading.Event()
    creates = []

    def create_handler(request):
        creates.append(request.headers["webhook-id"])
        if len(creates) == 1:
            first_create_arrived.set()
            release.wait(DEADLINE_SECONDS)  # the worker dies while waiting for this answer
        return Response(json.dumps({"data": {"id": "crm-42"}}), status=201, content_type="application/json")

    httpserver.expect_request("/people", method="POST").respond_with_handler(create_handler)
    httpserver.expect_request("/people/crm-42", method="PUT").respond_with_data("", status=204)
    httpserver.expect_request("/people/crm-42", method="DELETE").respond_with_data("", status=204)
    make_sync(brand, receiver_url, unique_id_path="$.data.id")

    customer = factories.customer(brand, first_name="Kill", last_name="Nine")
    customer_update(customer=customer, last_name="Ten")
    customer_delete(customer=customer)
    assert Delivery.objects.count() == 3

    database = SharedDatabase(tmp_path)
    database.push()
    worker = start_worker(database)
    try:
        assert first_create_arrived.wait(DEADLINE_SECONDS), "the worker never sent the create"
        kill(worker)  # SIGKILL mid-request: nothing recorded, the lease holds the row
    finally:
        kill(worker)
        release.set()

    database.pull()
    create = Delivery.objects.get(event_type="customer.created")
    assert (create.state, create.attempts) == ("in_flight", 1)
    assert not DeliveryAttempt.objects.exists()

    # Move the clock past the lease instead of waiting, and let the sweeper find it.
    Delivery.objects.filter(pk=create.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert run.deliveries_sweep() == 1  # only the create: update and delete wait behind it
    database.push()

    worker = start_worker(database)
    try:
        wait_for(lambda: Delivery.objects.filter(state="delivered").count() == 3, "all three delivered", database)
    finally:
        kill(worker)
    database.pull()

    assert creates == [create.message_id, create.message_id]  # exactly one more attempt, same message id
    paths = [(request.method, request.path) for request, _ in httpserver.log]
    assert paths == [("POST", "/people"), ("POST", "/people"), ("PUT", "/people/crm-42"), ("DELETE", "/people/crm-42")]
    create.refresh_from_db()
    assert (create.state, create.attempts) == ("delivered", 2)
    assert list(
        DeliveryAttempt.objects.order_by("pk").values_list("delivery__event_type", "number", "response_status")
    ) == [
        ("customer.created", 2, 201),
        ("customer.updated", 1, 204),
        ("customer.deleted", 1, 204),
    ]
