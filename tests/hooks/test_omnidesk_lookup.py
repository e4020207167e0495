"""Omnidesk customer lookup, exact to contracts/omnidesk-customer-lookup.txt."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from customers.services import activity_record, customer_delete, customer_update
from hooks.inbound import omnidesk
from hooks.inbound.lookup_cache import lookup_cache
from hub.models import Credential
from hub.services import credential_issue, credential_revoke
from synclog.models import InboundRequest
from tests.factories import credential, customer

URL = "/hooks/omnidesk/acme/customerlookup"


@pytest.fixture(autouse=True)
def _fresh_cache():
    lookup_cache.clear()
    yield
    lookup_cache.clear()


@pytest.fixture
def key(brand):
    return credential(brand, "omnidesk")


@pytest.fixture
def maria(brand):
    t0 = datetime(2021, 12, 21, 14, 0, 11, tzinfo=UTC)
    return customer(
        brand,
        customer_id="2019000000000124",
        first_name="M",
        last_name="Lukkien",
        addresses=[
            {"type": "email", "address": "Blabla@Example.org"},
            {"type": "telephone", "address": "06 1231 2312"},
            {"type": "telephone", "address": "+31641235613"},
            {"type": "facebook", "address": "1022334440541884"},
            {"type": "twitter", "address": "bird_223"},
        ],
        custom_fields=[{"customerType": "unlimited"}, {"customerSince": "2019-12-24"}, {"favoriteColor": "orange"}],
        activities=[
            {
                "kind": "EVENT",
                "occurred_at": t0,
                "external_id": "2354rfwerf45",
                "body": "Marketing mail regarding price reduction",
                "source": "hubspot",
                "link_url": "https://hubspot.com/link234235",
            },
            {
                "kind": "NOTE",
                "occurred_at": t0 + timedelta(days=200),  # summer time in Amsterdam
                "header": "Called back",
                "body": "Wants a refund",
                "source": "m8com",
            },
        ],
    )


def get(client, key=None, **params):
    if key is not None:
        params = {"key": key, **params}
    return client.get(URL, params)


def error(code, message, fields=None):
    body = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def test_element_is_exactly_the_contract_shape(client, key, maria):
    response = get(client, key, channelAddressType="phoneNumber", address="+31612312312", ticketID="1234")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    note = maria.activities.get(kind="NOTE")
    assert json.loads(response.content) == [
        {
            "addresses": [
                {"address": "Blabla@Example.org", "type": "email"},
                {"address": "+31612312312", "type": "telephone"},
                {"address": "+31641235613", "type": "telephone"},
                {"address": "1022334440541884", "type": "facebook"},
                {"address": "bird_223", "type": "twitter"},
            ],
            "customerFirstname": "M",
            "customerID": "2019000000000124",
            "customerLastname": "Lukkien",
            "customFields": [
                {"customerType": "unlimited"},
                {"customerSince": "2019-12-24"},
                {"favoriteColor": "orange"},
            ],
            "timeline": [
                {
                    "externalID": str(note.pk),
                    "lastUpdate": "2022-07-09 16:00:11",  # 14:00:11 UTC, CEST (+2)
                    "type": "note",
                    "message": "Called back: Wants a refund",
                    "source": "m8com",
                    "url": "",
                },
                {
                    "externalID": "2354rfwerf45",
                    "lastUpdate": "2021-12-21 15:00:11",  # 14:00:11 UTC, CET (+1)
                    "type": "event",
                    "message": "Marketing mail regarding price reduction",
                    "source": "hubspot",
                    "url": "https://hubspot.com/link234235",
                },
            ],
        }
    ]
    # Keys in the contract's order, as Omnidesk's example shows them.
    assert list(json.loads(response.content)[0]) == [
        "addresses",
        "customerFirstname",
        "customerID",
        "customerLastname",
        "customFields",
        "timeline",
    ]


def test_last_update_uses_the_brand_time_zone(client, other_brand):
    stockholm_key = credential(other_brand, "omnidesk")
    customer(
        other_brand,
        addresses=[{"type": "email", "address": "sven@example.se"}],
        activities=[{"kind": "NOTE", "occurred_at": datetime(2024, 1, 15, 23, 30, tzinfo=UTC), "body": "x"}],
    )
    response = client.get(
        "/hooks/omnidesk/globex/customerlookup",
        {"key": stockholm_key, "channelAddressType": "email", "address": "sven@example.se"},
    )
    assert json.loads(response.content)[0]["timeline"][0]["lastUpdate"] == "2024-01-16 00:30:00"


def test_timeline_is_newest_first_and_bounded(client, key, brand):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    kinds = ["NOTE", "CALL", "TICKET", "EVENT"]
    customer(
        brand,
        addresses=[{"type": "email", "address": "busy@example.org"}],
        activities=[
            {"kind": kinds[i % 4], "occurred_at": start + timedelta(hours=i), "body": f"a{i}"} for i in range(45)
        ],
    )
    timeline = json.loads(get(client, key, channelAddressType="email", address="busy@example.org").content)[0][
        "timeline"
    ]
    assert [entry["message"] for entry in timeline] == [f"a{i}" for i in range(44, 24, -1)]


@pytest.mark.parametrize(
    "spelling",
    ["+31612312312", "0612312312", "+31 6 1231 2312", "0031612312312", "+31 (0)6-12 31 23 12", " 31612312312"],
)
def test_phone_numbers_in_any_spelling_find_the_customer(client, key, maria, spelling):
    # " 31612312312" is "+31612312312" with an unencoded plus, as a hand-written URL sends it.
    response = get(client, key, channelAddressType="phoneNumber", address=spelling)
    assert [c["customerID"] for c in json.loads(response.content)] == ["2019000000000124"]


def test_phone_number_in_another_region_needs_its_country_code(client, key, brand, other_brand):
    customer(brand, customer_id="SE1", addresses=[{"type": "telephone", "address": "+46701234567"}])
    assert (
        json.loads(get(client, key, channelAddressType="phoneNumber", address="+46 70 123 45 67").content)[0][
            "customerID"
        ]
        == "SE1"
    )
    # The brand's region is NL: 070 1234567 is a Dutch number, not the Swedish one.
    assert get(client, key, channelAddressType="phoneNumber", address="0701234567").content == b"[]"


def test_email_is_case_insensitive(client, key, maria):
    response = get(client, key, channelAddressType="email", address="BLABLA@example.ORG", ticketID="1")
    assert [c["customerID"] for c in json.loads(response.content)] == ["2019000000000124"]


def test_unencoded_plus_in_raw_query_string(client, key, maria):
    response = client.get(f"{URL}?key={key}&channelAddressType=phoneNumber&address=+31612312312&ticketID=1234")
    assert response.status_code == 200
    assert len(json.loads(response.content)) == 1


def test_no_match_is_an_empty_array(client, key, maria):
    for params in (
        {"channelAddressType": "phoneNumber", "address": "+31600000000"},
        {"channelAddressType": "email", "address": "nobody@example.org"},
        {"primaryID": "nope"},
    ):
        response = get(client, key, **params)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json; charset=utf-8"
        assert response.content == b"[]"


def test_primary_id(client, key, maria):
    response = get(client, key, primaryID="2019000000000124")
    assert [c["customerID"] for c in json.loads(response.content)] == ["2019000000000124"]


def test_several_customers_sharing_an_address_are_all_returned(client, key, brand):
    first = customer(brand, customer_id="A", addresses=[{"type": "email", "address": "family@example.org"}])
    second = customer(brand, customer_id="B", addresses=[{"type": "email", "address": "family@example.org"}])
    customer(brand, customer_id="C", addresses=[{"type": "email", "address": "other@example.org"}])
    body = json.loads(get(client, key, channelAddressType="email", address="family@example.org").content)
    assert [c["customerID"] for c in body] == [first.customer_id, second.customer_id]
    row = InboundRequest.objects.get()
    assert row.customers_returned == 2
    assert row.customer_id is None


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({}, "channelAddressType", "channelAddressType (phoneNumber or email) or primaryID is required."),
        (
            {"ticketID": "1"},
            "channelAddressType",
            "channelAddressType (phoneNumber or email) or primaryID is required.",
        ),
        ({"channelAddressType": "email"}, "address", "address is required with channelAddressType."),
        ({"channelAddressType": "email", "address": "  "}, "address", "address is required with channelAddressType."),
        (
            {"address": "x@example.org"},
            "channelAddressType",
            "channelAddressType (phoneNumber or email) or primaryID is required.",
        ),
        (
            {"channelAddressType": "fax", "address": "1"},
            "channelAddressType",
            "'fax' is not one of phoneNumber, email.",
        ),
        (
            {"channelAddressType": "phoneNumber", "address": "not a number"},
            "address",
            "'not a number' is not a phone number.",
        ),
        (
            {"channelAddressType": "phoneNumber", "address": "+31 612"},
            "address",
            "'+31 612' is not a valid phone number.",
        ),
        (
            {"channelAddressType": "email", "address": "thomas(at)example.org"},
            "address",
            "'thomas(at)example.org' is not a valid e-mail address.",
        ),
        ({"primaryID": ""}, "primaryID", "primaryID must not be empty."),
        ({"primaryID": "x" * 255}, "primaryID", "At most 254 characters."),
        ({"primaryID": "4\x002"}, "primaryID", "Must not contain a NUL character."),
        (
            {"channelAddressType": "email", "address": "a\x00@example.org"},
            "address",
            "Must not contain a NUL character.",
        ),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(client, key, maria, params, field, message):
    response = get(client, key, **params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(response.content) == error("invalid", message, {field: [message]})
    row = InboundRequest.objects.get()
    assert (row.status, row.endpoint) == (400, "omnidesk.lookup")


def test_missing_key_is_401(client, maria):
    response = get(client, None, channelAddressType="email", address="blabla@example.org")
    assert response.status_code == 401
    assert json.loads(response.content) == error(
        "not_authenticated", "The key query parameter is required.", {"key": ["This parameter is required."]}
    )


@pytest.mark.parametrize("which", ["wrong", "revoked", "other brand", "m8com key", "empty"])
def test_bad_keys_are_403(client, brand, other_brand, maria, which):
    if which == "wrong":
        secret = "hh_" + "x" * 43
    elif which == "revoked":
        cred, secret = credential_issue(brand=brand, integration="omnidesk")
        credential_revoke(credential=cred)
    elif which == "other brand":  # tenant isolation: globex's key on acme's URL
        secret = credential(other_brand, "omnidesk")
    elif which == "m8com key":
        secret = credential(brand, "m8com")
    else:
        secret = ""
    response = get(client, secret, channelAddressType="email", address="blabla@example.org")
    if which == "empty":
        assert response.status_code == 401
        return
    assert response.status_code == 403
    assert json.loads(response.content) == error("forbidden", "The key is not valid for this brand.")
    assert InboundRequest.objects.get().customers_returned is None


def test_other_brands_customers_are_never_found(client, other_brand, maria):
    """Tenant isolation: globex's key on its own URL does not see acme's customer."""
    secret = credential(other_brand, "omnidesk")
    response = client.get(
        "/hooks/omnidesk/globex/customerlookup",
        {"key": secret, "channelAddressType": "email", "address": "blabla@example.org"},
    )
    assert (response.status_code, response.content) == (200, b"[]")
    response = client.get("/hooks/omnidesk/globex/customerlookup", {"key": secret, "primaryID": "2019000000000124"})
    assert response.content == b"[]"


def test_unknown_brand_is_404(client, key):
    response = client.get("/hooks/omnidesk/nope/customerlookup", {"key": key, "primaryID": "1"})
    assert response.status_code == 404
    assert json.loads(response.content) == error("not_found", "No such brand.")


def test_inactive_brand_is_404(client, key, brand):
    brand.is_active = False
    brand.save()
    response = get(client, key, primaryID="1")
    assert response.status_code == 404


def test_key_outside_its_networks_is_403(client, brand, maria):
    _, secret = credential_issue(brand=brand, integration="omnidesk", allowed_networks=["203.0.113.0/24"])
    response = get(client, secret, primaryID="2019000000000124")
    assert response.status_code == 403
    assert json.loads(response.content) == error("forbidden", "This key may not be used from your network address.")
    inside = client.get(URL, {"key": secret, "primaryID": "2019000000000124"}, REMOTE_ADDR="203.0.113.9")
    assert inside.status_code == 200
    assert len(json.loads(inside.content)) == 1


def test_unexpected_failure_is_a_json_500(client, key, maria, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(omnidesk, "omnidesk_document_by_customer_id", explode)
    response = get(client, key, primaryID="2019000000000124")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(response.content) == error("server_error", "An unexpected error occurred.")
    assert InboundRequest.objects.get().status == 500


def test_only_get(client, key):
    response = client.post(f"{URL}?key={key}&primaryID=1")
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert json.loads(response.content) == error("method_not_allowed", "Use GET.")


def test_every_call_is_logged_with_the_key_redacted(client, brand, key, maria):
    get(client, key, channelAddressType="phoneNumber", address="+31612312312", ticketID="1234")
    row = InboundRequest.objects.get()
    prefix = Credential.objects.get(brand=brand, integration="omnidesk").prefix
    assert row.brand == brand
    assert row.endpoint == "omnidesk.lookup"
    assert row.method == "GET"
    assert row.path == URL
    assert row.status == 200
    assert row.customers_returned == 1
    assert row.customer_id == maria.pk
    assert row.credential_prefix == prefix
    assert row.note == "ticketID=1234"
    assert row.remote_addr == "127.0.0.1"
    assert row.latency_ms > 0
    assert row.query == "key=********&channelAddressType=phoneNumber&address=%2B31612312312&ticketID=1234"  # as sent
    for value in InboundRequest.objects.values().get().values():
        assert key not in str(value)
        assert key[len(prefix) :] not in str(value)


@pytest.mark.cache
def test_a_change_shows_in_the_very_next_lookup(client, key, brand, maria):
    def lookup(**params):
        return json.loads(get(client, key, **params).content)

    by_phone = {"channelAddressType": "phoneNumber", "address": "+31612312312"}
    assert lookup(**by_phone)[0]["customerLastname"] == "Lukkien"
    assert lookup(**by_phone)[0]["customerLastname"] == "Lukkien"
    assert lookup_cache.hits == 1  # the repeat was served from the cache

    customer_update(customer=maria, last_name="Lukkien-de Vries")
    assert lookup(**by_phone)[0]["customerLastname"] == "Lukkien-de Vries"

    customer_update(customer=maria, custom_fields=[{"customerType": "limited"}])
    assert lookup(**by_phone)[0]["customFields"] == [{"customerType": "limited"}]

    activity_record(customer=maria, kind="CALL", body="Inbound call", source="m8com", external_id="call-1")
    assert lookup(**by_phone)[0]["timeline"][0]["externalID"] == "call-1"

    customer_update(customer=maria, addresses=[{"type": "telephone", "address": "+31687654321"}])
    assert lookup(**by_phone) == []
    assert lookup(channelAddressType="phoneNumber", address="+31687654321")[0]["customerID"] == maria.customer_id

    customer_delete(customer=maria)
    assert lookup(channelAddressType="phoneNumber", address="+31687654321") == []
    assert lookup(primaryID="2019000000000124") == []


@pytest.mark.cache
def test_cache_entries_of_another_process_are_never_stale(client, key, brand, maria):
    """The cache key carries the brand generation read by the key check, so an
    entry cached before a change committed elsewhere is never used again."""
    get(client, key, primaryID="2019000000000124")
    # Another process changes the customer: the generation moves in the database.
    customer_update(customer=maria, first_name="Maria")
    assert json.loads(get(client, key, primaryID="2019000000000124").content)[0]["customerFirstname"] == "Maria"


@pytest.mark.cache
def test_query_budget_does_not_grow_with_the_timeline(client, key, brand, django_assert_max_num_queries):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    kinds = ["NOTE", "TASK", "CALL", "TICKET", "DEAL", "APPOINTMENT", "EVENT"]
    customer(
        brand,
        customer_id="BIG",
        addresses=[{"type": "email", "address": "big@example.org"}],
        activities=[
            {"kind": kinds[i % 7], "occurred_at": start + timedelta(minutes=i), "body": "x"} for i in range(120)
        ],
    )
    # key check (1) + lookup (1) + log row (1) + key last-used time (1, at most once a minute)
    with django_assert_max_num_queries(4):
        response = get(client, key, channelAddressType="email", address="big@example.org")
    assert len(json.loads(response.content)[0]["timeline"]) == 20
    with django_assert_max_num_queries(2):  # cached: key check + log row
        get(client, key, channelAddressType="email", address="big@example.org")


# A key or brand change counting from the very next call, with the key served from the
# credential cache: tests/hooks/test_credential_cache.py.


def test_the_checked_key_and_brand_are_whole_instances(key, brand):
    """The hot-path key check leaves a few columns out of its query; they still load on access."""
    from hooks.inbound.common import credential_check
    from hub.models import Brand

    for _ in range(2):  # built from the row, then copied from the kept instances
        auth = credential_check(brand_slug="acme", integration="omnidesk", secret=key, client_ip="127.0.0.1")
        assert auth.status == 0
        stored = Credential.objects.get(pk=auth.credential.pk)
        assert (auth.credential.created_at, auth.credential.name) == (stored.created_at, stored.name)
        assert auth.brand.created_at == Brand.objects.get(pk=brand.pk).created_at
        assert auth.credential.brand is auth.brand
