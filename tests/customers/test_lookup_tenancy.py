"""A brand's key never sees another brand's customers on the lookup hot path (customers.selectors).

The attack: the same phone number (or e-mail, or primary id) held by customers of two
brands; brand A's key must only ever get brand A's customer, whatever the other brand's
customer looks like (more recently updated, the only holder of the number)."""

import json

import pytest

from customers.selectors import omnidesk_documents_by_address, phone_matches
from customers.services import customer_update
from hooks.inbound.lookup_cache import lookup_cache
from tests.factories import credential, customer

pytestmark = pytest.mark.django_db

SHARED = "+31612345678"
NOBODY = "+31600000001"


@pytest.fixture(autouse=True)
def _fresh_cache():
    lookup_cache.clear()
    yield
    lookup_cache.clear()


def holder(brand, first_name):
    return customer(
        brand,
        first_name=first_name,
        customer_id="SAME-ID",
        addresses=[{"type": "telephone", "address": SHARED}, {"type": "email", "address": "same@example.org"}],
    )


def m8com(client, brand, secret, position):
    numbers = {"fromNumber": SHARED} if position == "fromNumber" else {"fromNumber": NOBODY, "toNumber": SHARED}
    lookup_cache.clear()  # each call asks the database
    return client.get(f"/hooks/m8com/{brand.slug}/lookup", numbers, headers={"Authorization": f"Bearer {secret}"})


@pytest.mark.parametrize("position", ["fromNumber", "toNumber"])
def test_m8com_key_of_one_brand_never_sees_another_brands_contact(client, brand, other_brand, position):
    secret_a, secret_b = credential(brand, "m8com"), credential(other_brand, "m8com")
    theirs = holder(other_brand, "Theirs")
    # Only brand B holds the number: brand A's key finds nobody.
    response = m8com(client, brand, secret_a, position)
    assert (response.status_code, json.loads(response.content)) == (404, {"message": "No contact found"})
    found = phone_matches(
        brand_id=brand.pk,
        kinds=("telephone",),
        numbers=(SHARED,),
        suffixes=("12345678",),
        columns="id",
        first_only=False,
    )
    assert found == []
    # Both hold it, brand B's customer the most recently updated (the one the statement would
    # pick without the brand filter): each key gets its own brand's customer.
    holder(brand, "Mine")
    customer_update(customer=theirs, job_title="Updated last")
    assert json.loads(m8com(client, brand, secret_a, position).content)["firstName"] == "Mine"
    assert json.loads(m8com(client, other_brand, secret_b, position).content)["firstName"] == "Theirs"
    # Brand B's key on brand A's URL is refused, never answered with either customer.
    assert m8com(client, brand, secret_b, position).status_code == 403


def test_omnidesk_key_of_one_brand_never_sees_another_brands_customers(client, brand, other_brand):
    key_a = credential(brand, "omnidesk")
    holder(other_brand, "Theirs")
    queries = [
        {"channelAddressType": "phoneNumber", "address": SHARED},
        {"channelAddressType": "email", "address": "same@example.org"},
        {"primaryID": "SAME-ID"},
    ]
    for query in queries:
        response = client.get("/hooks/omnidesk/acme/customerlookup", {"key": key_a, **query})
        assert (response.status_code, response.content) == (200, b"[]"), query
    assert omnidesk_documents_by_address(brand_id=brand.pk, kind="telephone", normalized=SHARED) == []
    holder(brand, "Mine")
    for query in queries:
        lookup_cache.clear()
        found = json.loads(client.get("/hooks/omnidesk/acme/customerlookup", {"key": key_a, **query}).content)
        assert [c["customerFirstname"] for c in found] == ["Mine"], query
