"""Brand changes (hub.services.brand_update): the stored lookup answers follow the brand's time zone."""

import json
from datetime import UTC, datetime

import pytest

from customers.models import Customer
from customers.services import customers_refresh
from hub.models import Brand
from hub.services import brand_update
from tests import factories

pytestmark = pytest.mark.django_db

CALL_AT = datetime(2026, 7, 1, 12, 0, 11, tzinfo=UTC)


def stored(customer):
    row = Customer.objects.values("omnidesk_document", "m8com_document").get(pk=customer.pk)
    return json.loads(row["omnidesk_document"]), row["m8com_document"]


def test_a_time_zone_change_rebuilds_the_brands_omnidesk_answers_in_the_new_zone(brand, other_brand):
    with_timeline = factories.customer(
        brand, activities=[{"kind": "CALL", "occurred_at": CALL_AT, "external_id": "c1", "body": "hi"}]
    )
    without_timeline = factories.customer(brand)
    elsewhere = factories.customer(
        other_brand, activities=[{"kind": "CALL", "occurred_at": CALL_AT, "external_id": "c2", "body": "hi"}]
    )
    document, m8com_before = stored(with_timeline)
    assert document["timeline"][0]["lastUpdate"] == "2026-07-01 14:00:11"  # Europe/Amsterdam, summer time
    untouched = {c.pk: stored(c) for c in (without_timeline, elsewhere)}
    generation = Brand.objects.get(pk=brand.pk).generation

    brand.time_zone = "America/New_York"
    brand_update(brand=brand)

    document, m8com_after = stored(with_timeline)
    assert document["timeline"][0]["lastUpdate"] == "2026-07-01 08:00:11"
    assert m8com_after == m8com_before  # M8Com sends epoch milliseconds: no time zone in it
    assert {c.pk: stored(c) for c in (without_timeline, elsewhere)} == untouched
    assert Brand.objects.get(pk=brand.pk).generation > generation  # cached answers are not served again
    # Exactly what the services build from scratch.
    rebuilt = stored(with_timeline)
    customers_refresh(customer_ids=[with_timeline.pk])
    assert stored(with_timeline) == rebuilt


def test_a_change_without_a_new_time_zone_rebuilds_nothing_but_invalidates_the_cache(
    brand, django_assert_max_num_queries
):
    customer = factories.customer(
        brand, activities=[{"kind": "NOTE", "occurred_at": CALL_AT, "external_id": "n1", "body": "x"}]
    )
    before = stored(customer)
    generation = Brand.objects.get(pk=brand.pk).generation
    brand.more_info_url_template = "https://crm.example.com/c/{{ customer.customer_id }}"
    with django_assert_max_num_queries(8):  # savepoint, read, save, history row, bump, re-read
        brand_update(brand=brand)
    assert stored(customer) == before
    assert Brand.objects.get(pk=brand.pk).generation == generation + 1
    assert brand.generation == generation + 1


def test_a_brand_loaded_before_other_changes_never_writes_its_old_generation_back(brand):
    form_copy = Brand.objects.get(pk=brand.pk)  # e.g. the admin's change form, opened earlier
    factories.customer(brand)  # bumps the generation meanwhile
    current = Brand.objects.get(pk=brand.pk).generation
    assert form_copy.generation < current
    form_copy.name = "Acme Europe"
    brand_update(brand=form_copy)
    assert Brand.objects.values_list("name", "generation").get(pk=brand.pk) == ("Acme Europe", current + 1)


def test_update_fields_limit_what_is_written(brand):
    copy = Brand.objects.get(pk=brand.pk)
    copy.name, copy.time_zone = "Renamed", "Europe/Stockholm"
    brand_update(brand=copy, update_fields=["time_zone"])
    assert Brand.objects.values_list("name", "time_zone").get(pk=brand.pk) == ("Acme", "Europe/Stockholm")


def test_the_brand_admin_and_import_config_change_the_time_zone_through_the_service(client, brand, tmp_path):
    from django.core.management import call_command

    customer = factories.customer(
        brand, activities=[{"kind": "CALL", "occurred_at": CALL_AT, "external_id": "c1", "body": "hi"}]
    )
    root = factories.UserFactory(username="root", is_superuser=True, is_staff=True)
    root.set_password("pw")
    root.save()
    client.force_login(root)
    form = {
        "name": "Acme",
        "slug": "acme",
        "is_active": "on",
        "default_region": "NL",
        "time_zone": "Asia/Tokyo",
        "more_info_url_template": "",
        "create_activity_urls": "[]",
        "lookup_budget_ms": "2000",
        "lookup_priority_window_ms": "200",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    response = client.post(f"/admin/hub/brand/{brand.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert stored(customer)[0]["timeline"][0]["lastUpdate"] == "2026-07-01 21:00:11"
    assert Brand.history.filter(id=brand.pk).latest("history_date").history_user == root  # who changed it

    config = {"format": "hookhub-config", "version": 1, "brand": "acme", "brand_settings": {"time_zone": "UTC"}}
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(config))
    call_command("import_config", str(path))
    assert stored(customer)[0]["timeline"][0]["lastUpdate"] == "2026-07-01 12:00:11"


def test_the_time_zone_change_is_news_customers_subscribes_to(brand):
    """hub imports no app: the change is sent as hub.events.brand_time_zone_changed, once,
    with the old and new zone (customers' subscription is what the tests above see working)."""
    from hub.events import brand_time_zone_changed

    heard = []

    def listener(sender, **kwargs):
        heard.append((sender, kwargs.pop("signal") is brand_time_zone_changed, kwargs))

    brand_time_zone_changed.connect(listener)
    try:
        brand.name = "Renamed only"
        brand_update(brand=brand)
        assert heard == []
        brand.time_zone = "Asia/Tokyo"
        brand_update(brand=brand)
    finally:
        brand_time_zone_changed.disconnect(listener)
    assert heard == [
        (Brand, True, {"brand_id": brand.pk, "old_time_zone": "Europe/Amsterdam", "new_time_zone": "Asia/Tokyo"})
    ]


def test_a_failing_subscriber_undoes_the_time_zone_change(brand, monkeypatch):
    """The news is sent inside the change's transaction: answers and brand never disagree."""
    from customers import services

    customer = factories.customer(
        brand, activities=[{"kind": "CALL", "occurred_at": CALL_AT, "external_id": "c1", "body": "hi"}]
    )
    before = stored(customer)

    def broken(**kwargs):
        raise RuntimeError("rebuild failed")

    monkeypatch.setattr(services, "customers_time_zone_rebuild", broken)
    brand.time_zone = "Asia/Tokyo"
    with pytest.raises(RuntimeError, match="rebuild failed"):
        brand_update(brand=brand)
    assert Brand.objects.get(pk=brand.pk).time_zone == "Europe/Amsterdam"
    assert stored(customer) == before
