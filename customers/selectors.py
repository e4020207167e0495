"""Reads: find customers by address or primary id."""

from __future__ import annotations

import functools
import sys
import threading

from django.db import connection
from django.db.models import QuerySet

from hub.models import Brand

from .models import DIGITS_REVERSED_MAX_LENGTH, Customer
from .normalize import PHONE_KINDS, InvalidAddress, normalize_email


def customer_find_by_address(*, brand: Brand, kind: str, value: str) -> QuerySet[Customer]:
    """Customers of the brand holding the e-mail or social address. Phone
    numbers have one home, the brand's matching policy: customers.matching."""
    if kind in PHONE_KINDS:
        raise ValueError("Phone numbers are matched by customers.matching (the brand's matching policy).")
    try:
        normalized = normalize_email(value) if kind == "email" else value.strip().lstrip("@").lower()
    except InvalidAddress:
        return Customer.objects.none()
    return Customer.objects.filter(
        brand=brand, addresses__brand=brand, addresses__kind=kind, addresses__normalized=normalized
    ).distinct()


def customer_find_by_id(*, brand: Brand, customer_id: str) -> Customer | None:
    return Customer.objects.filter(brand=brand, customer_id=customer_id).first()


# ---------------------------------------------------------------- lookup hot path
#
# The platform lookups read the finished answers stored on each customer
# (customers.documents) with one indexed statement, written as SQL because the
# ORM's query building costs more than the query itself on this path.

_CUSTOMER = Customer._meta.db_table
_ADDRESS = Customer._meta.get_field("addresses").related_model._meta.db_table
M8COM_COLUMNS = ("id", "customer_id", "first_name", "last_name", "display_name", "company_name", "job_title")
# Table and column names come from the models; every value is a bound parameter.
_OMNIDESK_BY_ADDRESS = (
    f'SELECT c."id", c."omnidesk_document" FROM "{_ADDRESS}" a '  # noqa: S608
    f'JOIN "{_CUSTOMER}" c ON c."id" = a."customer_id" '
    'WHERE a."brand_id" = %s AND a."kind" = %s AND a."normalized" = %s AND c."brand_id" = %s '
    'ORDER BY c."id"'
)
_OMNIDESK_BY_ID = f'SELECT "id", "omnidesk_document" FROM "{_CUSTOMER}" WHERE "brand_id" = %s AND "customer_id" = %s'  # noqa: S608

# What a phone match returns per customer, by use.
PHONE_MATCH_COLUMNS = {
    "m8com": (*M8COM_COLUMNS, "m8com_document"),
    "omnidesk": ("id", "omnidesk_document"),
    "id": ("id",),
}

_local = threading.local()


def sql_rows(sql: str, params: list | dict) -> list[tuple]:
    """Run one hot-path statement. On PostgreSQL the thread keeps one cursor per
    connection (creating a cursor costs more CPU than these queries) that binds
    parameters on the server and runs the statement prepared: PostgreSQL parses
    and plans it once per connection instead of on every call, and the client
    sends the values instead of quoting them into the SQL text (Django's own
    cursors bind on the client). Errors go through Django's wrapper (so a
    broken connection is replaced as usual), and when queries are being
    recorded (DEBUG, query-count assertions) Django's own cursor is used so
    every query is counted."""
    if connection.vendor != "postgresql" or connection.queries_logged:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    connection.ensure_connection()
    raw = connection.connection
    hot = getattr(_local, "cursor", None)  # psycopg's own cursor, not Django's wrapper
    if hot is None or hot.closed or hot.connection is not raw:
        import psycopg

        if raw.prepare_threshold is None and "prepare_threshold" not in connection.settings_dict["OPTIONS"]:
            # Django turns psycopg's prepared statements off unless OPTIONS says
            # otherwise (for poolers such as PgBouncer in transaction mode; set
            # OPTIONS["prepare_threshold"] = None there to keep them off). Only
            # statements executed with prepare=True, the ones here, are prepared:
            # Django's own cursors bind on the client and never prepare.
            raw.prepare_threshold = sys.maxsize
        hot = _local.cursor = psycopg.Cursor(raw)
    with connection.wrap_database_errors:
        hot.execute(sql, params, prepare=True)
        return hot.fetchall()


_rows = sql_rows


def omnidesk_documents_by_address(*, brand_id: int, kind: str, normalized: str) -> list[tuple[int, str]]:
    """Omnidesk lookup: ``(pk, omnidesk_document)`` of every customer of the brand
    holding the normalized address, oldest customer first (all matches are returned)."""
    return _rows(_OMNIDESK_BY_ADDRESS, [brand_id, kind, normalized, brand_id])


def omnidesk_document_by_customer_id(*, brand_id: int, customer_id: str) -> list[tuple[int, str]]:
    """Omnidesk primaryID lookup: zero or one ``(pk, omnidesk_document)``."""
    return _rows(_OMNIDESK_BY_ID, [brand_id, customer_id])


@functools.lru_cache(maxsize=128)
def _phone_match_sql(columns: str, kinds: int, numbers: int, suffixes: int, first_only: bool) -> str:
    """One statement for a phone match (customers.matching holds the rules).

    Every address of the given types holding one of the numbers exactly, or
    (suffix matching) whose reversed digits start with a suffix's, gives its
    customer a rank: the first exact number 0, the next 1, ..., then the
    suffixes in the same order. Each customer counts once, at its best rank.
    Rows: the columns, the rank, and how many customers share that rank;
    best rank first, then the most recently updated (``first_only``: only
    that one) or the oldest customer first (every match, Omnidesk).

    Each kind of match is its own branch of a UNION ALL, so each is a range
    on the leading columns of its index (address_lookup, address_suffix_lookup):
    an OR inside one WHERE lets the planner scan all the brand's phones.
    A suffix is a range on the reversed digits: the digit strings starting with
    "9876" lie between "9876" and "9876" followed by nines.
    """
    kind_in = f'a."brand_id" = %s AND a."kind" IN ({", ".join(["%s"] * kinds)})'
    ranks = " ".join(f'WHEN a."normalized" = %s THEN {i}' for i in range(numbers))
    selected = ", ".join(f'c."{name}"' for name in PHONE_MATCH_COLUMNS[columns])
    order = 'c."updated_at" DESC, c."id" DESC LIMIT 1' if first_only else 'c."id"'
    if kinds == 1 and not suffixes:
        # The default policy, in the shape of the statement before issue 12 (no
        # grouping: a customer holds a number at most once per type, constraint
        # address_unique_per_customer), so a policy that is off costs nothing.
        return (
            f'SELECT {selected}, CASE {ranks} END AS "rank", COUNT(*) OVER (PARTITION BY a."normalized") '  # noqa: S608
            f'FROM "{_ADDRESS}" a JOIN "{_CUSTOMER}" c ON c."id" = a."customer_id" '
            f'WHERE {kind_in} AND a."normalized" IN ({", ".join(["%s"] * numbers)}) AND c."brand_id" = %s '
            f'ORDER BY "rank", {order}'
        )
    branches = [
        f'SELECT a."customer_id" AS "cid", CASE {ranks} END AS "rank" FROM "{_ADDRESS}" a '  # noqa: S608
        f'WHERE {kind_in} AND a."normalized" IN ({", ".join(["%s"] * numbers)})'
    ]
    branches += [
        f'SELECT a."customer_id", {numbers + i} FROM "{_ADDRESS}" a '  # noqa: S608
        f'WHERE {kind_in} AND a."digits_reversed" BETWEEN %s AND %s'
        for i in range(suffixes)
    ]
    # Names come from the models, placeholders from counts: every value is a bound parameter.
    return (
        f'SELECT {selected}, m."rank", COUNT(*) OVER (PARTITION BY m."rank") FROM ('  # noqa: S608
        f'SELECT u."cid", MIN(u."rank") AS "rank" FROM ({" UNION ALL ".join(branches)}) u GROUP BY u."cid") m '
        f'JOIN "{_CUSTOMER}" c ON c."id" = m."cid" WHERE c."brand_id" = %s '
        f'ORDER BY m."rank", {order}'
    )


def phone_matches(
    *,
    brand_id: int,
    kinds: tuple[str, ...],
    numbers: tuple[str, ...],
    suffixes: tuple[str, ...] = (),
    columns: str,
    first_only: bool,
) -> list[tuple]:
    """The customers of the brand holding one of the E.164 ``numbers`` (or, by
    suffix matching, a number ending in one of the digit ``suffixes``) as an
    address of one of ``kinds``; see _phone_match_sql for the rows. One
    statement whatever the policy, every part of it an index range."""
    if not numbers and not suffixes:
        return []
    wanted = list(numbers or ("",))  # IN () is no valid SQL: "" is never a stored number
    params: list = [*wanted, brand_id, *kinds, *wanted]
    for suffix in suffixes:
        low = suffix[::-1]
        params += [brand_id, *kinds, low, low + "9" * (DIGITS_REVERSED_MAX_LENGTH - len(low))]
    sql = _phone_match_sql(columns, len(kinds), len(wanted), len(suffixes), first_only)
    return _rows(sql, [*params, brand_id])
