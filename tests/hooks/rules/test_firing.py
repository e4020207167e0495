"""Rules fire through the shared delivery engine, to a real receiver on 127.0.0.1."""

import json
from datetime import timedelta

import pytest
from werkzeug import Response

from customers.services import customer_update
from hooks.outbound.models import Delivery
from hooks.rules.models import EventRule
from hooks.rules.services import rule_create
from synclog.models import DeliveryAttempt
from tests.factories import customer

from .conftest import deliveries, run_all

pytestmark = [pytest.mark.engine, pytest.mark.django_db]

ABANDONED = {"customerPhoneNumber": "+31612345678", "timeInQueue": 134, "queue": "Sales"}
CALL = {
    "fromNumber": "+46701234567",
    "toNumber": "+31612345678",
    "duration": 95_000,
    "startTime": 1_763_800_000_000,
    "callType": "Inbound",
    "body": "Call type: Inbound",
    "userId": "u-1",
}


def make_rule(brand, base_url, **fields):
    defaults = {
        "name": "Notify",
        "enabled": True,
        "event_types": ["conversation.abandoned"],
        "conditions": {"all": ['event.queue == "Sales"']},
        "method": "POST",
        "url": f"{base_url}/notify/{{{{ customer.customer_id }}}}",
        "body_format": "json",
        "body": '{"who": "{{ customer.name }}", "queue": "{{ event.queue }}", "waited": {{ event.timeInQueue }}, '
        '"summary": "{{ event.summary }}", "link": "{{ customer.admin_url }}"}',
        "timeout_seconds": 2,
    }
    defaults.update(fields)
    return rule_create(brand=brand, **defaults)


def test_abandoned_conversation_fires_rule_and_receiver_gets_exact_request(
    brand, maria, receiver, post_event, clock, settings
):
    settings.HUB_ADMIN_BASE_URL = "https://hub.example.com"
    server, base = receiver
    server.expect_oneshot_request("/notify/K-1001", method="POST").respond_with_json({"ok": True})
    rule = make_rule(brand, base)
    post_event("servicehooks/abandoned-conversation", ABANDONED)
    (delivery,) = deliveries()
    assert (delivery.source_kind, delivery.source_id, delivery.source_name) == ("rule", rule.pk, "Notify")
    assert (delivery.event_type, delivery.customer_id, delivery.state) == (
        "conversation.abandoned",
        maria.pk,
        "pending",
    )
    assert run_all() == 1
    ((request, _response),) = server.log
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.get_data(as_text=True)) == {
        "who": "Maria Andersson",
        "queue": "Sales",
        "waited": 134,
        "summary": "Abandoned in queue Sales after 2 min 14 s",
        "link": f"https://hub.example.com/admin/customers/customer/{maria.pk}/change/",
    }
    delivery.refresh_from_db()
    assert delivery.state == "delivered"
    assert DeliveryAttempt.objects.get(delivery_id=delivery.pk).response_status == 200


def test_conditions_not_holding_create_nothing(brand, maria, receiver, post_event):
    make_rule(brand, receiver[1])
    post_event("servicehooks/abandoned-conversation", {**ABANDONED, "queue": "Support"})
    assert Delivery.objects.count() == 0


def test_disabled_rule_and_other_trigger_create_nothing(brand, maria, receiver, post_event):
    make_rule(brand, receiver[1], enabled=False)
    make_rule(brand, receiver[1], name="Only calls", event_types=["call.logged"], conditions={})
    post_event("servicehooks/abandoned-conversation", ABANDONED)
    assert Delivery.objects.count() == 0


def test_rules_of_another_brand_never_fire(brand, other_brand, maria, receiver, post_event):
    make_rule(other_brand, receiver[1], conditions={})
    post_event("servicehooks/abandoned-conversation", ABANDONED)
    assert Delivery.objects.count() == 0
    # and the other brand's events do not fire this brand's rules
    make_rule(brand, receiver[1], name="Acme", conditions={})
    post_event("servicehooks/abandoned-conversation", ABANDONED, slug="globex")
    assert [d.brand_id for d in deliveries()] == [other_brand.pk]


def test_rules_run_in_order(brand, maria, receiver, post_event):
    make_rule(brand, receiver[1], name="Second", order=20, conditions={})
    make_rule(brand, receiver[1], name="First", order=10, conditions={})
    make_rule(brand, receiver[1], name="Not matching", order=5)
    post_event("servicehooks/abandoned-conversation", {**ABANDONED, "queue": "Support"})
    assert [d.source_name for d in deliveries()] == ["First", "Second"]


def test_unmatched_event_still_fires_rules_without_customer_conditions(brand, receiver, post_event):
    server, base = receiver
    server.expect_oneshot_request("/unknown", method="POST").respond_with_data("ok")
    make_rule(
        brand,
        base,
        url=f"{base}/unknown",
        conditions={},
        body='{"who": "{{ customer.name or event.customerPhoneNumber }}", "event": "{{ event.admin_url }}"}',
    )
    result = post_event("servicehooks/abandoned-conversation", ABANDONED)
    assert result["status"] == "unmatched"
    run_all()
    ((request, _),) = server.log
    body = json.loads(request.get_data(as_text=True))
    assert body["who"] == "+31612345678"
    assert body["event"].endswith(f"/admin/inbound/inboundevent/{result['id']}/change/")


def test_call_logged_rule_on_call_fields(brand, maria, receiver, post_event):
    server, base = receiver
    server.expect_oneshot_request("/calls", method="PUT").respond_with_data("", status=204)
    make_rule(
        brand,
        base,
        name="Long calls",
        event_types=["call.logged"],
        conditions={"all": ["call.duration > 60000", 'call.callType == "Inbound"']},
        method="PUT",
        url=f"{base}/calls",
        body_format="form",
        body="from={{ call.fromNumber }}&to={{ call.toNumber }}&seconds={{ call.duration // 1000 }}",
    )
    post_event("m8com/calllog", CALL)
    post_event("m8com/calllog", {**CALL, "duration": 5_000, "startTime": CALL["startTime"] + 1})  # too short
    assert len(deliveries()) == 1
    run_all()
    ((request, _),) = server.log
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.get_data(as_text=True) == "from=%2B46701234567&to=%2B31612345678&seconds=95"


def test_customer_event_rule_on_custom_field(brand, maria, receiver):
    server, base = receiver
    server.expect_oneshot_request("/vip", method="POST").respond_with_data("ok")
    make_rule(
        brand,
        base,
        name="VIP changed",
        event_types=["customer.updated"],
        conditions={"all": ['customer.customFields.customerType == "unlimited"', 'event.changed contains "last_name"']},
        url=f"{base}/vip",
        body_format="xml",
        body="<customer><name>{{ customer.name }}</name><id>{{ customer.customer_id }}</id></customer>",
    )
    customer_update(customer=maria, last_name="O'Neil & <Co>")
    other = customer(brand, custom_fields=[{"customerType": "basic"}])
    customer_update(customer=other, last_name="Nope")
    assert len(deliveries()) == 1
    run_all()
    ((request, _),) = server.log
    assert request.get_data(as_text=True) == (
        "<customer><name>Maria O&apos;Neil &amp; &lt;Co&gt;</name><id>K-1001</id></customer>"
    )


def test_failed_delivery_retried_every_30_minutes_until_delivered(brand, maria, receiver, post_event, clock):
    server, base = receiver
    server.expect_ordered_request("/notify/K-1001").respond_with_response(Response("down", status=503))
    server.expect_ordered_request("/notify/K-1001").respond_with_json({"ok": True})
    make_rule(brand, base)
    post_event("servicehooks/abandoned-conversation", ABANDONED)
    run_all()
    (delivery,) = deliveries()
    assert delivery.state == "pending" and delivery.last_status == 503
    assert delivery.next_attempt_at == clock.current + timedelta(minutes=30)
    assert run_all() == 0  # not due yet
    clock.advance(minutes=30, seconds=1)
    assert run_all() == 1
    delivery.refresh_from_db()
    assert delivery.state == "delivered"
    statuses = DeliveryAttempt.objects.filter(delivery_id=delivery.pk).order_by("pk").values_list("response_status")
    assert [status for (status,) in statuses] == [503, 200]


def test_rule_disabled_before_sending_makes_delivery_obsolete(brand, maria, receiver, post_event):
    server, base = receiver
    rule = make_rule(brand, base)
    post_event("servicehooks/abandoned-conversation", ABANDONED)
    EventRule.objects.filter(pk=rule.pk).update(enabled=False)
    run_all()
    assert deliveries()[0].state == "obsolete"
    assert server.log == []


def test_basic_auth_is_sent_and_masked_in_the_log(brand, maria, receiver, post_event):
    server, base = receiver
    server.expect_oneshot_request("/notify/K-1001").respond_with_data("ok")
    make_rule(brand, base, auth_type="basic", auth_username="api", auth_password="s3cret-pass")
    post_event("servicehooks/abandoned-conversation", ABANDONED)
    run_all()
    ((request, _),) = server.log
    assert request.authorization.username == "api" and request.authorization.password == "s3cret-pass"
    attempt = DeliveryAttempt.objects.get()
    assert "s3cret-pass" not in json.dumps(attempt.request_headers)
    assert attempt.request_headers["Authorization"] != request.headers["Authorization"]


def test_failed_inbound_processing_rolls_back_the_delivery_and_reprocess_creates_it(
    brand, maria, receiver, post_event, monkeypatch
):
    from hooks.inbound import services as inbound
    from hooks.inbound.models import InboundEvent

    make_rule(brand, receiver[1])
    real_emit = inbound.emit

    def emit_then_fail(**kwargs):
        real_emit(**kwargs)
        raise RuntimeError("after the rules ran")

    monkeypatch.setattr(inbound, "emit", emit_then_fail)
    from django.test import Client

    # post_event asserts 200; this one answers 202, so post by hand
    from tests.factories import credential

    key = credential(brand, "servicehooks")
    response = Client().post(
        "/hooks/servicehooks/acme/abandoned-conversation",
        data=json.dumps(ABANDONED),
        content_type="application/json",
        headers={"x-api-key": key},
    )
    assert response.status_code == 202
    assert Delivery.objects.count() == 0  # rolled back with the failed processing
    monkeypatch.undo()
    inbound.inbound_events_reprocess(events=list(InboundEvent.objects.all()))
    assert Delivery.objects.count() == 1
    # reprocessing again never emits twice
    inbound.inbound_events_reprocess(events=list(InboundEvent.objects.all()))
    assert Delivery.objects.count() == 1


def test_rules_read_once_per_transaction_and_changes_seen(brand, maria, receiver):
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from hub.events import emit

    def emit_many(count):
        for _ in range(count):
            emit(brand_id=brand.pk, event_type="conversation.abandoned", data={"event": {"queue": "Sales"}})

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        emit_many(50)
        make_rule(brand, receiver[1], conditions={}, url=f"{receiver[1]}/x")  # saving a rule clears the cache
        emit_many(2)
    rule_reads = [q for q in queries.captured_queries if 'FROM "rules_eventrule"' in q["sql"]]
    # the cache was filled when the maria fixture emitted customer.created in this (test) transaction;
    # 52 emits then cost one read, after the save cleared it (plus the save's uniqueness check)
    assert len(rule_reads) == 2
    assert 'SELECT 1 AS "a"' in rule_reads[0]["sql"]
    assert Delivery.objects.count() == 2


def test_conditions_made_invalid_behind_the_admins_back_never_fire(brand, maria, receiver, post_event):
    rule = make_rule(brand, receiver[1], conditions={})
    EventRule.objects.filter(pk=rule.pk).update(conditions={"all": [{"bogus": 1}, "not a test"]})
    result = post_event("servicehooks/abandoned-conversation", ABANDONED)
    assert result["status"] == "processed"
    assert Delivery.objects.count() == 0
