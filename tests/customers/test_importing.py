"""Customer import / export (issue 2): JSON in the Omnidesk lookup shape, CSV, upsert, round trip."""

import io
import json

import pytest

from customers import importing
from customers.importing import ImportFileError, csv_rows_read, customers_export, customers_import, json_rows_read
from customers.models import Activity, Address, Customer, CustomField
from customers.services import customer_update, customers_refresh
from hub.models import Brand
from tests import factories

pytestmark = pytest.mark.django_db

MARIA = {
    "addresses": [
        {"address": "blabla@Example.org", "type": "email"},
        {"address": "06 1231 2312", "type": "telephone", "comment": "Mobile"},
        {"address": "@Bird_223", "type": "twitter"},
    ],
    "customerFirstname": "M",
    "customerID": "2019000000000124",
    "customerLastname": "Lukkien",
    "customFields": [{"customerType": "unlimited"}, {"customerSince": "2019-12-24"}],
    "timeline": [
        {
            "externalID": "2354rfwerf45",
            "lastUpdate": "2021-12-21 15:00:11",
            "type": "event",
            "message": "Marketing mail regarding price reduction",
            "source": "hubspot",
            "url": "https://hubspot.com/link234235",
        }
    ],
    "companyName": "Lukkien BV",
    "jobTitle": "Owner",
}


def run(brand, items, **kwargs):
    return customers_import(brand=brand, rows=json_rows_read(json.dumps(items)), **kwargs)


def test_json_import_stores_normalized_customer_fields_and_timeline(brand, captured_events):
    result = run(brand, [MARIA])
    assert (result.created, result.updated, result.unchanged, result.rejected) == (1, 0, 0, [])
    customer = Customer.objects.get(brand=brand, customer_id="2019000000000124")
    assert (customer.first_name, customer.last_name, customer.company_name, customer.job_title) == (
        "M",
        "Lukkien",
        "Lukkien BV",
        "Owner",
    )
    assert list(customer.addresses.values_list("kind", "value", "normalized", "comment")) == [
        ("email", "blabla@Example.org", "blabla@example.org", ""),
        ("telephone", "06 1231 2312", "+31612312312", "Mobile"),
        ("twitter", "@Bird_223", "bird_223", ""),
    ]
    assert list(customer.custom_fields.values_list("key", "value")) == [
        ("customerType", "unlimited"),
        ("customerSince", "2019-12-24"),
    ]
    activity = customer.activities.get()
    assert (activity.kind, activity.external_id, activity.source, activity.body, activity.link_url) == (
        "EVENT",
        "2354rfwerf45",
        "hubspot",
        "Marketing mail regarding price reduction",
        "https://hubspot.com/link234235",
    )
    # lastUpdate is the brand's local time (Europe/Amsterdam, UTC+1 in December).
    assert activity.occurred_at.isoformat() == "2021-12-21T14:00:11+00:00"
    # The stored Omnidesk answer is the contract's element.
    doc = json.loads(customer.omnidesk_document)
    assert doc["customerID"] == "2019000000000124"
    assert doc["addresses"][1] == {"address": "+31612312312", "type": "telephone"}
    assert doc["timeline"][0]["lastUpdate"] == "2021-12-21 15:00:11"
    # One created event, inside the import's transaction, with the snapshot.
    assert [(e.event_type, in_tx) for e, in_tx in captured_events] == [("customer.created", True)]
    assert captured_events[0][0].data["customer"]["phone"] == "+31612312312"
    assert captured_events[0][0].customer_id == customer.pk


def test_bulk_written_documents_equal_what_the_services_build(brand):
    items = [
        {
            **MARIA,
            "customerID": f"C{i}",
            "timeline": [*MARIA["timeline"], {**MARIA["timeline"][0], "externalID": f"x{i}", "type": "note"}],
        }
        for i in range(5)
    ]
    items.append(
        {"customerID": "no-ext", "timeline": [{"lastUpdate": "2022-01-01 10:00:00", "type": "call", "message": "hi"}]}
    )
    run(brand, items)
    stored = dict(Customer.objects.filter(brand=brand).values_list("pk", "omnidesk_document"))
    stored_m8 = dict(Customer.objects.filter(brand=brand).values_list("pk", "m8com_document"))
    customers_refresh(customer_ids=list(stored))
    assert dict(Customer.objects.filter(brand=brand).values_list("pk", "omnidesk_document")) == stored
    assert dict(Customer.objects.filter(brand=brand).values_list("pk", "m8com_document")) == stored_m8


def test_import_bumps_brand_generation_once_per_chunk(brand):
    start = Brand.objects.get(pk=brand.pk).generation
    run(brand, [{**MARIA, "customerID": f"G{i}"} for i in range(5)], chunk_size=2)
    assert Brand.objects.get(pk=brand.pk).generation > start


def test_invalid_rows_are_rejected_whole_with_index_and_reason(brand, captured_events):
    items = [
        {"customerID": "ok-1", "customerFirstname": "Ann"},
        {"customerID": "bad-phone", "addresses": [{"address": "12", "type": "telephone"}]},
        {
            "customerID": "bad-mail",
            "addresses": [{"address": "not-an-email", "type": "email"}],
            "customFields": [{"a": "b"}],
        },
        "not an object",
        {"customerFirstname": "no id"},
        {"customerID": "ok-1", "customerFirstname": "twice"},
        {"customerID": "shapes", "addresses": {"address": "x"}, "companyname": "typo", "timeline": [{"type": "bogus"}]},
        {"customerID": "bad-url", "avatarUrl": "not a url", "timeZone": "Mars/Base", "customerLastname": 5},
    ]
    result = run(brand, items)
    assert (result.created, result.total) == (1, 8)
    report = {r.where: (r.customer_id, r.errors) for r in result.rejected}
    assert report["index 1"] == ("bad-phone", {"addresses[0].address": ["'12' is not a valid phone number."]})
    assert report["index 2"] == (
        "bad-mail",
        {"addresses[0].address": ["'not-an-email' is not a valid e-mail address."]},
    )
    assert report["index 3"] == ("", {"customer": ["Expected an object, got a string."]})
    assert list(report["index 4"][1]) == ["customerID"]
    assert report["index 5"] == ("ok-1", {"customerID": ["Appears earlier in the file (index 0)."]})
    assert set(report["index 6"][1]) == {"companyname", "addresses", "timeline[0].type", "timeline[0].lastUpdate"}
    assert set(report["index 7"][1]) == {"avatarUrl", "timeZone", "customerLastname"}
    assert "index 1 (customerID bad-phone): addresses[0].address: '12' is not a valid phone number" == str(
        result.rejected[0]
    )
    # Nothing of a rejected row is stored; the good row is.
    assert list(Customer.objects.filter(brand=brand).values_list("customer_id", "first_name")) == [("ok-1", "Ann")]
    assert Address.objects.count() == 0 and CustomField.objects.count() == 0
    assert [e.event_type for e, _ in captured_events] == ["customer.created"]


def test_wrong_top_level_shapes_are_file_errors():
    with pytest.raises(ImportFileError, match="not valid JSON"):
        json_rows_read(b'[{"customerID": "1"')
    with pytest.raises(ImportFileError, match="expected a JSON array of customers .* got an object"):
        json_rows_read(b'{"customerID": "1"}')
    with pytest.raises(ImportFileError, match="no such file"):
        importing.import_file_read("/nonexistent/customers.json")


def test_upsert_updates_only_what_the_file_has_and_emits_changed_fields(brand, captured_events):
    run(brand, [MARIA])
    captured_events.clear()
    result = run(brand, [{"customerID": MARIA["customerID"], "customerFirstname": "Maria"}])
    assert (result.created, result.updated, result.unchanged) == (0, 1, 0)
    customer = Customer.objects.get(brand=brand)
    # Keys not in the row stay as they were; addresses / fields untouched.
    assert (customer.first_name, customer.company_name) == ("Maria", "Lukkien BV")
    assert customer.addresses.count() == 3 and customer.custom_fields.count() == 2
    assert [(e.event_type, e.data["changed"], in_tx) for e, in_tx in captured_events] == [
        ("customer.updated", ["display_name", "first_name", "name"], True)
    ]
    assert json.loads(customer.omnidesk_document)["customerFirstname"] == "Maria"


def test_upsert_replaces_addresses_and_fields_and_adds_new_timeline_entries(brand, captured_events):
    run(brand, [MARIA])
    captured_events.clear()
    changed = {
        "customerID": MARIA["customerID"],
        "addresses": [{"address": "+31 6 12345670", "type": "telephone"}],
        "customFields": [{"customerType": "basic"}],
        "timeline": [
            MARIA["timeline"][0],  # already there: kept once
            {
                "externalID": "new-1",
                "lastUpdate": "2022-02-02 10:00:00",
                "type": "note",
                "message": "Called back",
                "source": "crm",
            },
        ],
    }
    result = run(brand, [changed])
    assert result.updated == 1
    customer = Customer.objects.get(brand=brand)
    assert list(customer.addresses.values_list("normalized", flat=True)) == ["+31612345670"]
    assert list(customer.custom_fields.values_list("key", "value")) == [("customerType", "basic")]
    assert sorted(customer.activities.values_list("external_id", flat=True)) == ["2354rfwerf45", "new-1"]
    ((event, in_tx),) = captured_events
    assert event.event_type == "customer.updated" and in_tx
    assert {"phone", "email", "custom_fields"} <= set(event.data["changed"])
    # The same file again changes nothing.
    captured_events.clear()
    again = run(brand, [changed])
    assert (again.updated, again.unchanged) == (0, 1)
    assert captured_events == []
    assert customer.activities.count() == 2


def test_timeline_only_change_rebuilds_documents_without_an_event(brand, captured_events):
    run(brand, [MARIA])
    captured_events.clear()
    entry = {"lastUpdate": "2023-03-03 09:00:00", "type": "note", "message": "No external id"}
    result = run(brand, [{"customerID": MARIA["customerID"], "timeline": [entry]}])
    assert result.updated == 1
    assert captured_events == []  # nothing a webhook receiver sees changed
    doc = json.loads(Customer.objects.get(brand=brand).omnidesk_document)
    assert doc["timeline"][0]["message"] == "No external id"
    # Without an externalID the entry is matched by type, time and text: not added twice.
    assert run(brand, [{"customerID": MARIA["customerID"], "timeline": [entry]}]).unchanged == 1
    assert Activity.objects.filter(body="No external id").count() == 1


def test_round_trip_export_import_changes_nothing(brand, captured_events):
    customer = factories.customer(
        brand,
        customer_id="RT1",
        first_name="Ann",
        display_name="Annie",
        summary="Long-time customer",
        time_zone="Europe/Stockholm",
        more_info_url="https://crm.example.com/c/RT1",
        addresses=[
            {"type": "telephone", "address": "020 123 4567", "comment": "Office"},
            {"type": "email", "address": "Ann@Example.org"},
            {"type": "whatsapp", "address": "+31612312311"},
        ],
        custom_fields=[{"tier": "gold"}, {"since": "2020"}],
    )
    from customers.services import activity_record

    activity_record(
        customer=customer,
        kind="CALL",
        body="Inbound call",
        from_number="+31201234567",
        source="m8com",
        external_id="c-1",
    )
    activity_record(customer=customer, kind="NOTE", header="Note", body="Without an external id")
    run(brand, [MARIA])
    before_rows = {
        "customers": list(Customer.objects.order_by("pk").values()),
        "addresses": list(Address.objects.order_by("pk").values()),
        "fields": list(CustomField.objects.order_by("pk").values()),
        "activities": list(Activity.objects.order_by("pk").values()),
    }
    generation = Brand.objects.get(pk=brand.pk).generation
    out = io.StringIO()
    assert customers_export(brand=brand, out=out) == 2
    exported = out.getvalue()
    captured_events.clear()

    result = customers_import(brand=brand, rows=json_rows_read(exported))
    assert (result.created, result.updated, result.unchanged, result.rejected) == (0, 0, 2, [])
    assert captured_events == []
    assert Brand.objects.get(pk=brand.pk).generation == generation
    assert {
        "customers": list(Customer.objects.order_by("pk").values()),
        "addresses": list(Address.objects.order_by("pk").values()),
        "fields": list(CustomField.objects.order_by("pk").values()),
        "activities": list(Activity.objects.order_by("pk").values()),
    } == before_rows


def test_export_shape_and_import_into_another_brand_reproduces_it(brand, other_brand):
    run(brand, [MARIA])
    out = io.StringIO()
    customers_export(brand=brand, out=out)
    items = json.loads(out.getvalue())
    assert items == [
        {
            "addresses": [
                {"address": "blabla@Example.org", "type": "email"},
                {"address": "06 1231 2312", "type": "telephone", "comment": "Mobile"},
                {"address": "@Bird_223", "type": "twitter"},
            ],
            "customerFirstname": "M",
            "customerID": "2019000000000124",
            "customerLastname": "Lukkien",
            "customFields": [{"customerType": "unlimited"}, {"customerSince": "2019-12-24"}],
            "timeline": [
                {
                    "externalID": "2354rfwerf45",
                    "lastUpdate": "2021-12-21 15:00:11",
                    "type": "event",
                    "message": "Marketing mail regarding price reduction",
                    "source": "hubspot",
                    "url": "https://hubspot.com/link234235",
                    "occurredAt": "2021-12-21T14:00:11Z",
                }
            ],
            "companyName": "Lukkien BV",
            "jobTitle": "Owner",
        }
    ]
    # other_brand's region is SE: the national number in the file means something else there,
    # so import it into a copy of brand's settings instead.
    twin = factories.BrandFactory(slug="twin", default_region="NL", time_zone="Europe/Amsterdam")
    assert customers_import(brand=twin, rows=json_rows_read(out.getvalue())).created == 1
    again = io.StringIO()
    customers_export(brand=twin, out=again)
    assert json.loads(again.getvalue()) == items
    assert Customer.objects.filter(brand=other_brand).count() == 0


def test_empty_brand_exports_an_empty_array(brand):
    out = io.StringIO()
    assert customers_export(brand=brand, out=out) == 0
    assert json.loads(out.getvalue()) == []


def test_admin_edit_after_import_is_seen_by_the_next_import(brand):
    run(brand, [MARIA])
    customer = Customer.objects.get(brand=brand)
    customer_update(customer=customer, company_name="Changed")
    result = run(brand, [MARIA])
    assert result.updated == 1
    assert Customer.objects.get(pk=customer.pk).company_name == "Lukkien BV"


# ---------------------------------------------------------------- CSV


CSV = (
    "customer_id,first_name,last_name,company_name,email,phone:Mobile,phone:Work,twitter,field:customerType,field:since\n"
    "1001,Ann,de Vries,Acme,ann@example.org,06 12345678,020 123 4567,@ann,gold,2020\n"
    '1002,"Bob ""B""","Multi\nLine",,bob@,123,,,,\n'
    "1003,Cee,,,,,,,,\n"
)


def test_csv_import_with_address_comments_custom_fields_and_line_numbers(brand):
    result = customers_import(brand=brand, rows=csv_rows_read(CSV))
    assert (result.created, len(result.rejected)) == (2, 1)
    (rejected,) = result.rejected
    assert rejected.where == "line 3"
    assert rejected.errors == {
        "email": ["'bob@' is not a valid e-mail address."],
        "phone:Mobile": ["'123' is not a valid phone number."],
    }
    ann = Customer.objects.get(brand=brand, customer_id="1001")
    assert (ann.first_name, ann.last_name, ann.company_name) == ("Ann", "de Vries", "Acme")
    assert list(ann.addresses.values_list("kind", "normalized", "comment")) == [
        ("email", "ann@example.org", ""),
        ("telephone", "+31612345678", "Mobile"),
        ("telephone", "+31201234567", "Work"),
        ("twitter", "ann", ""),
    ]
    assert list(ann.custom_fields.values_list("key", "value")) == [("customerType", "gold"), ("since", "2020")]
    cee = Customer.objects.get(brand=brand, customer_id="1003")
    assert cee.addresses.count() == 0 and cee.custom_fields.count() == 0


def test_csv_semicolons_and_bom_as_excel_writes_them(brand):
    text = "\ufeffcustomer_id;first_name;email\n7;Zoë;zoe@example.org\n"
    result = customers_import(brand=brand, rows=csv_rows_read(text))
    assert result.created == 1
    assert Customer.objects.get(customer_id="7").first_name == "Zoë"


def test_csv_header_problems_are_file_errors():
    with pytest.raises(ImportFileError, match="unknown column.*'fax'"):
        csv_rows_read("customer_id,fax\n1,2\n")
    with pytest.raises(ImportFileError, match="exactly one customer_id"):
        csv_rows_read("first_name\nAnn\n")
    with pytest.raises(ImportFileError, match="empty file"):
        csv_rows_read("")


def test_csv_row_with_wrong_cell_count_is_rejected(brand):
    result = customers_import(brand=brand, rows=csv_rows_read("customer_id,first_name\n1,Ann,extra\n2,Bo\n"))
    assert result.created == 1
    assert [(r.where, r.errors) for r in result.rejected] == [
        ("line 2", {"row": ["Has 3 cells; the header has 2 columns."]})
    ]


# ---------------------------------------------------------------- cost per chunk, CRM-sync subscriber


def _crm_sync(brand, *, name="CRM", enabled=True):
    from hooks.outbound.models import CrmSync, CrmSyncAction

    sync = CrmSync.objects.create(brand=brand, name=name, enabled=enabled)
    CrmSyncAction.objects.create(sync=sync, action="create", enabled=True, method="POST", url="http://127.0.0.1:9/p")
    CrmSyncAction.objects.create(sync=sync, action="update", enabled=True, method="PUT", url="http://127.0.0.1:9/p")
    return sync


def _crm_deliveries():
    from hooks.outbound.models import Delivery

    return list(Delivery.objects.filter(source_kind="crm_action").values_list("event_type", "source_name"))


@pytest.mark.parametrize("with_sync", [False, True])
def test_a_chunk_costs_the_same_queries_for_10_or_40_customers(brand, with_sync, django_assert_max_num_queries):
    """The subscribers read the brand's CRM syncs and rules once per chunk, not once per customer;
    with a sync, each customer adds only its outbox INSERT."""
    if with_sync:
        _crm_sync(brand)
    run(brand, [{**MARIA, "customerID": "warm-up"}])  # first-use queries (content types, …) out of the count
    counts = []
    for size in (10, 40):
        items = [{**MARIA, "customerID": f"Q{size}-{i}"} for i in range(size)]
        with django_assert_max_num_queries(1000) as captured:
            result = run(brand, items)
        assert result.created == size
        counts.append(len(captured))
    assert counts[1] - counts[0] == (30 if with_sync else 0), counts
    assert len(_crm_deliveries()) == (51 if with_sync else 0)


def test_a_crm_sync_saved_in_the_same_transaction_as_earlier_events_is_seen_by_later_ones(brand):
    """As an import chunk does: events emitted one after another in one atomic block."""
    from django.db import transaction

    from customers import documents
    from customers.services import customer_event_emit

    customers = [factories.customer(brand, customer_id=name) for name in ("before", "after", "disabled")]
    loaded = documents.load([c.pk for c in customers])
    with transaction.atomic():
        customer_event_emit(event_type="customer.created", data=loaded[0])  # no sync yet: cached as none
        sync = _crm_sync(brand)
        customer_event_emit(event_type="customer.created", data=loaded[1])
        sync.enabled = False
        sync.save()
        customer_event_emit(event_type="customer.created", data=loaded[2])
    assert [(event, name.split(" — ")[0]) for event, name in _crm_deliveries()] == [("customer.created", "CRM")]


def test_crm_syncs_cached_inside_one_atomic_block_follow_saves_and_savepoint_rollbacks(brand):
    """The cache serves the block that filled it; it is dropped by a save or delete of a sync or
    action, and by the rollback of a savepoint in which a sync was created."""
    from django.db import transaction

    from hooks.outbound.services import crm_actions_for

    with transaction.atomic():
        assert crm_actions_for(brand_id=brand.pk) == []
        try:
            with transaction.atomic():
                _crm_sync(brand)
                assert len(crm_actions_for(brand_id=brand.pk)) == 2
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
        assert crm_actions_for(brand_id=brand.pk) == []
        sync = _crm_sync(brand, name="Kept")
        actions = crm_actions_for(brand_id=brand.pk)
        assert [a.sync_id for a in actions] == [sync.pk, sync.pk]
        actions[0].enabled = False
        actions[0].save()
        assert [a.action for a in crm_actions_for(brand_id=brand.pk)] == ["update"]
        sync.delete()
        assert crm_actions_for(brand_id=brand.pk) == []


def test_type_specific_activity_fields_survive_export_and_import_into_another_brand(brand):
    from datetime import UTC, datetime
    from decimal import Decimal

    from customers.services import activity_record

    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    customer = factories.customer(brand, customer_id="TS1")
    specs = [
        {"kind": "NOTE", "external_id": "n1", "body": "**bold**", "markdown": True, "associated_user": "sanne"},
        {"kind": "TASK", "external_id": "t1", "due_date": when, "status": "Pending", "done": False,
         "assigned_user": "sanne@example.com"},
        {"kind": "CALL", "external_id": "c1", "from_number": "+31612345678", "to_number": "+31201234567",
         "duration_ms": 134000, "start_time": when},
        {"kind": "TICKET", "external_id": "k1", "created_date": when, "priority": "HIGH", "pipeline": "Support",
         "pipeline_stage": "Open", "custom_header": "Ticket #1", "custom_description": "Printer"},
        {"kind": "DEAL", "external_id": "d1", "close_date": when, "currency": "EUR", "amount": Decimal("1200.50"),
         "done": True},
        {"kind": "APPOINTMENT", "external_id": "a1", "start_date": when, "end_date": when, "all_day": False,
         "venue": "Video call"},
    ]
    for spec in specs:
        activity_record(customer=customer, occurred_at=when, **spec)
    out = io.StringIO()
    customers_export(brand=brand, out=out)
    (item,) = json.loads(out.getvalue())
    by_id = {entry["externalID"]: entry for entry in item["timeline"]}
    assert by_id["t1"]["dueDate"] == "2026-03-01T09:30:00Z" and by_id["t1"]["done"] is False
    assert (by_id["c1"]["durationMs"], by_id["c1"]["fromNumber"]) == (134000, "+31612345678")
    assert (by_id["d1"]["amount"], by_id["d1"]["currency"]) == ("1200.50", "EUR")
    assert by_id["n1"]["markdown"] is True and "markdown" not in by_id["t1"]

    twin = factories.BrandFactory(slug="twin2", default_region="NL", time_zone="Europe/Amsterdam")
    assert customers_import(brand=twin, rows=json_rows_read(out.getvalue())).created == 1
    fields = [f.name for f in Activity._meta.concrete_fields if f.name not in ("id", "customer", "created_at")]
    original = sorted(Activity.objects.filter(customer__brand=brand).values(*fields), key=lambda a: a["external_id"])
    copied = sorted(Activity.objects.filter(customer__brand=twin).values(*fields), key=lambda a: a["external_id"])
    assert copied == original
    again = io.StringIO()
    customers_export(brand=twin, out=again)
    timeline_again = json.loads(again.getvalue())[0]["timeline"]
    assert sorted(timeline_again, key=lambda e: e["externalID"]) == sorted(item["timeline"], key=lambda e: e["externalID"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"dueDate": "tomorrow"}, "timeline[0].dueDate"),
        ({"durationMs": "12"}, "timeline[0].durationMs"),
        ({"amount": "lots"}, "timeline[0].amount"),
        ({"priority": "URGENT"}, "timeline[0].priority"),
        ({"done": "yes"}, "timeline[0].done"),
    ],
)
def test_bad_type_specific_fields_reject_the_row_with_the_field_named(brand, extra, message):
    entry = {"type": "task", "lastUpdate": "2026-03-01 10:30:00", "message": "x", "externalID": "e1", **extra}
    result = run(brand, [{"customerID": "X1", "customerFirstname": "A", "timeline": [entry]}])
    assert result.created == 0
    (rejected,) = result.rejected
    assert message in str(rejected)
