"""Contact-center service hooks: POST /hooks/servicehooks/<slug>/<event-type>."""

import json
from datetime import UTC, datetime

import pytest

from customers.models import Activity
from hooks.inbound.models import InboundEvent
from hooks.inbound.servicehooks import parse_seconds, parse_time
from synclog.models import InboundRequest
from tests.factories import credential, customer

pytestmark = pytest.mark.django_db

ABANDONED = "/hooks/servicehooks/acme/abandoned-conversation"
OUTBOUND = "/hooks/servicehooks/acme/outbound-call"
WORKITEM = "/hooks/servicehooks/acme/workitem-closed"

WORKITEM_EXAMPLE = {  # the contract's example, as is
    "id": "ff34b1fb68cd4f7f9921e70c08fab7a7",
    "mediaType": "Webchat",
    "isOutbound": True,
    "createdAt": "2022-03-08T07:39:47.6052457Z",
    "closedAt": "2022-03-08T07:41:47.6052457Z",
    "agent": {"id": "638858857ff57ad8637a7528", "name": "Agent John", "email": "john@agent.com", "phone": "+123456789"},
    "customerIdentifier": "+31612345678",
    "customerId": "6d820576a3864160a715312b4e9ac376",
    "primaryConversationId": "48fad19d15104c8fbd7344853f35019e",
    "completionCode": "Success",
    "notes": "Job well done",
    "result": "Handled",
}


def key(secret):
    return {"x-api-key": secret}


def test_missing_key_401_wrong_key_403_unknown_brand_404(post_json, brand, other_brand, sh_key):
    payload = {"customerPhoneNumber": "+31612345678"}
    response = post_json(ABANDONED, payload)
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "not_authenticated", "message": "No x-api-key header provided."}}
    for wrong in ("nope", credential(other_brand, "servicehooks"), credential(brand, "m8com")):
        response = post_json(ABANDONED, payload, **key(wrong))
        assert response.status_code == 403
        assert response.json() == {"error": {"code": "forbidden", "message": "Invalid API key."}}
    response = post_json("/hooks/servicehooks/nope/abandoned-conversation", payload, **key(sh_key))
    assert response.status_code == 404
    assert InboundEvent.objects.count() == 0


def test_revoked_key_is_refused(post_json, brand):
    from hub.models import Credential

    secret = credential(brand, "servicehooks")
    Credential.objects.get(brand=brand, integration="servicehooks").revoke()
    assert post_json(ABANDONED, {"customerPhoneNumber": "+31612345678"}, **key(secret)).status_code == 403


def test_unknown_event_type_is_404(post_json, brand, sh_key):
    response = post_json("/hooks/servicehooks/acme/ticket-exploded", {"id": "1"}, **key(sh_key))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_event_type"


def test_abandoned_conversation_on_timeline_readable(post_json, brand, sh_key, maria, captured_events):
    payload = {
        "customerPhoneNumber": "+31 6 1234 5678",
        "timeInQueue": 134,
        "timestamp": "2026-11-22T21:00:00Z",
        "queue": "Sales",
        "someNewField": [1, 2],
    }
    response = post_json(ABANDONED, payload, **key(sh_key))
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert response.json() == {"id": event.pk, "status": "processed", "duplicate": False, "customerID": "K-1001"}
    assert event.payload == payload
    assert event.summary == "Abandoned in queue Sales after 2 min 14 s"
    activity = Activity.objects.get(customer=maria)
    assert (activity.kind, activity.header, activity.body) == (
        "NOTE",
        "Abandoned conversation",
        "Abandoned in queue Sales after 2 min 14 s",
    )
    assert activity.occurred_at == datetime(2026, 11, 22, 21, 0, tzinfo=UTC)
    maria.refresh_from_db()
    assert json.loads(maria.m8com_document)["activities"][0]["body"] == "Abandoned in queue Sales after 2 min 14 s"
    assert json.loads(maria.omnidesk_document)["timeline"][0]["message"] == (
        "Abandoned conversation: Abandoned in queue Sales after 2 min 14 s"
    )
    ((emitted, in_tx),) = captured_events
    assert in_tx and emitted.event_type == "conversation.abandoned"
    assert emitted.data["event"]["queue"] == "Sales"
    assert emitted.data["event"]["timeInQueue"] == 134
    assert emitted.data["event"]["someNewField"] == [1, 2]
    assert emitted.data["customer"]["name"] == "Maria Andersson"


@pytest.mark.parametrize(
    "payload",
    [
        {"CustomerPhoneNumber": "0612345678", "TimeInQueue": "00:02:14", "Timestamp": 1763845200, "Queue": "Sales"},
        {"customer_phone_number": "+31612345678", "time_in_queue_ms": 134000, "queue_name": "Sales"},
        {"phoneNumber": "+31612345678", "waitTime": "PT2M14S", "queue": {"name": "Sales", "id": "q1"}},
        {"phone": "+31612345678", "queueTime": "134", "queue": "Sales", "timestamp": "2026-11-22T21:00:00"},
    ],
)
def test_abandoned_conversation_field_spellings(post_json, brand, sh_key, maria, payload):
    response = post_json(ABANDONED, payload, **key(sh_key))
    assert response.status_code == 200, response.content
    assert response.json()["customerID"] == "K-1001"
    assert InboundEvent.objects.get().summary == "Abandoned in queue Sales after 2 min 14 s"


def test_abandoned_web_chat_without_phone_is_stored_unmatched(post_json, brand, sh_key, maria, captured_events):
    """The contract requires no field: a web chat abandoned in the queue has no
    phone number. Stored, 200, unmatched, the reason says why; rules still hear of it."""
    response = post_json(ABANDONED, {"queue": "Web chat", "timeInQueue": 10}, **key(sh_key))
    assert response.status_code == 200
    assert response.json()["status"] == "unmatched"
    event = InboundEvent.objects.get()
    assert event.state == "unmatched"
    assert event.summary == "Abandoned in queue Web chat after 10 s"
    assert event.error == "The event names no customer to match (no phone number, e-mail or customer id)."
    assert [e.event_type for e, _ in captured_events] == ["conversation.abandoned"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"customerPhoneNumber": "+31612345678", "timeInQueue": "a while"}, "timeInQueue"),
        ({"customerPhoneNumber": "+31612345678", "timestamp": "yesterday"}, "timestamp"),
        ({"customerPhoneNumber": {"deep": True}}, "customerPhoneNumber"),
        ({"customerPhoneNumber": "+31612345678", "queue": ["Sales"]}, "queue"),
    ],
)
def test_abandoned_conversation_wrong_types_are_stored_as_invalid(post_json, brand, sh_key, maria, payload, field):
    response = post_json(ABANDONED, payload, **key(sh_key))
    assert response.status_code == 202
    assert response.json()["status"] == "invalid"
    event = InboundEvent.objects.get()
    assert event.error.startswith(f"Fields that could not be read: {field}: ")
    assert event.payload == payload
    assert Activity.objects.count() == 0


def test_retried_event_with_same_id_or_same_content_is_stored_once(post_json, brand, sh_key, maria):
    with_id = {"id": "conv-1", "customerPhoneNumber": "+31612345678", "queue": "Sales", "timeInQueue": 5}
    assert post_json(ABANDONED, with_id, **key(sh_key)).json()["duplicate"] is False
    # same id, content differs a little (a re-sent notification with a new field): still one event
    assert post_json(ABANDONED, {**with_id, "retry": 1}, **key(sh_key)).json()["duplicate"] is True
    without_id = {"customerPhoneNumber": "+31612345678", "queue": "Support", "timeInQueue": 7}
    assert post_json(ABANDONED, without_id, **key(sh_key)).json()["duplicate"] is False
    # same content, keys in another order
    reordered = dict(reversed(list(without_id.items())))
    assert post_json(ABANDONED, reordered, **key(sh_key)).json()["duplicate"] is True
    assert InboundEvent.objects.count() == 2
    assert Activity.objects.filter(customer=maria).count() == 2


def test_outbound_call(post_json, brand, sh_key, maria, captured_events):
    payload = {"agentID": "agent-7", "targetPhoneNumber": "0612345678", "Timestamp": "2026-11-22T21:05:00Z"}
    response = post_json(OUTBOUND, payload, **key(sh_key))
    assert response.status_code == 200
    assert response.json()["customerID"] == "K-1001"
    activity = Activity.objects.get(customer=maria)
    assert (activity.kind, activity.to_number, activity.body) == (
        "CALL",
        "0612345678",
        "Outbound call to 0612345678 started by agent agent-7",
    )
    maria.refresh_from_db()
    m8com_call = json.loads(maria.m8com_document)["activities"][0]
    assert m8com_call["type"] == "CALL" and m8com_call["customHeader"] == "Outbound call (contact center)"
    ((emitted, _),) = captured_events
    assert emitted.event_type == "call.outbound"
    assert emitted.data["call"] == {
        "toNumber": "0612345678",
        "targetPhoneNumber": "0612345678",
        "agentId": "agent-7",
        "timestamp": "2026-11-22T21:05:00Z",
        "contactNumber": "0612345678",
    }


def test_workitem_closed_contract_example(post_json, brand, sh_key, maria, captured_events):
    response = post_json(WORKITEM, WORKITEM_EXAMPLE, **key(sh_key))
    assert response.status_code == 200
    assert response.json()["customerID"] == "K-1001"  # customerId is theirs; customerIdentifier matched the phone
    activity = Activity.objects.get(customer=maria)
    assert activity.header == "Work item closed"
    assert activity.body == (
        "Webchat work item (outbound) closed by Agent John after 2 min: Success (Handled)\nNotes: Job well done"
    )
    assert activity.external_id == "workitem-ff34b1fb68cd4f7f9921e70c08fab7a7"
    ((emitted, _),) = captured_events
    assert emitted.event_type == "workitem.closed"
    assert emitted.data["event"]["agent"]["name"] == "Agent John"
    assert emitted.data["event"]["completionCode"] == "Success"
    assert emitted.data["event"]["closedAt"] == "2022-03-08T07:41:47.605245Z"
    # a retry is the same work item
    assert post_json(WORKITEM, WORKITEM_EXAMPLE, **key(sh_key)).json()["duplicate"] is True
    assert Activity.objects.count() == 1


def test_workitem_closed_posted_as_printed_in_the_contract(post_json, brand, sh_key, maria):
    """The contract prints the example inside '"examples": [ ... ]'; posted that way it is the same work item."""
    wrapped = post_json(WORKITEM, {"examples": [WORKITEM_EXAMPLE]}, **key(sh_key))
    assert wrapped.status_code == 200
    assert (wrapped.json()["customerID"], wrapped.json()["duplicate"]) == ("K-1001", False)
    assert Activity.objects.get(customer=maria).external_id == "workitem-ff34b1fb68cd4f7f9921e70c08fab7a7"
    assert post_json(WORKITEM, WORKITEM_EXAMPLE, **key(sh_key)).json()["duplicate"] is True
    assert Activity.objects.count() == 1


def test_workitem_matched_by_customer_id(post_json, brand, sh_key):
    other = customer(brand, customer_id="6d820576a3864160a715312b4e9ac376")
    response = post_json(WORKITEM, {**WORKITEM_EXAMPLE, "customerIdentifier": "someone@else.example"}, **key(sh_key))
    assert response.json()["customerID"] == other.customer_id


def test_workitem_matched_by_email_identifier(post_json, brand, sh_key, maria):
    payload = {**WORKITEM_EXAMPLE, "customerId": "", "customerIdentifier": "Maria@Example.com"}
    assert post_json(WORKITEM, payload, **key(sh_key)).json()["customerID"] == "K-1001"


def test_workitem_without_id_is_stored_and_matched_and_bad_bool_is_invalid(post_json, brand, sh_key, maria):
    payload = {k: v for k, v in WORKITEM_EXAMPLE.items() if k != "id"}
    response = post_json(WORKITEM, payload, **key(sh_key))
    assert response.status_code == 200 and response.json()["customerID"] == "K-1001"
    assert Activity.objects.get(customer=maria).external_id.startswith("workitem-closed-")
    assert post_json(WORKITEM, payload, **key(sh_key)).json()["duplicate"] is True  # the content hash is its key
    response = post_json(WORKITEM, {**WORKITEM_EXAMPLE, "isOutbound": "maybe"}, **key(sh_key))
    assert response.status_code == 202 and response.json()["status"] == "invalid"
    assert "isOutbound: Expected true or false." in response.json()["reason"]
    assert InboundEvent.objects.count() == 2


def test_unmatched_service_hook_is_stored(post_json, brand, sh_key):
    response = post_json(OUTBOUND, {"agentID": "a", "targetPhoneNumber": "+31205550000"}, **key(sh_key))
    assert response.status_code == 200 and response.json()["status"] == "unmatched"
    assert InboundEvent.objects.get().state == "unmatched"


def test_body_errors(post_json, brand, sh_key):
    assert post_json(ABANDONED, "a=b", content_type="text/plain", **key(sh_key)).status_code == 415
    assert post_json(ABANDONED, "[1, 2", **key(sh_key)).status_code == 400
    assert InboundEvent.objects.count() == 0
    # Valid JSON, but not an object: stored, and kept as invalid for an admin.
    response = post_json(ABANDONED, [{"customerPhoneNumber": "1"}], **key(sh_key))
    assert response.status_code == 202
    assert response.json()["reason"] == "Fields that could not be read: non_field_errors: Expected a JSON object."
    assert InboundEvent.objects.get().state == "invalid"


def test_url_spellings_of_event_type(post_json, brand, sh_key, maria):
    response = post_json("/hooks/servicehooks/acme/AbandonedConversation", {"phone": "0612345678"}, **key(sh_key))
    assert response.status_code == 200
    assert InboundRequest.objects.get().endpoint == "servicehooks.abandoned-conversation"


def test_key_never_logged(post_json, brand, sh_key, maria):
    post_json(ABANDONED, {"customerPhoneNumber": "0612345678"}, **key(sh_key))
    post_json(ABANDONED + f"?key={sh_key}", {"customerPhoneNumber": "0612345678"}, **key(sh_key[:-1]))
    rows = list(InboundRequest.objects.order_by("pk"))
    assert [row.status for row in rows] == [200, 403]
    assert rows[0].credential_prefix == sh_key[:10]
    assert all(sh_key not in row.request_body + row.response_body + row.query for row in rows)


def test_brand_isolation_of_customers(post_json, brand, other_brand, sh_key):
    customer(other_brand, customer_id="G-1", addresses=[{"kind": "telephone", "value": "+31612345678"}])
    response = post_json(ABANDONED, {"customerPhoneNumber": "+31612345678"}, **key(sh_key))
    assert response.json()["status"] == "unmatched"
    assert Activity.objects.count() == 0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (134, 134),
        ("134", 134),
        ("02:14", 134),
        ("00:02:14", 134),
        ("PT2M14S", 134),
        ("P0DT1H", 3600),
        (True, None),
        ("PT", None),
        ("-5", None),
        ("2 minutes", None),
    ],
)
def test_parse_seconds(value, seconds):
    assert parse_seconds(value) == seconds


def test_parse_time():
    assert parse_time(1763845200) == parse_time(1763845200000) == datetime(2025, 11, 22, 21, 0, tzinfo=UTC)
    assert parse_time("2022-03-08T07:39:47.6052457Z") == datetime(2022, 3, 8, 7, 39, 47, 605245, tzinfo=UTC)
    assert parse_time("2022-03-08T08:39:47+01:00") == datetime(2022, 3, 8, 7, 39, 47, tzinfo=UTC)
    assert parse_time("nonsense") is None and parse_time(None) is None and parse_time(False) is None


def test_long_ids_get_distinct_keys(post_json, brand, sh_key):
    long_a, long_b = "a" * 300 + "1", "a" * 300 + "2"
    for event_id in (long_a, long_b, long_a):
        post_json(OUTBOUND, {"id": event_id, "targetPhoneNumber": "+31205550000"}, **key(sh_key))
    keys = list(InboundEvent.objects.values_list("idempotency_key", flat=True))
    assert len(keys) == 2 and all(len(k) <= 200 for k in keys)


def test_nul_in_a_key_is_stored(post_json, brand, sh_key, maria):
    response = post_json(ABANDONED, {"phone": "+31612345678", "odd\u0000key": 1}, **key(sh_key))
    assert response.status_code == 200 and response.json()["customerID"] == "K-1001"
    event = InboundEvent.objects.get()
    assert event.payload == {"phone": "+31612345678", "odd\ufffdkey": 1}
    assert '"odd\\u0000key"' in event.body
