"""Reads: find customers by address or primary id."""

from __future__ import annotations

import sys
import threading

from django.db import connection
from django.db.models import QuerySet

from hub.models import Brand

from .models import Customer
from .normalize import InvalidAddress, normalize_email, normalize_phone


def customer_find_by_address(*, brand: Brand, kind: str, value: str) -> QuerySet[Customer]:
    """Customers of the brand holding the address (any spelling of a phone number)."""
    try:
        if kind == "email":
            normalized = normalize_email(value)
        elif kind in {"telephone", "whatsapp"}:
            normalized = normalize_phone(value, brand.default_region, strict=False)
        else:
            normalized = value.strip().lstrip("@").lower()
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


# M8Com: fromNumber first, then toNumber; among the holders of one number the most
# recently updated customer. Both numbers in one statement (one round trip for a miss).
_M8COM_BY_PHONES = (
    "SELECT " + ", ".join(f'c."{name}"' for name in M8COM_COLUMNS) + ', c."m8com_document", a."normalized" '  # noqa: S608
    f'FROM "{_ADDRESS}" a JOIN "{_CUSTOMER}" c ON c."id" = a."customer_id" '
    'WHERE a."brand_id" = %s AND a."kind" = \'telephone\' AND a."normalized" IN (%s, %s) AND c."brand_id" = %s '
    'ORDER BY CASE WHEN a."normalized" = %s THEN 0 ELSE 1 END, c."updated_at" DESC, c."id" DESC LIMIT 1'
)

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


def m8com_contact_by_phones(*, brand_id: int, numbers: list[str]) -> tuple[tuple, str] | None:
    """M8Com number lookup for up to two numbers in order of preference (E.164):
    ``(M8COM_COLUMNS + (m8com_document,), the number that matched)`` of the most
    recently updated customer of the brand holding the first number that anyone
    holds, or None."""
    if not numbers:
        return None
    first, second = numbers[0], numbers[-1]
    rows = _rows(_M8COM_BY_PHONES, [brand_id, first, second, brand_id, first])
    return (rows[0][:-1], rows[0][-1]) if rows else None
