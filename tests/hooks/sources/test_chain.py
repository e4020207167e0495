"""The lookup chain against a real fake CRM on 127.0.0.1: answers in each
platform's exact shape, order, parallel priority, timeouts and the budget."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hooks.sources.models import SourceCall
from hooks.sources.records import calls_flush
from synclog.models import InboundRequest
from tests.factories import customer

from .conftest import CONTACT, MAPPING, found, make_source

PHONE = "+31201234567"
MAPPING_ONE = {key: value for key, value in MAPPING.items() if key != "record"}  # the answer is the contact


def omnidesk(client, key, address=PHONE, channel="phoneNumber"):
    return client.get(
        "/hooks/omnidesk/acme/customerlookup", {"key": key, "channelAddressType": channel, "address": address}
    )


def m8com(client, key, from_number=PHONE, to_number=None):
    params = {"fromNumber": from_number}
    if to_number:
        params["toNumber"] = to_number
    return client.get("/hooks/m8com/acme/lookup", params, headers={"Authorization": f"Bearer {key}"})


ADA_OMNIDESK = [
    {
        "addresses": [
            {"address": "ada@example.org", "type": "email"},
            {"address": "+31201234567", "type": "telephone"},
        ],
        "customerFirstname": "Ada",
        "customerID": "crm-4711",
        "customerLastname": "Lovelace",
        "customFields": [{"tier": "gold"}],
        "timeline": [
            {
                "externalID": "d-1",
                "lastUpdate": "2026-11-20 11:00:00",  # the brand's time zone (Amsterdam, UTC+1)
                "type": "deal",
                "message": "Renewal 2027: Price agreed",
                "source": "CRM",
                "url": "",
            }
        ],
    }
]


def ada_stored(brand):
    """The same contact stored in the hub, made through the customers service."""
    closed = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    return customer(
        brand,
        customer_id="crm-4711",
        first_name="Ada",
        last_name="Lovelace",
        company_name="Analytical Engines BV",
        job_title="Engineer",
        addresses=[{"kind": "email", "value": "ada@example.org"}, {"kind": "telephone", "value": "+31 20 123 4567"}],
        custom_fields=[{"tier": "gold"}],
        activities=[
            {
                "kind": "DEAL",
                "occurred_at": closed,
                "close_date": closed,
                "external_id": "d-1",
                "source": "CRM",
                "header": "Renewal 2027",
                "body": "Price agreed",
                "amount": Decimal("1200.5"),
                "currency": "EUR",
            }
        ],
    )


def test_omnidesk_miss_in_the_hub_is_answered_from_the_source_in_the_contract_shape(client, brand, crm, omnidesk_key):
    crm.route("/contacts/search", found())
    make_source(brand, crm, name="CRM", auth_type="bearer", api_key="tok-1234567890")
    response = omnidesk(client, omnidesk_key)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == ADA_OMNIDESK
    (request,) = crm.hits("/contacts/search")
    assert request["query"] == {"phone": PHONE}
    assert request["headers"]["Authorization"] == "Bearer tok-1234567890"
    log = InboundRequest.objects.get(endpoint="omnidesk.lookup")
    assert log.customers_returned == 1 and "lookup source 'CRM'" in log.note
    # Exactly what the hub answers once the same contact is stored.
    ada_stored(brand)
    assert omnidesk(client, omnidesk_key).json() == ADA_OMNIDESK
    assert len(crm.hits("/contacts/search")) == 1


def test_m8com_miss_in_the_hub_is_answered_from_the_source_as_a_stored_contact_would_be(client, brand, crm, m8com_key):
    brand.create_activity_urls = [{"name": "New note", "url": "https://crm.example.com/c/{{ customer.customer_id }}"}]
    brand.save()
    crm.route("/contacts/search", found())
    make_source(brand, crm, name="CRM")
    upstream = m8com(client, m8com_key)
    assert upstream.status_code == 200
    contact = upstream.json()
    assert contact == {
        "displayName": "Ada Lovelace",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "emails": [{"id": "ada@example.org"}],
        "phoneNumbers": [{"id": "+31201234567"}],
        "companyInfo": {"name": "Analytical Engines BV", "title": "Engineer"},
        "fields": [{"title": "tier", "comment": "gold"}],
        "activities": [
            {
                "type": "DEAL",
                "body": "Price agreed",
                "timestamp": 1795168800000,
                "closeDate": 1795168800000,
                "currency": "EUR",
                "amount": 1200.5,
                "header": "Renewal 2027",
            }
        ],
        "createActivityUrls": [{"name": "New note", "url": "https://crm.example.com/c/crm-4711"}],
    }
    ada_stored(brand)
    stored = m8com(client, m8com_key)
    assert stored.json() == contact
    assert len(crm.hits("/contacts/search")) == 1


def test_a_customer_the_hub_knows_never_reaches_the_sources_and_costs_no_extra_query(
    client, brand, other_brand, crm, m8com_key
):
    from tests.factories import credential

    ada_stored(brand)
    ada_stored(other_brand)
    other_key = credential(other_brand, "m8com")
    make_source(brand, crm, name="CRM")

    def queries(slug, key):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(
                f"/hooks/m8com/{slug}/lookup", {"fromNumber": PHONE}, headers={"Authorization": f"Bearer {key}"}
            )
        assert response.status_code == 200
        return len(captured)

    assert queries("acme", m8com_key) == queries("globex", other_key)
    assert crm.requests == []


def test_a_slow_source_is_cut_at_its_timeout_and_the_next_one_answers(client, brand, crm, m8com_key):
    crm.route("/slow", found(), delay=1.0)
    crm.route("/fast", found({**CONTACT, "id": "fast-1"}))
    make_source(brand, crm, "/slow", name="Slow", order=1, timeout_ms=300)
    make_source(brand, crm, "/fast", name="Fast", order=2)
    started = time.perf_counter()
    response = m8com(client, m8com_key)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.json()["displayName"] == "Ada Lovelace"
    assert "Fast" in InboundRequest.objects.get().note
    assert 0.3 <= elapsed < 0.3 + 0.5
    calls_flush()
    assert SourceCall.objects.get(source_name="Fast").outcome == "hit"


def test_the_brand_budget_bounds_the_whole_lookup(client, brand, crm, m8com_key):
    brand.lookup_budget_ms = 500
    brand.save()
    crm.route("/hang", found(), delay=1.5)
    crm.route("/never", found())
    make_source(brand, crm, "/hang", name="Hangs", order=1, timeout_ms=1200)
    make_source(brand, crm, "/never", name="After the budget", order=2)
    started = time.perf_counter()
    response = m8com(client, m8com_key)
    elapsed = time.perf_counter() - started
    assert response.status_code == 404
    assert response.json() == {"message": "No contact found"}
    assert elapsed < 0.5 + 0.25  # the budget plus a small margin
    assert crm.hits("/never") == []  # no time was left for it


def test_sequential_order_first_matching_source_wins_and_later_ones_are_not_asked(client, brand, crm, omnidesk_key):
    crm.route("/miss", {"results": []})
    crm.route("/first", found({**CONTACT, "id": "first"}))
    crm.route("/second", found({**CONTACT, "id": "second"}))
    make_source(brand, crm, "/second", name="Second", order=3)
    make_source(brand, crm, "/miss", name="Misses", order=1)
    make_source(brand, crm, "/first", name="First", order=2)
    assert omnidesk(client, omnidesk_key).json()[0]["customerID"] == "first"
    assert len(crm.hits("/miss")) == 1 and len(crm.hits("/first")) == 1
    assert crm.hits("/second") == []


def test_disabled_sources_and_sources_without_the_tag_are_not_asked(client, brand, crm, omnidesk_key):
    crm.route("/off", found())
    crm.route("/by-email", found())
    make_source(brand, crm, "/off", name="Off", enabled=False)
    make_source(brand, crm, "/by-email", name="E-mail only", url=f"{crm.url}/by-email?email={{{{ email }}}}")
    assert omnidesk(client, omnidesk_key).json() == []
    assert crm.requests == []
    assert (
        omnidesk(client, omnidesk_key, address="Ada@Example.org", channel="email").json()[0]["customerID"] == "crm-4711"
    )
    assert crm.hits("/by-email")[0]["query"] == {"email": "ada@example.org"}


@pytest.mark.parametrize(("window_ms", "winner"), [(800, "first"), (50, "second")])
def test_parallel_mode_keeps_priority_within_the_window(client, brand, crm, omnidesk_key, window_ms, winner):
    brand.lookup_parallel = True
    brand.lookup_priority_window_ms = window_ms
    brand.save()
    crm.route("/first", found({**CONTACT, "id": "first"}), delay=0.4)
    crm.route("/second", found({**CONTACT, "id": "second"}))
    make_source(brand, crm, "/first", name="First", order=1)
    make_source(brand, crm, "/second", name="Second", order=2)
    started = time.perf_counter()
    response = omnidesk(client, omnidesk_key)
    elapsed = time.perf_counter() - started
    assert response.json()[0]["customerID"] == winner
    # Both were asked at once: never the sum of their times.
    assert len(crm.hits("/first")) == 1 and len(crm.hits("/second")) == 1
    if winner == "first":
        assert 0.4 <= elapsed < 0.4 + 0.4
    else:
        assert elapsed < 0.35


def test_parallel_mode_a_slow_first_source_past_its_timeout_loses_to_the_second(client, brand, crm, omnidesk_key):
    brand.lookup_parallel = True
    brand.lookup_priority_window_ms = 2000
    brand.save()
    crm.route("/first", found({**CONTACT, "id": "first"}), delay=2.0)
    crm.route("/second", found({**CONTACT, "id": "second"}))
    make_source(brand, crm, "/first", name="First", order=1, timeout_ms=300)
    make_source(brand, crm, "/second", name="Second", order=2)
    started = time.perf_counter()
    assert omnidesk(client, omnidesk_key).json()[0]["customerID"] == "second"
    assert time.perf_counter() - started < 0.3 + 0.4


def test_error_answers_are_misses_for_the_platform_and_errors_in_the_log(client, brand, crm, m8com_key):
    crm.route("/broken", b"<html>oops</html>", status=200)
    crm.route("/down", {"error": "maintenance"}, status=503)
    crm.route("/big", {"results": [CONTACT], "padding": "x" * (300 * 1024)})
    make_source(brand, crm, "/broken", name="Not JSON", order=1)
    make_source(brand, crm, "/down", name="Down", order=2)
    make_source(brand, crm, "/big", name="Too big", order=3)
    assert m8com(client, m8com_key).status_code == 404
    calls_flush()
    rows = {row.source_name: row for row in SourceCall.objects.all()}
    assert rows["Not JSON"].outcome == "error" and "not JSON" in rows["Not JSON"].error
    assert rows["Down"].outcome == "error" and rows["Down"].response_status == 503
    assert rows["Too big"].outcome == "error" and "larger than" in rows["Too big"].error


def test_the_ssrf_guard_refuses_private_addresses_at_call_time(client, brand, crm, m8com_key, settings):
    crm.route("/contacts/search", found())
    source = make_source(brand, crm, name="Internal")  # saved while private destinations were allowed
    settings.HUB_ALLOW_PRIVATE_DESTINATIONS = False
    assert m8com(client, m8com_key).status_code == 404
    assert crm.requests == []
    calls_flush()
    row = SourceCall.objects.get(source=source)
    assert row.outcome == "error" and "Refused" in row.error and "loopback" in row.error


def test_to_number_is_asked_when_from_number_is_unknown_upstream(client, brand, crm, m8com_key):
    crm.route("/contacts/search", {"results": []})
    make_source(brand, crm, name="CRM")
    assert m8com(client, m8com_key, to_number="+31 6 9999 0000").status_code == 404
    assert [r["query"]["phone"] for r in crm.requests] == [PHONE, "+31699990000"]


def test_omnidesk_primary_id_asks_the_sources_that_take_a_customer_id(client, brand, crm, omnidesk_key):
    crm.route("/contacts/4711", {**CONTACT, "id": "4711"})
    make_source(brand, crm, "/phone", name="By phone")
    make_source(
        brand, crm, "/contacts", name="By id", url=f"{crm.url}/contacts/{{{{ customer_id }}}}", mapping={**MAPPING_ONE}
    )
    response = client.get("/hooks/omnidesk/acme/customerlookup", {"key": omnidesk_key, "primaryID": "4711"})
    assert response.json()[0]["customerID"] == "4711"
    assert [r["path"] for r in crm.requests] == ["/contacts/4711"]


def test_a_cached_answer_is_built_once_per_process(client, brand, crm, m8com_key, monkeypatch):
    from hooks.sources import services

    crm.route("/contacts/search", found())
    make_source(brand, crm, name="CRM")
    builds = []
    original = services.answer_build
    monkeypatch.setattr(services, "answer_build", lambda **kw: builds.append(1) or original(**kw))
    answers = [m8com(client, m8com_key).json() for _ in range(3)]
    assert answers[0] == answers[1] == answers[2]
    assert len(builds) == 1 and len(crm.requests) == 1
