"""The one accept path, attacked: valid JSON a platform sends is stored raw and
answered 2xx, whatever its fields hold; interpretation comes after storage and
may fail without losing the event; refusals are 4xx JSON from one vocabulary.
Runs on SQLite and on PostgreSQL (DATABASE_URL), where NUL and deep nesting bite."""

from __future__ import annotations

import json
import logging

import pytest

from customers.models import Activity
from hooks.inbound import registry
from hooks.inbound.models import InboundEvent
from hooks.inbound.registry import Interpreter
from hooks.inbound.services import MAX_PAYLOAD_DEPTH
from synclog.models import InboundRequest
from tests.factories import credential

pytestmark = pytest.mark.django_db

CALLLOG = "/hooks/m8com/acme/calllog"
ABANDONED = "/hooks/servicehooks/acme/abandoned-conversation"
OUTBOUND = "/hooks/servicehooks/acme/outbound-call"
WORKITEM = "/hooks/servicehooks/acme/workitem-closed"
CALL = {
    "fromNumber": "+46 70 123 45 67",
    "toNumber": "+31 6 1234 5678",
    "duration": 134_000,
    "startTime": 1_763_800_000_000,
    "callType": "Inbound",
    "body": "Call type: Inbound",
}


def nested(depth: int) -> str:
    """A JSON array nested *depth* levels (written as text: Python's json would recurse)."""
    return "[" * depth + "]" * depth


def with_raw(payload: dict, name: str, raw_value: str) -> str:
    """*payload* as JSON text with field *name* set to the raw JSON text *raw_value*."""
    text = json.dumps({**payload, name: "@@RAW@@"})
    return text.replace('"@@RAW@@"', raw_value)


@pytest.fixture
def post(client, brand):
    """POST raw JSON text to an event endpoint with the right key."""
    keys = {"m8com": credential(brand, "m8com"), "servicehooks": credential(brand, "servicehooks")}

    def send(url: str, text: str, **headers):
        if "/m8com/" in url:
            headers.setdefault("Authorization", f"Bearer {keys['m8com']}")
        else:
            headers.setdefault("x-api-key", keys["servicehooks"])
        return client.post(url, data=text, content_type="application/json", headers=headers)

    send.keys = keys  # type: ignore[attr-defined]
    return send


def stored(response) -> InboundEvent:
    """The event a 2xx answer names, checked to be in the database."""
    assert response.status_code in (200, 202), response.content
    return InboundEvent.objects.get(pk=response.json()["id"])


# ---------------------------------------------------------------- hostile but valid bodies


@pytest.mark.parametrize("depth", [254, 255, 600, 1024])
def test_deeply_nested_call_log_is_stored_raw_and_processed(post, maria, depth):
    text = with_raw(CALL, "extra", nested(depth - 1))
    response = post(CALLLOG, text)
    assert response.status_code == 200
    event = stored(response)
    assert (event.state, event.customer_id) == ("processed", maria.pk)
    assert event.body == text  # exactly as received
    note = f"(nested deeper than {MAX_PAYLOAD_DEPTH} levels: see the body as received)"
    assert json.dumps(event.payload["extra"]).count("[") == MAX_PAYLOAD_DEPTH - 1
    assert note in json.dumps(event.payload)
    # A retry of the same bytes is the same event.
    assert post(CALLLOG, text).json()["duplicate"] is True
    assert InboundEvent.objects.count() == 1 and Activity.objects.count() == 1


@pytest.mark.parametrize("depth", [254, 1024])
def test_deeply_nested_service_hook_body_is_stored_as_invalid(post, depth):
    text = nested(depth)
    response = post(ABANDONED, text)
    assert response.status_code == 202
    event = stored(response)
    assert event.state == "invalid" and event.body == text
    assert "Expected a JSON object" in response.json()["reason"]


def test_nesting_beyond_the_parser_limit_is_refused_and_says_so(post):
    response = post(ABANDONED, nested(1025))
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_json",
        "message": "The body is nested deeper than 1,024 levels.",
    }
    assert InboundEvent.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        '{"phone": "+31612345678"}'.encode("utf-16"),
        b"\xef\xbb\xbf{}",
        b'{"phone": "\xed\xa0\x80"}',
        b'{"phone": "a\x00b"}',
        b'{"phone": NaN}',
    ],
)
def test_what_is_not_json_on_the_wire_is_400(client, post, body):
    """RFC 8259: UTF-8, no BOM, control characters escaped, no NaN."""
    response = post(ABANDONED, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert InboundEvent.objects.count() == 0


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
@pytest.mark.parametrize(("url", "field"), [(ABANDONED, "timestamp"), (OUTBOUND, "Timestamp"), (WORKITEM, "closedAt")])
def test_a_time_no_calendar_holds_is_stored_and_shown_invalid(post, maria, stamp, url, field):
    payload = {"customerPhoneNumber": "+31612345678", "targetPhoneNumber": "+31612345678", "id": "w1", field: stamp}
    response = post(url, json.dumps(payload))
    assert response.status_code == 202
    event = stored(response)
    assert event.state == "invalid"
    assert event.error.startswith(f"Fields that could not be read: {field}: Expected an ISO 8601 time")
    assert event.payload[field] == stamp
    assert Activity.objects.count() == 0


def test_year_one_in_utc_is_a_time_and_goes_on_the_timeline(post, maria):
    payload = {"customerPhoneNumber": "+31612345678", "timestamp": "0001-01-01T00:00:00Z"}
    response = post(ABANDONED, json.dumps(payload))
    assert response.status_code == 200 and response.json()["status"] == "processed"
    assert Activity.objects.get().occurred_at.year == 1


@pytest.mark.parametrize("wait", ['"Infinity"', '"-Infinity"', '"NaN"', "1e308", "1e400"])
def test_an_endless_time_in_queue_is_stored_and_shown_invalid(post, maria, wait):
    text = with_raw({"customerPhoneNumber": "+31612345678"}, "timeInQueue", wait)
    response = post(ABANDONED, text)
    assert response.status_code == 202
    event = stored(response)
    assert event.body == text
    assert event.error.startswith("Fields that could not be read: timeInQueue: Expected a duration")


def test_outbound_call_without_a_target_is_stored_unmatched(post, maria, captured_events):
    response = post(OUTBOUND, json.dumps({"agentID": "agent-7", "Timestamp": "2026-11-22T21:05:00Z"}))
    assert response.status_code == 200
    event = stored(response)
    assert (event.state, event.summary) == ("unmatched", "Outbound call started by agent agent-7")
    assert event.error.startswith("The event names no customer to match")
    assert [e.event_type for e, _ in captured_events] == ["call.outbound"]


def test_an_empty_object_on_every_endpoint_is_stored(post):
    for url in (CALLLOG, ABANDONED, OUTBOUND, WORKITEM):
        response = post(url, "{}")
        assert response.status_code in (200, 202), (url, response.content)
        assert stored(response).body == "{}"
    assert InboundEvent.objects.count() == 4


@pytest.mark.parametrize(
    "raw_value",
    ['"\\ud800"', '"\\u0000"', "123456789012345678901234567890", "1e400", "-1e400", "1" * 5000, '"\\udfff\\ud800"'],
)
def test_numbers_and_strings_python_would_choke_on_are_stored(post, maria, raw_value):
    """Valid JSON that orjson refuses (1e400, lone surrogates) or PostgreSQL
    cannot store (NUL) is stored: the body as received, the payload storable."""
    text = with_raw({"customerPhoneNumber": "+31612345678", "queue": "Sales"}, "note", raw_value)
    response = post(ABANDONED, text)
    assert response.status_code == 200, response.content
    event = stored(response)
    assert event.body == text and event.state == "processed"
    # A different body with the same fields is not taken for a retry of this one.
    other = post(ABANDONED, with_raw({"customerPhoneNumber": "+31612345678", "queue": "Sales"}, "note", "7"))
    assert other.json()["duplicate"] is False


def test_nul_inside_a_service_hook_phone_number_is_stored(post):
    response = post(ABANDONED, '{"customerPhoneNumber": "+3161234\\u00005678"}')
    assert response.status_code == 200
    event = stored(response)
    assert event.payload == {"customerPhoneNumber": "+3161234\ufffd5678"}
    assert event.state == "unmatched"


def test_headers_are_stored_with_secrets_masked(post):
    response = post(ABANDONED, '{"phone": "+31612345678"}', **{"X-Trace": "t-1", "Cookie": "session=abc"})
    event = stored(response)
    assert event.headers["X-Trace"] == "t-1"
    assert event.headers["X-Api-Key"] == event.headers["Cookie"] == "********"
    assert post.keys["servicehooks"] not in json.dumps(event.headers)
    response = post(CALLLOG, json.dumps(CALL))
    assert stored(response).headers["Authorization"] == "********"


# ---------------------------------------------------------------- store before interpreting


def _replace_interpreter(monkeypatch, source: str, **changes) -> None:
    current = registry.interpreter_for(source)
    fields = {"source": current.source, "event_type": current.event_type, "interpret": current.interpret}
    fields["identify"] = current.identify
    monkeypatch.setitem(registry._interpreters, source, Interpreter(**{**fields, **changes}))


def boom(payload):
    raise RuntimeError("interpreter exploded")


def test_an_interpreter_that_raises_leaves_the_event_stored_and_answers_202(post, monkeypatch, maria, caplog):
    """Fails if interpretation moves before storage: the raise would lose the event."""
    _replace_interpreter(monkeypatch, "servicehooks.abandoned-conversation", interpret=boom)
    text = '{"customerPhoneNumber": "+31612345678", "queue": "Sales"}'
    with caplog.at_level(logging.ERROR):
        response = post(ABANDONED, text)
    assert response.status_code == 202
    assert response.json() == {"id": response.json()["id"], "status": "failed", "duplicate": False, "customerID": None}
    event = stored(response)
    assert (event.state, event.error, event.body) == ("failed", "RuntimeError: interpreter exploded", text)
    assert f"Processing inbound event {event.pk} failed" in caplog.text
    assert Activity.objects.count() == 0

    monkeypatch.undo()  # the interpreter is fixed; the platform's retry heals the event
    again = post(ABANDONED, text)
    assert (again.status_code, again.json()["status"], again.json()["duplicate"]) == (200, "processed", True)
    assert InboundEvent.objects.count() == 1 and Activity.objects.count() == 1


def test_an_identify_that_raises_costs_the_key_not_the_event(post, monkeypatch):
    _replace_interpreter(monkeypatch, "m8com.calllog", identify=boom)
    response = post(CALLLOG, json.dumps(CALL))
    event = stored(response)
    assert event.idempotency_key == f"m8com.calllog:sha256:{event.content_hash}"
    assert post(CALLLOG, json.dumps(CALL)).json()["duplicate"] is True


def test_the_view_interprets_once(post, monkeypatch):
    calls = []
    current = registry.interpreter_for("servicehooks.outbound-call").interpret

    def counting(payload):
        calls.append(payload)
        return current(payload)

    _replace_interpreter(monkeypatch, "servicehooks.outbound-call", interpret=counting)
    post(OUTBOUND, '{"targetPhoneNumber": "+31205550000"}')
    assert len(calls) == 1


def test_a_database_failure_before_storage_is_a_logged_json_500(post, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(InboundEvent.objects, "create", refuse)
    with caplog.at_level(logging.ERROR):
        response = post(ABANDONED, '{"phone": "+31612345678"}')
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "server_error", "message": "An unexpected error occurred."}}
    assert "servicehooks.abandoned-conversation failed" in caplog.text


def test_admin_reprocess_finishes_a_failed_event(admin_client, post, monkeypatch, maria):
    _replace_interpreter(monkeypatch, "servicehooks.abandoned-conversation", interpret=boom)
    failed = stored(post(ABANDONED, '{"customerPhoneNumber": "+31612345678"}'))
    monkeypatch.undo()
    response = admin_client.post(
        "/admin/inbound/inboundevent/",
        {"action": "reprocess", "_selected_action": [failed.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Reprocessed: 1 processed." in response.content.decode()
    failed.refresh_from_db()
    assert (failed.state, failed.customer_id, failed.attempts) == ("processed", maria.pk, 2)
    page = admin_client.get(f"/admin/inbound/inboundevent/{failed.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and "Body (exactly as received)" in html
    assert "{&quot;customerPhoneNumber&quot;: &quot;+31612345678&quot;}" in html


# ---------------------------------------------------------------- every /hooks/ endpoint: 4xx, never 500


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        ("/hooks/omnidesk/ac%00me/customerlookup", "omnidesk"),
        ("/hooks/m8com/ac%00me/lookup", "m8com"),
    ],
)
def test_nul_in_the_brand_of_a_lookup_path_is_404_and_logged(client, brand, path, auth):
    key = credential(brand, auth)
    if auth == "omnidesk":
        response = client.get(path, {"key": key, "primaryID": "1"})
    else:
        response = client.get(path, {"fromNumber": "+31612345678"}, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "No such brand."}}
    row = InboundRequest.objects.get()
    assert (row.status, row.path) == (404, path)  # the NUL written as it was sent


@pytest.mark.parametrize("path", ["/hooks/m8com/ac%00me/calllog", "/hooks/servicehooks/ac%00me/outbound-call"])
def test_nul_in_the_brand_of_an_event_path_is_a_json_404(client, brand, path):
    response = client.post(path, data="{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_too_many_query_parameters_are_400_on_every_endpoint(client, brand, post):
    omnidesk = credential(brand, "omnidesk")
    many = "&".join(f"p{i}=1" for i in range(1001))
    expected = {
        "error": {
            "code": "too_many_parameters",
            "message": "The request has too many query or form parameters (at most 1,000).",
        }
    }
    response = client.get(f"/hooks/omnidesk/acme/customerlookup?key={omnidesk}&primaryID=1&{many}")
    assert (response.status_code, response.json()) == (400, expected)
    response = client.get(
        f"/hooks/m8com/acme/lookup?fromNumber=%2B31612345678&{many}",
        HTTP_AUTHORIZATION=f"Bearer {post.keys['m8com']}",
    )
    assert (response.status_code, response.json()) == (400, expected)
    # The event endpoints never read the query string: the event is stored.
    assert post(f"{ABANDONED}?{many}", '{"phone": "+31612345678"}').status_code == 200
    assert [row.status for row in InboundRequest.objects.order_by("pk")] == [400, 400, 200]


def test_events_stored_before_the_raw_body_was_kept_get_their_payload_as_body(brand):
    import importlib

    from django.apps import apps
    from django.utils import timezone

    migration = importlib.import_module("hooks.inbound.migrations.0002_inbound_event_raw_body")
    common = {"brand": brand, "source": "m8com.calllog", "event_type": "call.logged", "received_at": timezone.now()}
    old = InboundEvent.objects.create(
        idempotency_key="k1", content_hash="h1", payload={"phone": "+31612345678", "note": "é"}, **common
    )
    kept = InboundEvent.objects.create(
        idempotency_key="k2", content_hash="h2", payload={}, body='{"as": "received"}', **common
    )
    migration.body_from_payload(apps, None)
    old.refresh_from_db()
    kept.refresh_from_db()
    assert json.loads(old.body) == {"phone": "+31612345678", "note": "é"}
    assert kept.body == '{"as": "received"}'
