"""Logs for auditors (issue 6): filters, search, the unified list, CSV exports,
the request/response detail page, roles and brand scoping."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from hooks.inbound.models import InboundEvent
from hub.models import Role
from synclog.models import DeliveryAttempt, InboundRequest
from tests import factories

from . import factories as logs

pytestmark = pytest.mark.django_db

INBOUND_LIST = "/admin/synclog/inboundrequest/"
ATTEMPT_LIST = "/admin/synclog/deliveryattempt/"
LOGS = "/admin/logs/"


def listed(response) -> set[int]:
    assert response.status_code == 200, response.get("Location")
    return {row.pk for row in response.context["cl"].result_list}


def unified(response) -> list[tuple[str, int]]:
    assert response.status_code == 200, response.get("Location")
    return [(row.direction, row.pk) for row in response.context["rows"]]


def csv_rows(response) -> list[dict]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def day(days_ago: int) -> str:
    return (timezone.localdate() - timedelta(days=days_ago)).isoformat()


@pytest.fixture
def auditor(client, brand):
    user = factories.member(brand, Role.AUDITOR, username="audrey")
    client.force_login(user)
    return user


@pytest.fixture
def seeded(brand, other_brand):
    """Inbound calls and delivery attempts of two brands, on several days."""
    maria = factories.customer(brand, customer_id="K-1001", first_name="Maria")
    john = factories.customer(brand, customer_id="K-2002", first_name="John")
    foreign = factories.customer(other_brand, customer_id="K-1001", first_name="Other Maria")
    rows = {
        "omni_ok": logs.inbound(brand, customer=maria, query="email=maria%40example.com&key=********"),
        "omni_403": logs.inbound(brand, status=403, ago=timedelta(days=3), note="ticketID=T-9"),
        "m8_404": logs.inbound(brand, endpoint="m8com.lookup", status=404, ago=timedelta(hours=2)),
        "m8_500": logs.inbound(brand, endpoint="m8com.lookup", status=500, ago=timedelta(days=10)),
        "hook": logs.inbound(
            brand, endpoint="servicehooks.outbound-call", status=200, customer=john, ago=timedelta(hours=3)
        ),
        "foreign_in": logs.inbound(other_brand, customer=foreign),
    }
    crm = logs.delivery(brand, customer_id=maria.pk, source_id=11, source_name="Acme CRM — Create Users")
    rule = logs.delivery(
        brand, source_kind="rule", source_id=5, source_name="Telegram on missed call", event_type="call.logged"
    )
    foreign_delivery = logs.delivery(other_brand, customer_id=foreign.pk, source_name="Globex CRM")
    rows.update(
        {
            "crm_500": logs.attempt(crm, status=500, ago=timedelta(days=2)),
            "crm_201": logs.attempt(crm, status=201, number=2, ago=timedelta(hours=4)),
            "rule_timeout": logs.attempt(rule, status=None, error="Timed out after 10 s", ago=timedelta(hours=5)),
            "foreign_out": logs.attempt(foreign_delivery, status=200),
        }
    )
    return {key: row.pk for key, row in rows.items()} | {"crm_message": crm.message_id, "maria": maria}


# ---------------------------------------------------------------- filters and search


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"omni_ok", "omni_403", "m8_404", "m8_500", "hook"}),
        ("integration=omnidesk", {"omni_ok", "omni_403"}),
        ("integration=m8com.lookup", {"m8_404", "m8_500"}),
        ("integration=servicehooks", {"hook"}),
        ("outcome=failed", {"omni_403", "m8_500"}),  # M8Com 404 is "no contact found": a correct answer
        ("outcome=ok", {"omni_ok", "m8_404", "hook"}),
        ("outcome=4xx", {"omni_403", "m8_404"}),
        ("outcome=5xx", {"m8_500"}),
        ("customer=K-1001", {"omni_ok"}),
        ("q=K-2002", {"hook"}),
        ("q=T-9", {"omni_403"}),
        ("q=/hooks/m8com", {"m8_404", "m8_500"}),
        ("from={d1}", {"omni_ok", "m8_404", "hook"}),
        ("from={d5}&to={d2}", {"omni_403"}),
        ("integration=crm_action", set()),
    ],
)
def test_inbound_list_filters_and_search_select_exactly_the_right_rows(client, auditor, seeded, query, expected):
    # Rows written hours ago may fall on yesterday just after midnight: "from" is yesterday.
    query = query.format(d1=day(1), d2=day(2), d5=day(5))
    assert listed(client.get(f"{INBOUND_LIST}?{query}")) == {seeded[key] for key in expected}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"crm_500", "crm_201", "rule_timeout"}),
        ("integration=crm_action", {"crm_500", "crm_201"}),
        ("integration=rule", {"rule_timeout"}),
        ("source=rule:5", {"rule_timeout"}),
        ("source=crm_action:11", {"crm_500", "crm_201"}),
        ("outcome=failed", {"crm_500", "rule_timeout"}),
        ("outcome=none", {"rule_timeout"}),
        ("outcome=2xx", {"crm_201"}),
        ("customer=K-1001", {"crm_500", "crm_201"}),
        ("q=K-1001", {"crm_500", "crm_201"}),
        ("q=Telegram", {"rule_timeout"}),
        ("q=Timed out", {"rule_timeout"}),
        ("q=crm.example.com", {"crm_500", "crm_201", "rule_timeout"}),
        ("integration=omnidesk", set()),
    ],
)
def test_attempt_list_filters_and_search_select_exactly_the_right_rows(client, auditor, seeded, query, expected):
    assert listed(client.get(f"{ATTEMPT_LIST}?{query}")) == {seeded[key] for key in expected}


def test_attempt_list_finds_a_delivery_by_message_id(client, auditor, seeded):
    assert listed(client.get(ATTEMPT_LIST, {"q": seeded["crm_message"]})) == {seeded["crm_500"], seeded["crm_201"]}


def test_date_range_filter_with_a_bad_date_says_so_and_lists_nothing(client, auditor, seeded):
    response = client.get(INBOUND_LIST, {"from": "30-11-2026"})
    assert listed(response) == set()
    assert "Not a date: from" in response.content.decode()


def test_unified_list_mixes_both_directions_newest_first(client, auditor, seeded):
    rows = unified(client.get(LOGS))
    assert rows == [
        ("inbound", seeded["omni_ok"]),
        ("inbound", seeded["m8_404"]),
        ("inbound", seeded["hook"]),
        ("outbound", seeded["crm_201"]),
        ("outbound", seeded["rule_timeout"]),
        ("outbound", seeded["crm_500"]),
        ("inbound", seeded["omni_403"]),
        ("inbound", seeded["m8_500"]),
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"direction": "outbound"}, {"crm_201", "rule_timeout", "crm_500"}),
        ({"direction": "inbound", "outcome": "failed"}, {"omni_403", "m8_500"}),
        ({"outcome": "failed"}, {"omni_403", "m8_500", "crm_500", "rule_timeout"}),
        ({"customer": "K-1001"}, {"omni_ok", "crm_201", "crm_500"}),
        ({"integration": "rule"}, {"rule_timeout"}),
        ({"integration": "m8com"}, {"m8_404", "m8_500"}),
        ({"q": "K-2002"}, {"hook"}),
    ],
)
def test_unified_list_filters(client, auditor, seeded, query, expected):
    assert {pk for _direction, pk in unified(client.get(LOGS, query))} == {seeded[key] for key in expected}


def test_unified_list_brand_filter_never_reaches_another_brand(client, auditor, seeded, other_brand):
    assert unified(client.get(LOGS, {"brand": other_brand.pk})) == []
    html = client.get(LOGS).content.decode()
    assert "Globex" not in html


def test_unified_list_pages_through_both_tables(client, auditor, brand):
    delivery = logs.delivery(brand)
    for minute in range(60):
        logs.inbound(brand, ago=timedelta(minutes=2 * minute))
        logs.attempt(delivery, number=minute + 1, ago=timedelta(minutes=2 * minute + 1))
    first = client.get(LOGS)
    second = client.get(LOGS, {"p": 2})
    third = client.get(LOGS, {"p": 3})
    assert first.context["total"] == 120 and first.context["pages"] == 3
    pages = unified(first) + unified(second) + unified(third)
    assert len(pages) == 120 and len(set(pages)) == 120
    times = [row.at for row in first.context["rows"] + second.context["rows"] + third.context["rows"]]
    assert times == sorted(times, reverse=True)
    assert [d for d, _ in unified(first)[:4]] == ["inbound", "outbound", "inbound", "outbound"]


@pytest.mark.parametrize("url", [LOGS, INBOUND_LIST, ATTEMPT_LIST])
def test_lists_read_a_bounded_number_of_queries(client, auditor, brand, url, django_assert_max_num_queries):
    customer = factories.customer(brand, customer_id="K-1")
    for number in range(1, 31):
        delivery = logs.delivery(brand, customer_id=customer.pk)
        logs.attempt(delivery, number=number)
        logs.inbound(brand, customer=customer)
    with django_assert_max_num_queries(15):
        assert client.get(url).status_code == 200


# ---------------------------------------------------------------- CSV


def test_csv_of_the_filtered_unified_list_has_exactly_those_rows(client, auditor, seeded):
    rows = csv_rows(client.get(f"{LOGS}export.csv", {"outcome": "failed"}))
    assert [(r["direction"], r["detail"].split("/")[-3]) for r in rows] == [
        ("outbound", str(seeded["rule_timeout"])),
        ("outbound", str(seeded["crm_500"])),
        ("inbound", str(seeded["omni_403"])),
        ("inbound", str(seeded["m8_500"])),
    ]
    assert {r["brand"] for r in rows} == {"Acme"}
    assert rows[0]["note or error"] == "Timed out after 10 s"
    assert rows[0]["outcome"] == "failed" and rows[0]["status"] == ""


def test_download_link_carries_the_current_filters(client, auditor, seeded):
    response = client.get(LOGS, {"customer": "K-1001", "direction": "outbound", "p": "1"})
    assert response.context["export_url"] == f"{LOGS}export.csv?direction=outbound&customer=K-1001"
    listing = client.get(ATTEMPT_LIST, {"outcome": "failed", "q": "Telegram"})
    assert listing.context["export_url"] == f"{ATTEMPT_LIST}export.csv?outcome=failed&q=Telegram"


def test_csv_of_a_filtered_admin_list_matches_the_list(client, auditor, seeded):
    rows = csv_rows(client.get(f"{INBOUND_LIST}export.csv", {"integration": "m8com", "outcome": "failed"}))
    assert [(r["endpoint"], r["status"], r["outcome"]) for r in rows] == [("m8com.lookup", "500", "failed")]
    rows = csv_rows(client.get(f"{ATTEMPT_LIST}export.csv", {"customer": "K-1001"}))
    assert [(r["response status"], r["attempt"], r["customer ID"]) for r in rows] == [
        ("201", "2", "K-1001"),
        ("500", "1", "K-1001"),
    ]
    assert {r["message id"] for r in rows} == {seeded["crm_message"]}


def test_csv_only_holds_the_users_brands(client, auditor, seeded, other_brand):
    for url in (f"{LOGS}export.csv", f"{INBOUND_LIST}export.csv", f"{ATTEMPT_LIST}export.csv"):
        rows = csv_rows(client.get(url))
        assert rows and {r["brand"] for r in rows} == {"Acme"}, url
    assert csv_rows(client.get(f"{LOGS}export.csv", {"brand": other_brand.pk})) == []


def test_csv_defuses_spreadsheet_formulas(client, auditor, brand):
    logs.inbound(brand, note='=HYPERLINK("http://evil")')
    (row,) = csv_rows(client.get(f"{INBOUND_LIST}export.csv"))
    assert row["note"].startswith("'=")


# ---------------------------------------------------------------- secrets


def test_an_omnidesk_key_in_a_real_lookup_never_reaches_the_logs(client, brand):
    secret = factories.credential(brand, "omnidesk")
    factories.customer(brand, customer_id="K-7", addresses=[{"kind": "email", "value": "ann@example.com"}])
    lookup = "/hooks/omnidesk/acme/customerlookup"
    found = client.get(lookup, {"key": secret, "channelAddressType": "email", "address": "ann@example.com"})
    assert found.status_code == 200 and found.json()[0]["customerID"] == "K-7"
    assert client.get(lookup, {"key": secret + "x", "primaryID": "K-7"}).status_code == 403
    client.force_login(factories.member(brand, Role.AUDITOR, username="audrey"))
    pages = [client.get(LOGS), client.get(INBOUND_LIST)]
    pages += [client.get(f"{INBOUND_LIST}{row.pk}/change/") for row in InboundRequest.objects.all()]
    exports = [client.get(f"{LOGS}export.csv"), client.get(f"{INBOUND_LIST}export.csv")]
    texts = [page.content.decode() for page in pages] + [b"".join(e.streaming_content).decode() for e in exports]
    assert all(secret not in text for text in texts)
    assert all("key=********" in text for text in texts[:1] + texts[-2:])
    assert "K-7" in texts[-1]


def test_detail_shows_request_and_response_side_by_side_with_secrets_masked(client, auditor, brand):
    delivery = logs.delivery(brand, source_name="Acme CRM — Update Users")
    # Written the way an old row might have been: the detail page masks again on the way out.
    attempt = logs.attempt(
        delivery,
        status=422,
        url="https://bob:hunter2@crm.example.com/people/77?token=tok-123&x=1",
        request_headers={"Authorization": "Bearer sk_live_abc", "X-CRM-Key": "plain-key", "Content-Type": "json"},
        request_body=json.dumps({"name": "Ann", "api_key": "ak-999", "nested": {"password": "pw-1"}}),
        response_headers={"Set-Cookie": "session=s3cr3t", "Content-Type": "application/json"},
        response_body='{"error": "email is invalid", "detail": "Authorization: Bearer sk_live_abc"}',
        error="HTTP 422",
    )
    response = client.get(f"{ATTEMPT_LIST}{attempt.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    for secret in ("sk_live_abc", "hunter2", "tok-123", "ak-999", "pw-1", "s3cr3t"):
        assert secret not in html, secret
    request_part = html[html.index('id="hh-request"') : html.index('id="hh-response"')]
    response_part = html[html.index('id="hh-response"') :]
    assert (
        "PUT" not in request_part and "POST https://********@crm.example.com/people/77?token=********" in request_part
    )
    assert (
        "&quot;name&quot;: &quot;Ann&quot;" in request_part
        and "&quot;api_key&quot;: &quot;********&quot;" in request_part
    )
    assert "HTTP 422" in response_part and "email is invalid" in response_part
    assert "Set-Cookie" in response_part and "session=" not in response_part
    assert "Acme CRM — Update Users" in html and delivery.message_id in html


def test_inbound_detail_links_the_event_and_the_customer(client, auditor, brand, seeded):
    key = factories.credential(brand, "m8com")
    customer = factories.customer(brand, customer_id="K-55", addresses=[{"kind": "telephone", "value": "+31612345678"}])
    payload = {"fromNumber": "+31 6 1234 5678", "toNumber": "+31 20 555 0000", "duration": 60_000}
    payload |= {"startTime": 1_763_800_000_000, "callType": "Inbound", "userId": "u-1", "body": "Call from +31..."}
    response = client.post(
        "/hooks/m8com/acme/calllog",
        json.dumps(payload),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.content
    event = InboundEvent.objects.get()
    row = InboundRequest.objects.get(endpoint="m8com.calllog")
    assert row.customer_id == customer.pk
    html = client.get(f"{INBOUND_LIST}{row.pk}/change/").content.decode()
    assert f"/admin/inbound/inboundevent/{event.pk}/change/" in html
    assert f"/admin/customers/customer/{customer.pk}/change/" in html
    assert key not in html
    # ...and the event links back to exactly that call.
    event_html = client.get(f"/admin/inbound/inboundevent/{event.pk}/change/").content.decode()
    link = f"/admin/logs/?brand={brand.pk}&amp;direction=inbound&amp;event={event.pk}"
    assert link in event_html
    assert unified(client.get(link.replace("&amp;", "&"))) == [("inbound", row.pk)]


# ---------------------------------------------------------------- roles and scope


def test_auditor_reads_own_brand_and_gets_404_for_another_brands_row(client, auditor, seeded):
    assert client.get(f"{INBOUND_LIST}{seeded['omni_ok']}/change/").status_code == 200
    assert client.get(f"{ATTEMPT_LIST}{seeded['crm_500']}/change/").status_code == 200
    assert client.get(f"{INBOUND_LIST}{seeded['foreign_in']}/change/").status_code == 404
    assert client.get(f"{ATTEMPT_LIST}{seeded['foreign_out']}/change/").status_code == 404
    assert client.get(f"{ATTEMPT_LIST}{seeded['foreign_out']}/delete/").status_code == 404
    assert client.get(f"{INBOUND_LIST}{seeded['foreign_in']}/history/").status_code == 404
    assert seeded["foreign_in"] not in listed(client.get(INBOUND_LIST))


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.ADMIN])
def test_nobody_adds_changes_or_deletes_log_rows(client, brand, seeded, role):
    client.force_login(factories.member(brand, role, username=f"user-{role}"))
    row = InboundRequest.objects.get(pk=seeded["omni_ok"])
    assert client.get(f"{INBOUND_LIST}add/").status_code == 403
    assert client.post(f"{INBOUND_LIST}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"{ATTEMPT_LIST}{seeded['crm_500']}/delete/", {"post": "yes"}).status_code == 403
    response = client.post(f"{INBOUND_LIST}{row.pk}/change/", {"status": 500, "note": "edited"})
    assert response.status_code in (403, 405) or "edited" not in response.content.decode()
    bulk = client.post(INBOUND_LIST, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    assert bulk.status_code in (200, 302, 403)
    html = client.get(f"{INBOUND_LIST}{row.pk}/change/").content.decode()
    assert 'name="_save"' not in html and "Delete" not in html
    row.refresh_from_db()
    assert (row.status, row.note) == (200, "")
    assert InboundRequest.objects.count() == 6 and DeliveryAttempt.objects.count() == 4


def test_superuser_sees_every_brand_and_still_changes_nothing(admin_client, seeded):
    assert {pk for _d, pk in unified(admin_client.get(LOGS))} >= {seeded["foreign_in"], seeded["foreign_out"]}
    assert admin_client.get(f"{INBOUND_LIST}{seeded['foreign_in']}/change/").status_code == 200
    assert admin_client.get(f"{INBOUND_LIST}add/").status_code == 403
    assert admin_client.post(f"{ATTEMPT_LIST}{seeded['foreign_out']}/delete/", {"post": "yes"}).status_code == 403


def test_staff_without_a_brand_sees_no_logs(client):
    client.force_login(factories.UserFactory(username="nobody"))
    assert client.get(LOGS).status_code in (302, 403)
    assert client.get(f"{LOGS}export.csv").status_code in (302, 403)
    assert client.get(INBOUND_LIST).status_code in (302, 403)


def test_logs_need_a_login(client):
    assert client.get(LOGS).status_code == 302
    assert client.get(f"{LOGS}export.csv").status_code == 302


# ---------------------------------------------------------------- links from customers and events


def test_customer_page_links_land_on_its_logs(client, auditor, seeded, brand):
    maria = seeded["maria"]
    InboundEvent.objects.create(
        brand=brand,
        source="m8com.calllog",
        event_type="call.logged",
        idempotency_key="k1",
        content_hash="h",
        payload={},
        customer=maria,
        received_at=timezone.now(),
    )
    InboundEvent.objects.create(
        brand=brand,
        source="m8com.calllog",
        event_type="call.logged",
        idempotency_key="k2",
        content_hash="h2",
        payload={},
        received_at=timezone.now(),
    )
    response = client.get(f"/admin/customers/customer/{maria.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Inbound calls (1)" in html and "Inbound events (1)" in html
    panel = html[html.index('class="hh-customer-logs"') :]
    links = [part.split('"', 1)[0].replace("&amp;", "&") for part in panel.split('href="')[1:6]]
    inbound, events, deliveries, attempts, everything = (client.get(link) for link in links)
    assert {pk for _d, pk in unified(inbound)} == {seeded["omni_ok"]}
    assert [e.customer_id for e in events.context["cl"].result_list] == [maria.pk]
    assert [d.customer_id for d in deliveries.context["cl"].result_list] == [maria.pk]
    assert {pk for _d, pk in unified(attempts)} == {seeded["crm_500"], seeded["crm_201"]}
    assert {pk for _d, pk in unified(everything)} == {seeded["omni_ok"], seeded["crm_500"], seeded["crm_201"]}


def test_a_bearer_token_sent_by_a_real_delivery_never_reaches_the_logs(client, brand, httpserver, clock):
    from hooks.outbound.engine import run
    from hooks.outbound.models import CrmSync, CrmSyncAction

    httpserver.expect_request("/people", method="POST").respond_with_json({"id": "R-1"}, status=201)
    sync = CrmSync.objects.create(brand=brand, name="Acme CRM", auth_type="bearer", api_key="tok-live-4242")
    CrmSyncAction.objects.create(
        sync=sync,
        action="create",
        enabled=True,
        method="POST",
        url=httpserver.url_for("/people"),
        body='{"name": "{{ person.name }}"}',
        unique_id_path="$.id",
        timeout_seconds=2,
    )
    factories.customer(brand, customer_id="K-9", first_name="Ann", last_name="Lee")
    run.deliveries_run()
    ((sent, _),) = httpserver.log
    assert sent.headers["Authorization"] == "Bearer tok-live-4242"  # it really went out with the token
    attempt = DeliveryAttempt.objects.get()
    client.force_login(factories.member(brand, Role.AUDITOR, username="audrey"))
    detail = client.get(f"{ATTEMPT_LIST}{attempt.pk}/change/").content.decode()
    texts = [
        detail,
        client.get(LOGS).content.decode(),
        b"".join(client.get(f"{LOGS}export.csv").streaming_content).decode(),
        b"".join(client.get(f"{ATTEMPT_LIST}export.csv").streaming_content).decode(),
    ]
    assert all("tok-live-4242" not in text for text in texts)
    assert "Authorization" in detail and "&quot;name&quot;: &quot;Ann Lee&quot;" in detail
    assert "HTTP 201" in detail and "R-1" in detail
    assert "K-9" in texts[2]


@pytest.mark.parametrize("model", [InboundRequest, DeliveryAttempt])
def test_every_log_field_explains_itself(model):
    assert [f.name for f in model._meta.fields if not f.primary_key and not f.help_text] == []
