import json

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from customers.models import Activity, Address, Customer
from customers.services import activity_record, customer_create, customer_delete, customer_update
from hub.models import Brand
from tests import factories

pytestmark = pytest.mark.django_db


def test_create_normalizes_addresses_with_brand_region(brand):
    customer = customer_create(
        brand=brand,
        customer_id="42",
        first_name="Maria",
        addresses=[
            {"type": "telephone", "address": "06 1231 2312", "comment": "Mobile"},
            {"type": "email", "address": " Maria@Example.ORG "},
            {"type": "twitter", "address": "@Bird_223"},
        ],
    )
    rows = list(Address.objects.filter(customer=customer).values_list("kind", "value", "normalized", "comment"))
    assert rows == [
        ("telephone", "06 1231 2312", "+31612312312", "Mobile"),
        ("email", "Maria@Example.ORG", "maria@example.org", ""),
        ("twitter", "@Bird_223", "bird_223", ""),
    ]


def test_invalid_phone_and_email_are_refused_whole(brand):
    with pytest.raises(ValidationError) as excinfo:
        customer_create(
            brand=brand,
            customer_id="1",
            addresses=[{"type": "telephone", "address": "12"}, {"type": "email", "address": "not-an-email"}],
        )
    assert set(excinfo.value.message_dict) == {"addresses[0].address", "addresses[1].address"}
    assert Customer.objects.count() == 0
    assert Address.objects.count() == 0


def test_customer_id_unique_per_brand_only(brand, other_brand):
    customer_create(brand=brand, customer_id="7")
    customer_create(brand=other_brand, customer_id="7")
    with pytest.raises(ValidationError) as excinfo:
        customer_create(brand=brand, customer_id="7")
    assert "customer_id" in excinfo.value.message_dict
    assert Customer.objects.filter(customer_id="7").count() == 2


def test_events_are_emitted_inside_the_transaction(brand, captured_events):
    customer = customer_create(
        brand=brand, customer_id="9", first_name="Ann", addresses=[{"type": "email", "address": "a@x.org"}]
    )
    customer_update(customer=customer, first_name="Anna")
    customer_update(customer=customer, first_name="Anna")  # nothing changed: no event
    customer_delete(customer=customer)
    assert [(e.event_type, in_tx) for e, in_tx in captured_events] == [
        ("customer.created", True),
        ("customer.updated", True),
        ("customer.deleted", True),
    ]
    created, updated, deleted = (e for e, _ in captured_events)
    assert created.data["customer"]["email"] == "a@x.org"
    assert updated.data["changed"] == ["display_name", "first_name", "name"]
    assert deleted.data["customer"]["first_name"] == "Anna"
    assert not Customer.objects.filter(pk=customer.pk).exists()


def test_a_failing_subscriber_rolls_back_the_change(brand, monkeypatch):
    from hub import events

    def boom(event):
        raise RuntimeError("outbox write failed")

    monkeypatch.setitem(events._subscribers, "customer.created", [boom])
    with pytest.raises(RuntimeError):
        customer_create(brand=brand, customer_id="x1")
    assert not Customer.objects.filter(customer_id="x1").exists()


def test_changes_bump_brand_generation(brand):
    start = Brand.objects.get(pk=brand.pk).generation
    customer = factories.customer(brand)
    after_create = Brand.objects.get(pk=brand.pk).generation
    activity_record(customer=customer, kind="NOTE", body="hello")
    after_activity = Brand.objects.get(pk=brand.pk).generation
    assert start < after_create < after_activity


def test_stored_documents_follow_every_change(brand):
    customer = customer_create(
        brand=brand,
        customer_id="55",
        first_name="M",
        last_name="Lukkien",
        addresses=[{"type": "telephone", "address": "+31612312312"}],
        custom_fields=[{"customerType": "unlimited"}, {"customerSince": "2019-12-24"}],
    )
    doc = json.loads(Customer.objects.get(pk=customer.pk).omnidesk_document)
    assert doc["customFields"] == [{"customerType": "unlimited"}, {"customerSince": "2019-12-24"}]
    customer_update(customer=customer, custom_fields=[{"favoriteColor": "orange"}])
    doc = json.loads(Customer.objects.get(pk=customer.pk).omnidesk_document)
    assert doc["customFields"] == [{"favoriteColor": "orange"}]


def test_activity_with_same_external_id_is_kept_once(brand):
    customer = factories.customer(brand)
    first, created1 = activity_record(customer=customer, kind="CALL", source="m8com", external_id="call-1", body="x")
    second, created2 = activity_record(customer=customer, kind="CALL", source="m8com", external_id="call-1", body="x")
    assert (created1, created2) == (True, False)
    assert first.pk == second.pk
    assert Activity.objects.filter(customer=customer).count() == 1


def test_rollback_leaves_no_rows(brand):
    with pytest.raises(RuntimeError), transaction.atomic():
        factories.customer(brand, customer_id="rb")
        raise RuntimeError
    assert not Customer.objects.filter(customer_id="rb").exists()


def test_update_with_an_invalid_address_changes_nothing(brand, captured_events):
    customer = customer_create(
        brand=brand, customer_id="u1", first_name="Ann", addresses=[{"type": "email", "address": "ann@example.org"}]
    )
    captured_events.clear()
    with pytest.raises(ValidationError) as excinfo:
        customer_update(customer=customer, first_name="Changed", addresses=[{"type": "whatsapp", "address": "+31 6 1"}])
    assert list(excinfo.value.message_dict) == ["addresses[0].address"]
    stored = Customer.objects.get(pk=customer.pk)
    assert stored.first_name == "Ann"
    assert list(stored.addresses.values_list("normalized", flat=True)) == ["ann@example.org"]
    assert captured_events == []


def test_duplicate_addresses_are_kept_once_and_duplicate_field_keys_refused(brand):
    customer = customer_create(
        brand=brand,
        customer_id="d1",
        addresses=[
            {"type": "telephone", "address": "+31612312312"},
            {"type": "telephone", "address": "06-12312312"},
            {"type": "phone", "address": "0031 6 1231 2312"},
        ],
    )
    assert list(customer.addresses.values_list("kind", "normalized")) == [("telephone", "+31612312312")]
    with pytest.raises(ValidationError) as excinfo:
        customer_create(brand=brand, customer_id="d2", custom_fields=[{"a": "1"}, {"a": "2"}])
    assert excinfo.value.message_dict == {"customFields[1]": ["The key 'a' appears twice."]}
    assert not Customer.objects.filter(customer_id="d2").exists()


def test_same_number_in_another_region_normalizes_differently(brand, other_brand):
    nl = customer_create(brand=brand, customer_id="r1", addresses=[{"type": "telephone", "address": "070 123 45 67"}])
    se = customer_create(
        brand=other_brand, customer_id="r1", addresses=[{"type": "telephone", "address": "070 123 45 67"}]
    )
    assert nl.addresses.get().normalized == "+31701234567"
    assert se.addresses.get().normalized == "+46701234567"


def test_invalid_customer_time_zone_and_url_are_field_errors(brand):
    with pytest.raises(ValidationError) as excinfo:
        customer_create(brand=brand, customer_id="tz", time_zone="Mars/Base", avatar_url="nope")
    assert set(excinfo.value.message_dict) == {"time_zone", "avatar_url"}
