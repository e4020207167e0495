"""Suffix matching's stored column (Address.digits_reversed) on every write path, its
backfill, the index the statement uses, and the policy's pure rules (customers.matching)."""

from __future__ import annotations

import importlib
import json
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone

from customers.importing import customers_import, json_rows_read
from customers.matching import customer_for_phone, phone_for_lookup, phone_policy
from customers.models import Address, Customer
from customers.normalize import digits_reversed, is_extension
from customers.selectors import _phone_match_sql, phone_matches
from customers.services import customer_update
from tests.factories import customer

pytestmark = pytest.mark.django_db


def stored(brand) -> dict[str, str]:
    return dict(Address.objects.filter(brand=brand).values_list("normalized", "digits_reversed"))


def test_every_write_path_keeps_the_reversed_digits_with_the_number(brand):
    maria = customer(
        brand,
        addresses=[
            {"type": "telephone", "address": "06 1234 5678"},
            {"type": "whatsapp", "address": "+46 70 123 45 67"},
            {"type": "email", "address": "maria@example.org"},
        ],
    )
    assert stored(brand) == {
        "+31612345678": "87654321613",
        "+46701234567": "76543210764",
        "maria@example.org": "",
    }
    customer_update(customer=maria, addresses=[{"type": "telephone", "address": "+31 20 123 4567"}])
    assert stored(brand) == {"+31201234567": "76543210213"}
    # A single row saved (the admin's address inline saves this way).
    address = Address.objects.get()
    address.normalized = "+31687654321"
    address.save(update_fields=["normalized"])
    assert stored(brand) == {"+31687654321": "12345678613"}


def test_imports_keep_the_reversed_digits_on_create_and_on_change(brand):
    def run(number):
        item = {
            "customerID": "I-1",
            "customerFirstname": "Ina",
            "addresses": [{"type": "telephone", "address": number}],
        }
        customers_import(brand=brand, rows=json_rows_read(json.dumps([item])))

    run("0612345678")
    assert stored(brand) == {"+31612345678": "87654321613"}
    run("0201234567")
    assert stored(brand) == {"+31201234567": "76543210213"}


def test_the_migration_backfills_existing_phone_addresses(brand):
    customer(brand, addresses=[{"type": "telephone", "address": "0612345678"}, {"type": "email", "address": "a@b.nl"}])
    customer(brand, addresses=[{"type": "whatsapp", "address": "+46701234567"}])
    Address.objects.update(digits_reversed="")
    migration = importlib.import_module("customers.migrations.0004_address_digits_reversed")
    # What the backfill uses of the schema editor (one cannot be opened inside a test's transaction on SQLite).
    editor = SimpleNamespace(connection=connection, execute=lambda sql: connection.cursor().execute(sql))
    migration.backfill(apps, editor)
    assert stored(brand) == {"+31612345678": "87654321613", "+46701234567": "76543210764", "a@b.nl": ""}


def test_every_part_of_the_statement_is_an_index_range(brand):
    """No table scan at a million customers: with the policy fully on, the exact
    numbers are a range of address_lookup and each suffix one of address_suffix_lookup
    (an OR in one WHERE made both planners scan all the brand's phones), on SQLite
    and PostgreSQL alike, with statistics of a table of some size."""
    now = timezone.now()
    people = Customer.objects.bulk_create(
        Customer(brand=brand, customer_id=f"X{i}", created_at=now, updated_at=now) for i in range(2000)
    )
    rows = []
    for i, person in enumerate(people):
        for k in range(4):
            number = f"+316{i * 4 + k:08d}"
            kind = "telephone" if k % 2 else "whatsapp"
            rows.append(Address(brand=brand, customer=person, kind=kind, value=number, normalized=number))
            rows[-1].digits_reversed = digits_reversed(kind, number)
    Address.objects.bulk_create(rows)
    sql = _phone_match_sql("m8com", 2, 2, 1, True)
    kinds = ["telephone", "whatsapp"]
    numbers = ["+31600000005", "+31600000006"]
    params = [*numbers, brand.pk, *kinds, *numbers, brand.pk, *kinds, "500000", "500000" + "9" * 26, brand.pk]
    explain = "EXPLAIN " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        # The default policy's statement (one type, no suffix) seeks address_lookup too.
        cursor.execute(
            explain + _phone_match_sql("m8com", 1, 2, 0, True), [*numbers, brand.pk, kinds[0], *numbers, brand.pk]
        )
        plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
        assert "address_lookup" in plan and "Seq Scan on customers_address" not in plan and "SCAN a" not in plan, plan
        cursor.execute(explain + sql, params)
        plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
    assert "address_lookup" in plan and "address_suffix_lookup" in plan, plan
    if connection.vendor == "postgresql":
        assert "Seq Scan on customers_address" not in plan, plan
        assert "digits_reversed)::text >= '500000'" in plan, plan  # the suffix is the index condition
    else:
        assert "SCAN a" not in plan and "digits_reversed>?" in plan, plan
    assert [
        row[0]
        for row in phone_matches(
            brand_id=brand.pk,
            kinds=tuple(kinds),
            numbers=tuple(numbers),
            suffixes=("000005",),
            columns="id",
            first_only=False,
        )
    ] == [people[1].pk]


def test_a_suffix_range_finds_exactly_the_numbers_ending_in_it(brand):
    ends = ["+31612345678", "+33612345678", "+31612345679", "+31612999999", "+31620000000"]
    pks = {number: customer(brand, addresses=[{"type": "telephone", "address": number}]).pk for number in ends}

    def by_suffix(suffix):
        rows = phone_matches(
            brand_id=brand.pk, kinds=("telephone",), numbers=(), suffixes=(suffix,), columns="id", first_only=False
        )
        return sorted(row[0] for row in rows)

    assert by_suffix("612345678") == sorted([pks["+31612345678"], pks["+33612345678"]])
    assert by_suffix("999999") == [pks["+31612999999"]]  # the all-nines bound
    assert by_suffix("620000000") == [pks["+31620000000"]]
    assert by_suffix("123456780") == []


@pytest.mark.parametrize(
    ("value", "extension"),
    [("201", True), ("12345", True), ("12 345", True), ("(1)2-3.4", True), ("123456", False)]
    + [("+31 612", False), ("", False), ("abc", False), ("١٢٣", False)],
)
def test_extensions_are_up_to_five_plain_digits(value, extension):
    assert is_extension(value) is extension


def test_a_lookup_number_is_none_for_extensions_and_non_numbers():
    assert phone_for_lookup("201", "NL") is None
    assert phone_for_lookup("user-7781", "NL") is None
    assert phone_for_lookup("06 1234 5678", "NL") == "+31612345678"


def test_own_lines_match_numbers_and_prefixes_only(brand):
    brand.own_lines = ["+31205550100", "+3120666*"]
    own = phone_policy(brand)
    assert own.is_own_line("+31205550100") and own.is_own_line("+31206660000")
    assert not own.is_own_line("+31205550101") and not own.is_own_line("+31206670000")


def test_inbound_matching_uses_the_brand_policy(brand):
    wendy = customer(brand, addresses=[{"type": "whatsapp", "address": "+31612345678"}])
    assert customer_for_phone(brand=brand, value="06 1234 5678") is None
    brand.phone_address_types = ["telephone", "whatsapp"]
    assert customer_for_phone(brand=brand, value="06 1234 5678") == wendy
    assert digits_reversed("telephone", "+31612345678") == "87654321613"
