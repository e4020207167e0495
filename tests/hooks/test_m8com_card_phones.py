"""The M8Com contact card's phoneNumbers follow the brand's matching policy (issue 12):
the numbers of every address type the brand counts as a phone, so a caller matched by
WhatsApp sees that number on the card. The stored contacts (customers.documents) are
rebuilt when the policy's phone types change (admin form and config import both go
through hub.services.brand_update)."""

from __future__ import annotations

import json

import pytest

from customers.models import Customer
from hub.models import Brand
from hub.services import brand_update
from tests.factories import credential, customer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_lookup_cache")]

URL = "/hooks/m8com/{slug}/lookup"
DESK = "+31201234567"
MOBILE = "+31612345678"
CHAT = "+31687654321"


def policy(brand: Brand, types: list[str]) -> Brand:
    brand.phone_address_types = types
    brand.full_clean()
    return brand_update(brand=brand)


def card(client, brand: Brand, number: str) -> tuple[int, dict]:
    secret = credential(brand, "m8com")
    response = client.get(
        URL.format(slug=brand.slug), {"fromNumber": number}, headers={"Authorization": f"Bearer {secret}"}
    )
    return response.status_code, json.loads(response.content)


def stored_phones(customer_id: str) -> list | None:
    return json.loads(Customer.objects.get(customer_id=customer_id).m8com_document).get("phoneNumbers")


@pytest.fixture
def anna(brand):
    return customer(
        brand,
        customer_id="A-1",
        first_name="Anna",
        last_name="Berg",
        addresses=[
            {"type": "whatsapp", "address": "06 8765 4321"},
            {"type": "telephone", "address": DESK, "comment": "Work"},
            {"type": "email", "address": "anna@example.org"},
            {"type": "whatsapp", "address": MOBILE, "comment": "Private"},
            {"type": "telephone", "address": MOBILE, "comment": "Mobile"},  # the same number again
        ],
    )


def test_by_default_the_card_lists_the_telephone_numbers_only(client, brand, anna):
    status, body = card(client, brand, DESK)
    assert status == 200
    assert body["phoneNumbers"] == [{"id": DESK, "comment": "Work"}, {"id": MOBILE, "comment": "Mobile"}]
    assert body["emails"] == [{"id": "anna@example.org"}]


def test_the_card_lists_every_number_the_brand_counts_as_a_phone_and_follows_a_change_at_once(client, brand, anna):
    assert card(client, brand, CHAT)[0] == 404  # WhatsApp is no phone yet: she is not found by it

    policy(brand, ["telephone", "whatsapp"])
    # Stored order, each number once (its first address), WhatsApp labelled when it has no comment.
    expected = [
        {"id": CHAT, "comment": "WhatsApp"},
        {"id": DESK, "comment": "Work"},
        {"id": MOBILE, "comment": "Private"},
    ]
    assert stored_phones("A-1") == expected  # the stored contact was rebuilt with the policy change
    status, body = card(client, brand, CHAT)
    assert (status, body["displayName"], body["phoneNumbers"]) == (200, "Anna Berg", expected)

    policy(brand, ["telephone"])
    assert stored_phones("A-1") == [{"id": DESK, "comment": "Work"}, {"id": MOBILE, "comment": "Mobile"}]
    status, body = card(client, brand, DESK)
    assert body["phoneNumbers"] == [{"id": DESK, "comment": "Work"}, {"id": MOBILE, "comment": "Mobile"}]


def test_whatsapp_only_policy_drops_the_telephone_numbers_from_the_card(client, brand, anna):
    policy(brand, ["whatsapp"])
    status, body = card(client, brand, MOBILE)
    assert status == 200
    assert body["phoneNumbers"] == [{"id": CHAT, "comment": "WhatsApp"}, {"id": MOBILE, "comment": "Private"}]


def test_a_change_rebuilds_only_the_customers_concerned_of_that_brand(brand, other_brand, anna):
    plain = customer(brand, customer_id="P-1", addresses=[{"type": "telephone", "address": "+31611111111"}])
    theirs = customer(other_brand, customer_id="T-1", addresses=[{"type": "whatsapp", "address": "+46701234567"}])
    untouched = {
        pk: Customer.objects.filter(pk=pk).values_list("m8com_document", "updated_at").get()
        for pk in (plain.pk, theirs.pk)
    }
    policy(brand, ["telephone", "whatsapp"])
    assert stored_phones("A-1")[0] == {"id": CHAT, "comment": "WhatsApp"}
    for pk, before in untouched.items():
        assert Customer.objects.filter(pk=pk).values_list("m8com_document", "updated_at").get() == before
    assert stored_phones("T-1") is None  # the other brand still counts telephone only


def test_new_and_changed_customers_are_stored_under_the_policy(client, brand):
    policy(brand, ["telephone", "whatsapp"])
    customer(brand, customer_id="N-1", first_name="Nils", addresses=[{"type": "whatsapp", "address": CHAT}])
    assert stored_phones("N-1") == [{"id": CHAT, "comment": "WhatsApp"}]
    status, body = card(client, brand, CHAT)
    assert (status, body["phoneNumbers"]) == (200, [{"id": CHAT, "comment": "WhatsApp"}])
