"""Destination health with a real django-q2 worker (``manage.py qcluster``, two
worker processes) and a local receiver: against a dead CRM the breaker keeps at
most one request in flight and always probes with the oldest delivery; alerts
arrive at each step (e-mail written by the worker's mail backend, the
operational webhook received with a valid Standard Webhooks signature); when
the CRM recovers everything drains in order and ``destination.recovered`` is sent.
Bounded: every wait has a deadline and the worker is killed on the way out.
"""

from __future__ import annotations

import email
import json
import threading
import time
from email.header import decode_header, make_header

import pytest
from standardwebhooks.webhooks import Webhook
from werkzeug import Response

from hooks.outbound.engine import health
from hooks.outbound.models import CrmSyncAction, Delivery, DestinationHealth
from tests import factories

from .conftest import body_of, make_sync
from .test_worker import SharedDatabase, kill, start_worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 8


class DeadThenAlive:
    def __init__(self, secret: str):
        self.down = True
        self.secret = secret
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.ids_while_down: list[str] = []
        self.names: list[str] = []
        self.ops: list[dict] = []
        self.bad_signatures = 0

    def people(self, request):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            down = self.down
            if down:
                self.ids_while_down.append(request.headers["webhook-id"])
        try:
            time.sleep(0.1)  # room for a second request to overlap, if the breaker let one through
            if down:
                return Response("unavailable", status=503)
            self.names.append(body_of(request)["first_name"])
            return Response(json.dumps({"id": len(self.names)}), status=201, content_type="application/json")
        finally:
            with self.lock:
                self.in_flight -= 1

    def operational(self, request):
        try:
            self.ops.append(Webhook(self.secret).verify(request.get_data(as_text=True), dict(request.headers)))
        except Exception:  # noqa: BLE001 - counted and asserted on
            self.bad_signatures += 1
            return Response("bad signature", status=400)
        return Response("", status=204)


def test_breaker_probes_one_at_a_time_alerts_each_step_and_drains_in_order(brand, other_brand, httpserver, tmp_path):
    secret = health.operational_webhook_set(brand_id=brand.pk, url=httpserver.url_for("/ops"))
    health.operational_webhook_set(brand_id=other_brand.pk, url=httpserver.url_for("/ops-globex"))
    crm = DeadThenAlive(secret)
    httpserver.expect_request("/people", method="POST").respond_with_handler(crm.people)
    httpserver.expect_request("/ops", method="POST").respond_with_handler(crm.operational)
    admin = factories.member(brand, username="acme-ops")
    factories.member(other_brand, username="globex-ops")
    sync = make_sync(brand, httpserver.url_for("").rstrip("/"))
    CrmSyncAction.objects.filter(sync=sync).exclude(action="create").update(enabled=False)
    for n in range(CUSTOMERS):
        factories.customer(brand, first_name=f"W{n}")
    oldest = Delivery.objects.order_by("pk").first()
    assert oldest is not None and Delivery.objects.count() == CUSTOMERS

    mail_dir = tmp_path / "mail"
    database = SharedDatabase(tmp_path)
    database.push()
    env = {
        "HUB_RETRY_INTERVAL_SECONDS": "1",
        "HUB_HEALTH_ALERT_THRESHOLD": "4",  # steps at 2, 3 and 4 consecutive failures (90 % and 100 % both at 4)
        "HUB_HEALTH_ALERT_AFTER_SECONDS": "0",
        "HUB_HEALTH_DISABLE_AFTER_SECONDS": "0",
        "EMAIL_URL": f"filemail:///{mail_dir}",
    }
    worker = start_worker(database, env=env)
    try:
        deadline = time.monotonic() + 40
        while len(crm.ids_while_down) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(crm.ids_while_down) >= 6, "the worker never probed the dead CRM six times"
        with crm.lock:
            crm.down = False
            probes = list(crm.ids_while_down)
        wait_for(lambda: crm.names and len(crm.names) == CUSTOMERS, "all creates to arrive")
        wait_for(lambda: "destination.recovered" in [e["type"] for e in crm.ops], "the recovered event")
        wait_for(lambda: not Delivery.objects.exclude(state="delivered").exists(), "every attempt recorded", database)
    finally:
        kill(worker)
    database.pull()

    assert crm.max_in_flight == 1
    assert set(probes) == {oldest.message_id}  # always the oldest, never the other 7
    assert crm.names == [f"W{n}" for n in range(CUSTOMERS)]  # drained in order after the recovery
    assert set(Delivery.objects.filter(source_kind="crm_action").values_list("state", flat=True)) == {"delivered"}
    assert crm.bad_signatures == 0
    failing = [e["data"]["consecutive_failures"] for e in crm.ops if e["type"] == "destination.failing"]
    assert failing == [2, 3, 4]
    assert [e["type"] for e in crm.ops][-1] == "destination.recovered"
    row = DestinationHealth.objects.get(source_kind="crm_action")
    assert (row.state, row.consecutive_failures) == ("healthy", 0)

    messages = [
        email.message_from_string(text.strip())
        for path in sorted(mail_dir.glob("*.log"))
        for text in path.read_text().split("-" * 79)
        if text.strip()
    ]
    subjects = [str(make_header(decode_header(m["Subject"]))) for m in messages]
    assert len(subjects) == 4
    assert sum("CRM — Create Users is failing" in s for s in subjects) == 3 and "has recovered" in subjects[-1]
    assert {m["To"] for m in messages} == {admin.email}  # brand B's admins never hear of brand A
    assert not [r for r, _ in httpserver.log if r.path == "/ops-globex"]


def test_auto_disable_pauses_then_reenable_delivers_in_order(brand, httpserver, tmp_path):
    crm = DeadThenAlive(secret="")
    httpserver.expect_request("/people", method="POST").respond_with_handler(crm.people)
    sync = make_sync(brand, httpserver.url_for("").rstrip("/"))
    CrmSyncAction.objects.filter(sync=sync).exclude(action="create").update(enabled=False)
    action = CrmSyncAction.objects.get(sync=sync, action="create")
    for n in range(6):
        factories.customer(brand, first_name=f"D{n}")

    database = SharedDatabase(tmp_path)
    database.push()
    env = {"HUB_RETRY_INTERVAL_SECONDS": "1", "HUB_HEALTH_DISABLE_AFTER_SECONDS": "2"}
    worker = start_worker(database, env=env)
    try:
        wait_for(lambda: DestinationHealth.objects.filter(state="disabled").exists(), "the auto-disable", database)
    finally:
        kill(worker)
    database.pull()

    row = DestinationHealth.objects.get(source_kind="crm_action", source_id=action.pk)
    assert row.disabled_reason.startswith("Failed continuously for")
    action.refresh_from_db()
    assert action.enabled is False
    assert set(Delivery.objects.values_list("state", flat=True)) == {"paused"}  # kept, not failed
    requests_while_down = len(crm.ids_while_down)

    crm.down = False
    assert health.destination_reenable(source_kind="crm_action", source_id=action.pk) == 6
    database.push()
    worker = start_worker(database, env=env)
    try:
        wait_for(lambda: len(crm.names) == 6, "the resumed deliveries")
        wait_for(lambda: Delivery.objects.filter(state="delivered").count() == 6, "all delivered", database)
    finally:
        kill(worker)
    assert crm.names == [f"D{n}" for n in range(6)]
    assert crm.max_in_flight == 1 and requests_while_down >= 2
