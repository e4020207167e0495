"""Import rejects impossible values row by row, on SQLite and PostgreSQL alike (issue 9,
"Nothing lost"): one bad row lands in the rejected-row report, its neighbours are imported."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from customers import importing
from customers.importing import csv_rows_read, customers_import, json_rows_read
from customers.models import Activity, Customer

pytestmark = pytest.mark.django_db

OUT_OF_RANGE = "is outside the times the hub can store"
NUL = "Contains a NUL character"


def good(customer_id):
    return {
        "customerID": customer_id,
        "customerFirstname": customer_id.title(),
        "timeline": [{"type": "note", "lastUpdate": "2026-03-01 10:30:00", "message": "fine", "externalID": "n1"}],
    }


def entry(**values):
    return {"type": "task", "lastUpdate": "2026-03-01 10:30:00", "message": "x", "externalID": "e1", **values}


def import_between_neighbours(brand, hostile, chunk_size=1000):
    """The hostile row between two good ones in one chunk; returns (result, rejected errors)."""
    items = [good("before"), {"customerID": "hostile", "customerFirstname": "H", **hostile}, good("after")]
    result = customers_import(brand=brand, rows=json_rows_read(json.dumps(items)), chunk_size=chunk_size)
    assert sorted(Customer.objects.values_list("customer_id", flat=True)) == ["after", "before"]
    assert Activity.objects.count() == 2
    assert (result.total, result.created) == (3, 2)
    (rejected,) = result.rejected
    assert (rejected.where, rejected.customer_id) == ("index 1", "hostile")
    return rejected.errors


@pytest.mark.parametrize(
    ("timeline_entry", "key"),
    [
        # Year 1 one hour east of UTC is in year 0 in UTC: OverflowError in make_naive on SQLite.
        ({"lastUpdate": "0001-01-01T00:00:00+01:00"}, "timeline[0].lastUpdate"),
        ({"occurredAt": "9999-12-31T23:59:59-01:00"}, "timeline[0].occurredAt"),
        # Naive times are the brand's (Europe/Amsterdam, UTC+1 in January).
        ({"lastUpdate": "0001-01-01 00:00:00"}, "timeline[0].lastUpdate"),
        # Representable in UTC, not in every brand time zone (documents render in the brand's zone).
        ({"lastUpdate": "9999-12-31T23:00:00Z"}, "timeline[0].lastUpdate"),
        ({"dueDate": "0001-01-01T00:00:00+14:00"}, "timeline[0].dueDate"),
        ({"closeDate": "9999-12-31T23:59:59-12:00"}, "timeline[0].closeDate"),
    ],
)
def test_a_time_outside_the_storable_range_rejects_its_row_only(brand, timeline_entry, key):
    errors = import_between_neighbours(brand, {"timeline": [entry(**timeline_entry)]})
    assert list(errors) == [key]
    assert OUT_OF_RANGE in errors[key][0]


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        # Largest unsigned 64-bit integer: orjson keeps it an int; the column is a signed 64-bit one.
        ({"durationMs": 18446744073709551615}, "timeline[0].durationMs", "less than or equal to 9223372036854775807"),
        ({"durationMs": 1e300}, "timeline[0].durationMs", "whole number of milliseconds"),
        ({"amount": "Infinity"}, "timeline[0].amount", "is not an amount"),
        ({"amount": "NaN"}, "timeline[0].amount", "is not an amount"),
        ({"amount": "-inf"}, "timeline[0].amount", "is not an amount"),
        ({"amount": 1e300}, "timeline[0].amount", "digits"),
        ({"amount": 10**40}, "timeline[0].amount", "digits"),
    ],
)
def test_impossible_numbers_reject_their_row_only(brand, values, key, message):
    errors = import_between_neighbours(brand, {"timeline": [entry(type="call", **values)]})
    assert list(errors) == [key]
    assert message in errors[key][0]


@pytest.mark.parametrize(
    ("hostile", "key"),
    [
        ({"customerLastname": "Null\x00byte"}, "customerLastname"),
        ({"addresses": [{"address": "a\x00@example.org", "type": "email"}]}, "addresses[0].address"),
        ({"customFields": [{"tier": "gold\x00"}]}, "customFields[0].tier"),
        ({"customFields": [{"ti\x00er": "gold"}]}, "customFields[0]"),
        ({"timeline": [entry(message="body \x00 text")]}, "timeline[0].message"),
        ({"timeline": [entry(venue="\x00")]}, "timeline[0].venue"),
    ],
)
def test_a_nul_character_rejects_its_row_on_every_database(brand, hostile, key):
    errors = import_between_neighbours(brand, hostile)
    assert list(errors) == [key]
    assert NUL in errors[key][0]


def test_a_nul_in_the_customer_id_is_reported_escaped(brand):
    items = [good("before"), {"customerID": "x\x00y"}, good("after")]
    result = customers_import(brand=brand, rows=json_rows_read(json.dumps(items)))
    (rejected,) = result.rejected
    assert str(rejected) == (
        "index 1 (customerID x\\u0000y): customerID: Contains a NUL character (\\u0000), which the database cannot store"
    )
    assert result.created == 2


def test_csv_cells_with_a_nul_reject_their_line_only(brand):
    text = "customer_id,first_name,email\nc1,Ann,ann@example.org\nc2,Bo\x00b,bob@example.org\nc3,Cy,cy@example.org\n"
    result = customers_import(brand=brand, rows=csv_rows_read(text))
    assert sorted(Customer.objects.values_list("customer_id", flat=True)) == ["c1", "c3"]
    (rejected,) = result.rejected
    assert (rejected.where, list(rejected.errors)) == ("line 3", ["first_name"])


@pytest.mark.parametrize("chunk_size", [1, 3])
def test_a_row_the_database_refuses_is_rejected_alone_even_alone_in_its_chunk(brand, monkeypatch, chunk_size):
    """The safety net behind validation: whatever a database or driver raises for one row
    (SQLite's OverflowError, PostgreSQL's DataError) costs that row only."""
    real_insert = importing._customers_insert

    def refuse_hostile(brand, items, now):
        if any(item.customer_id == "hostile" for item in items):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real_insert(brand, items, now)

    monkeypatch.setattr(importing, "_customers_insert", refuse_hostile)
    errors = import_between_neighbours(brand, {}, chunk_size=chunk_size)
    assert errors == {"database": ["Python int too large to convert to SQLite INTEGER"]}


def test_the_import_command_reports_the_year_one_row_and_imports_the_rest(brand, tmp_path):
    path = tmp_path / "customers.json"
    hostile = {"customerID": "old", "timeline": [entry(lastUpdate="0001-01-01T00:00:00+01:00")]}
    path.write_text(json.dumps([good("before"), hostile, good("after")]))
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match=r"1 row\(s\) rejected; the other rows were imported") as raised:
        call_command("import_customers", "acme", str(path), stdout=out, stderr=err)
    assert raised.value.returncode == 2
    assert "acme: 3 rows: 2 created, 0 updated, 0 unchanged, 1 rejected." in out.getvalue()
    assert "Rejected index 1 (customerID old): timeline[0].lastUpdate: '0001-01-01T00:00:00+01:00' is outside" in (
        err.getvalue()
    )
    assert sorted(Customer.objects.values_list("customer_id", flat=True)) == ["after", "before"]
