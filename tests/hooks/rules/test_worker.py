"""End to end with a real django-q2 worker: a service hook posted over HTTP fires
a rule whose delivery the worker sends to a local receiver (and retries)."""

from __future__ import annotations

import json

import pytest
from werkzeug import Response

from hooks.outbound.models import Delivery
from hooks.rules.services import rule_create
from synclog.models import DeliveryAttempt
from tests import factories
from tests.hooks.outbound.test_worker import SharedDatabase, kill, start_worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.engine, pytest.mark.django_db(transaction=True)]


def test_worker_delivers_a_fired_rule(brand, client, httpserver, tmp_path):
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/abandoned", method="POST").respond_with_response(
        Response(json.dumps({"ok": True}), status=200, content_type="application/json")
    )
    factories.customer(
        brand, customer_id="K-1", first_name="Maria", addresses=[{"kind": "telephone", "value": "+31612345678"}]
    )
    rule_create(
        brand=brand,
        name="Abandoned to receiver",
        enabled=True,
        event_types=["conversation.abandoned"],
        conditions=['event.queue == "Sales"'],
        url=f"{base}/abandoned",
        body='{"customer": "{{ customer.customer_id }}", "text": "{{ event.summary }}"}',
        timeout_seconds=5,
    )
    key = factories.credential(brand, "servicehooks")
    response = client.post(
        "/hooks/servicehooks/acme/abandoned-conversation",
        data=json.dumps({"customerPhoneNumber": "0612345678", "queue": "Sales", "timeInQueue": 75}),
        content_type="application/json",
        headers={"x-api-key": key},
    )
    assert response.status_code == 200
    (delivery,) = Delivery.objects.all()
    assert delivery.state == "pending"

    database = SharedDatabase(tmp_path)
    database.push()
    worker = start_worker(database)
    try:
        wait_for(lambda: Delivery.objects.filter(state="delivered").exists(), "the rule's delivery", database)
    finally:
        kill(worker)
    database.pull()
    ((request, _),) = httpserver.log
    assert json.loads(request.get_data(as_text=True)) == {
        "customer": "K-1",
        "text": "Abandoned in queue Sales after 1 min 15 s",
    }
    assert request.headers["webhook-id"] == Delivery.objects.get().message_id
    assert DeliveryAttempt.objects.get().response_status == 200
