"""keep_as_customer, tenant isolation of sources, and secrets kept out of every log."""

from __future__ import annotations

import json

from django.core import serializers

from customers.models import Customer
from hooks.outbound.configio import config_export
from hooks.sources.models import KeptCustomer, LookupSource, SourceCall
from hooks.sources.records import calls_flush
from synclog.models import InboundRequest
from tests.factories import credential, member

from .conftest import CONTACT, found, make_source
from .test_chain import PHONE, m8com, omnidesk


def test_keep_as_customer_stores_the_match_through_the_services(client, brand, crm, m8com_key, captured_events):
    crm.route("/contacts/search", found())
    source = make_source(brand, crm, name="CRM", keep_as_customer=True)
    first = m8com(client, m8com_key)
    assert first.status_code == 200
    kept = Customer.objects.get(brand=brand, customer_id="crm-4711")
    assert (kept.first_name, kept.last_name, kept.company_name) == ("Ada", "Lovelace", "Analytical Engines BV")
    assert sorted(kept.addresses.values_list("kind", "normalized")) == [
        ("email", "ada@example.org"),
        ("telephone", "+31201234567"),
    ]
    assert list(kept.activities.values_list("kind", "external_id", "source")) == [("DEAL", "d-1", "CRM")]
    assert KeptCustomer.objects.get(customer=kept).source == source
    assert [e.event_type for e, _ in captured_events if e.event_type.startswith("customer.")] == ["customer.created"]
    assert InboundRequest.objects.get().customer_id == kept.pk  # the log row points at the kept customer
    # The next lookup is answered by the hub: the source is not asked again.
    crm.route("/contacts/search", {"results": []})
    second = m8com(client, m8com_key)
    assert second.json() == first.json()
    assert len(crm.requests) == 1
    assert "matched fromNumber" in InboundRequest.objects.order_by("-pk").first().note


def test_keep_is_off_by_default_and_an_existing_customer_id_is_left_alone(client, brand, crm, m8com_key):
    crm.route("/contacts/search", found())
    source = make_source(brand, crm, name="CRM")
    assert source.keep_as_customer is False
    assert m8com(client, m8com_key).status_code == 200
    assert not Customer.objects.filter(brand=brand).exists()


def test_a_brands_lookup_never_asks_another_brands_source(client, brand, other_brand, crm, omnidesk_key):
    crm.route("/acme", {"results": []})
    crm.route("/globex", found({**CONTACT, "id": "globex-secret"}))
    make_source(brand, crm, "/acme", name="Acme CRM")
    make_source(other_brand, crm, "/globex", name="Globex CRM")
    assert omnidesk(client, omnidesk_key).json() == []
    assert crm.hits("/globex") == []
    other_key = credential(other_brand, "omnidesk")
    response = client.get(
        "/hooks/omnidesk/globex/customerlookup",
        {"key": other_key, "channelAddressType": "phoneNumber", "address": PHONE},
    )
    assert response.json()[0]["customerID"] == "globex-secret"
    assert len(crm.hits("/acme")) == 1
    calls_flush()
    assert set(SourceCall.objects.values_list("brand__slug", "source_name")) == {
        ("acme", "Acme CRM"),
        ("globex", "Globex CRM"),
    }


def test_another_brands_key_cannot_reach_a_brands_sources(client, brand, other_brand, crm):
    crm.route("/acme", found())
    make_source(brand, crm, "/acme", name="Acme CRM")
    other_key = credential(other_brand, "omnidesk")
    response = client.get(
        "/hooks/omnidesk/acme/customerlookup", {"key": other_key, "channelAddressType": "phoneNumber", "address": PHONE}
    )
    assert response.status_code == 403
    assert crm.requests == []


def test_admin_lists_pages_and_test_page_are_scoped_to_the_users_brands(client, brand, other_brand, crm):
    mine = make_source(brand, crm, "/acme", name="Acme CRM")
    theirs = make_source(other_brand, crm, "/globex", name="Globex CRM")
    crm.route("/globex", found())
    user = member(brand, role="admin")
    client.force_login(user)
    listing = client.get("/admin/sources/lookupsource/")
    assert listing.status_code == 200
    assert "Acme CRM" in listing.content.decode() and "Globex CRM" not in listing.content.decode()
    assert client.get(f"/admin/sources/lookupsource/{mine.pk}/change/").status_code == 200
    assert client.get(f"/admin/sources/lookupsource/{theirs.pk}/change/").status_code == 404
    assert client.post(f"/admin/sources/lookupsource/{theirs.pk}/delete/", {"post": "yes"}).status_code == 404
    assert LookupSource.objects.filter(pk=theirs.pk).exists()
    page = client.get("/admin/sources/lookupsource/test-lookup/")
    assert "Acme" in page.content.decode() and "Globex" not in page.content.decode()
    refused = client.get(
        "/admin/sources/lookupsource/test-lookup/",
        {"brand": other_brand.pk, "platform": "omnidesk", "value": PHONE},
    )
    assert refused.status_code == 403
    assert crm.hits("/globex") == []
    calls = client.get("/admin/sources/sourcecall/")
    assert calls.status_code == 200


def test_secrets_never_reach_the_logs_the_history_or_the_export(client, brand, crm, m8com_key, admin_client):
    token = "tok-SUPERSECRET-9f8e7d6c5b4a"
    password = "pw-SUPERSECRET-0123456789"
    # A CRM that echoes credentials back in its answer (and fails), the worst case.
    crm.route("/echo", {"error": f"bad token {token}", "auth": f"Bearer {token}"}, status=401)
    crm.route("/basic", {"results": [], "seen": password})
    make_source(
        brand,
        crm,
        "/echo",
        name="Bearer",
        order=1,
        auth_type="bearer",
        api_key=token,
        headers="Accept: application/json",
    )
    make_source(
        brand,
        crm,
        "/basic",
        name="Basic",
        order=2,
        auth_type="basic",
        auth_username="hub",
        auth_password=password,
        method="POST",
        url=f"{crm.url}/basic",
        body='{"phone": "{{ phone }}"}',
    )
    assert m8com(client, m8com_key).status_code == 404
    assert crm.hits("/echo")[0]["headers"]["Authorization"] == f"Bearer {token}"
    assert crm.hits("/basic")[0]["headers"]["Authorization"].startswith("Basic ")
    assert json.loads(crm.hits("/basic")[0]["body"]) == {"phone": PHONE}
    calls_flush()
    test_page = admin_client.get(
        "/admin/sources/lookupsource/test-lookup/",
        {"brand": brand.pk, "platform": "m8com", "value": PHONE, "fresh": "1"},
    )
    assert test_page.status_code == 200
    calls_flush()
    assert SourceCall.objects.count() == 4
    dumped = serializers.serialize("json", [*SourceCall.objects.all(), *InboundRequest.objects.all()])
    history = serializers.serialize("json", LookupSource.history.all())
    export = json.dumps(config_export(brand=brand))
    change_page = admin_client.get(f"/admin/sources/lookupsource/{LookupSource.objects.get(name='Bearer').pk}/change/")
    import base64

    basic = base64.b64encode(f"hub:{password}".encode()).decode()
    for text in (dumped, history, export, test_page.content.decode(), change_page.content.decode()):
        for secret in (token, password, basic):
            assert secret not in text
    assert "********" in dumped


def test_a_call_log_after_the_lookup_attaches_to_the_kept_customer(client, brand, crm, m8com_key):
    crm.route("/contacts/search", found())
    make_source(brand, crm, name="CRM", keep_as_customer=True)
    assert m8com(client, m8com_key).status_code == 200
    logged = client.post(
        "/hooks/m8com/acme/calllog",
        data=json.dumps(
            {
                "fromNumber": PHONE,
                "toNumber": "+31 6 1234 5678",
                "duration": 60_000,
                "startTime": 1_763_800_000_000,
                "callType": "Inbound",
                "body": "Call from +31 20 123 4567",
            }
        ),
        content_type="application/json",
        headers={"Authorization": f"Bearer {m8com_key}"},
    )
    assert logged.status_code == 200 and logged.json()["customerID"] == "crm-4711"
    kept = Customer.objects.get(brand=brand, customer_id="crm-4711")
    assert kept.activities.filter(kind="CALL").count() == 1
    # And the lookup (answered by the hub now) shows the call.
    assert [a["type"] for a in m8com(client, m8com_key).json()["activities"]] == ["DEAL", "CALL"]
    assert len(crm.requests) == 1
