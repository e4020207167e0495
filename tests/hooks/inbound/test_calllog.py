"""M8Com Automatic Call Logging: POST /hooks/m8com/<slug>/calllog."""

import json

import pytest
from django.test import override_settings

from customers.models import Activity, Customer
from hooks.inbound import services
from hooks.inbound.models import InboundEvent
from synclog.models import InboundRequest
from tests.factories import credential

URL = "/hooks/m8com/acme/calllog"
START = 1_763_800_000_000  # Unix ms


def call(**overrides):
    payload = {
        "fromNumber": "+46 70 123 45 67",
        "toNumber": "+31 6 1234 5678",
        "duration": 134_000,
        "startTime": START,
        "callType": "Inbound",
        "body": "Call from user: adam.webb@emca.inc (+46 70 123 45 67)\nCall type: Inbound",
        "userId": "u-42",
    }
    payload.update(overrides)
    return payload


def auth(secret):
    return {"Authorization": f"Bearer {secret}"}


pytestmark = pytest.mark.django_db


def test_missing_authorization_header_gets_m8com_401_body(post_json, brand, m8com_key):
    response = post_json(URL, call())
    assert response.status_code == 401
    assert response.json() == {"message": "No authorization header provided"}
    assert InboundEvent.objects.count() == 0


@pytest.mark.parametrize("header", ["Bearer wrong", "Basic abc", "hh_not_bearer"])
def test_wrong_secret_gets_m8com_403_body(post_json, brand, m8com_key, header):
    response = post_json(URL, call(), Authorization=header)
    assert response.status_code == 403
    assert response.json() == {"message": "Invalid secret"}
    assert InboundEvent.objects.count() == 0


def test_keys_of_other_integrations_and_brands_are_refused(post_json, brand, other_brand):
    lookup_key_of_other_brand = credential(other_brand, "m8com")
    servicehooks_key = credential(brand, "servicehooks")
    for secret in (lookup_key_of_other_brand, servicehooks_key):
        response = post_json(URL, call(), **auth(secret))
        assert response.status_code == 403
        assert response.json() == {"message": "Invalid secret"}
    assert InboundEvent.objects.count() == 0


def test_unknown_brand_is_404(post_json, brand, m8com_key):
    response = post_json("/hooks/m8com/nope/calllog", call(), **auth(m8com_key))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_get_is_405(client, brand, m8com_key):
    response = client.get(URL, headers=auth(m8com_key))
    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_matched_inbound_call_goes_on_timeline_and_into_lookup_document(post_json, brand, m8com_key, maria):
    response = post_json(URL, call(extraFieldFromTheFuture={"x": 1}), **auth(m8com_key))
    assert response.status_code == 200
    body = response.json()
    event = InboundEvent.objects.get()
    assert body == {"id": event.pk, "status": "processed", "duplicate": False, "customerID": "K-1001"}
    assert event.payload["extraFieldFromTheFuture"] == {"x": 1}  # stored as received
    assert event.event_type == "call.logged"
    assert event.customer == maria
    assert event.contact_number == "+31 6 1234 5678"
    activity = Activity.objects.get(customer=maria)
    assert (activity.kind, activity.from_number, activity.to_number) == ("CALL", "+46 70 123 45 67", "+31 6 1234 5678")
    assert activity.duration_ms == 134_000
    assert int(activity.start_time.timestamp() * 1000) == START
    assert activity.body.splitlines() == ["Call from user: adam.webb@emca.inc (+46 70 123 45 67)", "Call type: Inbound"]
    maria.refresh_from_db()
    contact = json.loads(maria.m8com_document)
    assert contact["activities"] == [
        {
            "type": "CALL",
            "body": "Call from user: adam.webb@emca.inc (+46 70 123 45 67)\nCall type: Inbound",
            "timestamp": START,
            "toNumber": "+31 6 1234 5678",
            "fromNumber": "+46 70 123 45 67",
            "duration": 134_000,
            "startTime": START,
        }
    ]
    omnidesk = json.loads(maria.omnidesk_document)
    assert omnidesk["timeline"][0]["type"] == "call"
    assert omnidesk["timeline"][0]["message"].startswith("Inbound call: Call from user: adam.webb")
    assert omnidesk["timeline"][0]["source"] == "m8com"


def test_outbound_call_matches_the_caller(post_json, brand, m8com_key, maria):
    payload = call(fromNumber="0612345678", toNumber="+46 70 123 45 67", callType="Outbound")
    response = post_json(URL, payload, **auth(m8com_key))
    assert response.json()["customerID"] == "K-1001"
    assert InboundEvent.objects.get().contact_number == "0612345678"


def test_other_side_is_tried_when_the_contract_side_matches_nothing(post_json, brand, m8com_key, maria):
    # Inbound per the contract means the contact was called (toNumber); here toNumber is
    # an M8Com user id, so the caller's number is tried next.
    payload = call(fromNumber="+31612345678", toNumber="user-7781", callType="Inbound")
    assert post_json(URL, payload, **auth(m8com_key)).json()["customerID"] == "K-1001"


def test_retried_post_creates_nothing_twice(post_json, brand, m8com_key, maria, captured_events):
    first = post_json(URL, call(), **auth(m8com_key))
    again = post_json(URL, call(), **auth(m8com_key))
    assert first.status_code == again.status_code == 200
    assert again.json() == {**first.json(), "duplicate": True}
    assert InboundEvent.objects.count() == 1
    assert Activity.objects.filter(customer=maria).count() == 1
    assert [e.event_type for e, _ in captured_events] == ["call.logged"]


def test_call_logged_event_emitted_inside_transaction(post_json, brand, m8com_key, maria, captured_events):
    post_json(URL, call(), **auth(m8com_key))
    ((event, in_transaction),) = captured_events
    assert in_transaction
    assert event.customer_id == maria.pk
    assert event.data["call"]["duration"] == 134_000
    assert event.data["call"]["contactNumber"] == "+31 6 1234 5678"
    assert event.data["customer"]["customer_id"] == "K-1001"
    assert event.data["customer"]["custom_fields"] == {"customerType": "unlimited"}
    assert event.data["event"]["type"] == "call.logged"


def test_unmatched_call_is_stored_for_admins(post_json, brand, m8com_key, captured_events):
    response = post_json(URL, call(toNumber="+31 20 555 0000"), **auth(m8com_key))
    assert response.status_code == 200
    assert response.json()["status"] == "unmatched"
    assert response.json()["customerID"] is None
    event = InboundEvent.objects.get()
    assert event.customer is None and event.state == "unmatched"
    assert Customer.objects.count() == 0
    assert captured_events[0][0].data["customer"] is None


def test_unknown_caller_creates_customer_when_brand_asks(post_json, brand, m8com_key, captured_events):
    brand.create_unknown_callers = True
    brand.save()
    response = post_json(URL, call(toNumber="+31 20 555 0000"), **auth(m8com_key))
    assert response.json()["status"] == "processed"
    created = Customer.objects.get()
    assert created.addresses.get().normalized == "+31205550000"
    assert created.display_name == "Unknown caller +31205550000"
    assert InboundEvent.objects.get().customer_created is True
    assert created.activities.get().kind == "CALL"
    assert [e.event_type for e, _ in captured_events] == ["customer.created", "call.logged"]


def test_unknown_caller_with_user_id_instead_of_number_creates_nothing(post_json, brand, m8com_key):
    brand.create_unknown_callers = True
    brand.save()
    response = post_json(URL, call(toNumber="user-7781", fromNumber="user-1"), **auth(m8com_key))
    assert response.json()["status"] == "unmatched"
    assert Customer.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"fromNumber", "toNumber", "duration", "startTime", "callType", "body"}),
        (call(duration="134000"), {"duration"}),
        (call(duration=True), {"duration"}),
        (call(startTime=-1), {"startTime"}),
        (call(callType="Sideways"), {"callType"}),
        (call(fromNumber=31612345678), {"fromNumber"}),
        (call(body=None), {"body"}),
        (call(userId=["x"]), {"userId"}),
    ],
)
def test_missing_or_mistyped_fields_are_stored_as_invalid_with_the_reason(
    post_json, brand, m8com_key, maria, payload, fields, captured_events
):
    """Field content is read after storage: the call log is kept, answered 202,
    and waits for an admin as invalid, the unreadable fields named."""
    response = post_json(URL, payload, **auth(m8com_key))
    assert response.status_code == 202
    event = InboundEvent.objects.get()
    body = response.json()
    assert (body["id"], body["status"], body["customerID"]) == (event.pk, "invalid", None)
    assert body["reason"] == event.error
    assert event.state == "invalid"
    assert all(f"{name}:" in event.error for name in fields), event.error
    assert json.loads(event.body) == payload
    assert Activity.objects.count() == 0 and captured_events == []


def test_json_array_is_stored_as_invalid(post_json, brand, m8com_key):
    response = post_json(URL, [call()], **auth(m8com_key))
    assert response.status_code == 202
    assert response.json()["reason"] == "Fields that could not be read: non_field_errors: Expected a JSON object."
    assert InboundEvent.objects.get().payload == [call()]


def test_user_id_is_optional_for_v1(post_json, brand, m8com_key, maria):
    payload = call()
    del payload["userId"]
    assert post_json(URL, payload, **auth(m8com_key)).json()["status"] == "processed"


def test_non_json_is_415_and_broken_json_400(post_json, brand, m8com_key):
    response = post_json(URL, "fromNumber=1", content_type="application/x-www-form-urlencoded", **auth(m8com_key))
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    response = post_json(URL, "{not json", **auth(m8com_key))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert InboundEvent.objects.count() == 0


@override_settings(HUB_MAX_BODY_BYTES=1000)
def test_oversized_body_is_413(post_json, brand, m8com_key):
    response = post_json(URL, call(body="x" * 2000), **auth(m8com_key))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert InboundEvent.objects.count() == 0


def test_each_call_is_logged_with_key_redacted(post_json, brand, m8com_key, maria):
    post_json(URL, call(), **auth(m8com_key))
    post_json(URL, call())
    rows = list(InboundRequest.objects.order_by("pk").values_list("endpoint", "status", "customer_id"))
    assert rows == [("m8com.calllog", 200, maria.pk), ("m8com.calllog", 401, None)]
    assert all(m8com_key not in (r.request_body + r.query + r.response_body) for r in InboundRequest.objects.all())


def test_failed_processing_keeps_the_event_and_reprocess_finishes_it(post_json, brand, m8com_key, maria, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("timeline unavailable")

    monkeypatch.setattr(services, "activity_record", broken)
    response = post_json(URL, call(), **auth(m8com_key))
    assert response.status_code == 202
    assert response.json()["status"] == "failed"
    event = InboundEvent.objects.get()
    assert event.state == "failed"
    assert event.error == "RuntimeError: timeline unavailable"
    assert event.payload == call()
    assert Activity.objects.count() == 0

    monkeypatch.undo()
    counts = services.inbound_events_reprocess(events=[event])
    assert counts == {"processed": 1}
    event.refresh_from_db()
    assert (event.state, event.attempts, event.error) == ("processed", 2, "")
    assert Activity.objects.filter(customer=maria).count() == 1


def test_platform_retry_heals_a_failed_event(post_json, brand, m8com_key, maria, monkeypatch):
    monkeypatch.setattr(services, "activity_record", lambda **kw: (_ for _ in ()).throw(RuntimeError("down")))
    assert post_json(URL, call(), **auth(m8com_key)).status_code == 202
    monkeypatch.undo()
    response = post_json(URL, call(), **auth(m8com_key))
    assert response.status_code == 200
    assert response.json()["status"] == "processed" and response.json()["duplicate"] is True
    assert InboundEvent.objects.count() == 1
    assert Activity.objects.count() == 1


def test_events_of_two_brands_with_the_same_call_are_separate(post_json, brand, other_brand, m8com_key):
    other_key = credential(other_brand, "m8com")
    post_json(URL, call(), **auth(m8com_key))
    post_json("/hooks/m8com/globex/calllog", call(), **auth(other_key))
    assert sorted(InboundEvent.objects.values_list("brand__slug", flat=True)) == ["acme", "globex"]


def test_nul_characters_are_stored_escaped_on_every_database(post_json, brand, m8com_key, maria):
    """PostgreSQL stores no U+0000: the body keeps it as the escape that was
    sent, the payload and the timeline show U+FFFD in its place."""
    raw = json.dumps(call(body="before\u0000after"))
    assert "\\u0000" in raw
    response = post_json(URL, raw, **auth(m8com_key))
    assert response.status_code == 200 and response.json()["status"] == "processed"
    event = InboundEvent.objects.get()
    assert event.body == raw
    assert event.payload["body"] == "before\ufffdafter"
    assert Activity.objects.get().body == "before\ufffdafter"


def test_start_time_beyond_what_a_date_can_hold_is_stored_as_invalid(post_json, brand, m8com_key):
    response = post_json(URL, call(startTime=10**15), **auth(m8com_key))
    assert response.status_code == 202
    assert response.json()["status"] == "invalid"
    assert "startTime:" in InboundEvent.objects.get().error
