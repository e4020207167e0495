"""Streamed CSV exports of filtered log lists.

Only what the lists show goes out: times, brand, integration, URL or path (secrets
masked again on the way out), status, outcome, duration, customer ID, message id,
note or error. Headers and bodies never do: they are read on the detail page.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.db.models import Case, Value, When
from django.http import StreamingHttpResponse
from django.utils import timezone

from hub.redaction import redact_query, redact_text, redact_url

from .filters import inbound_ok_q
from .selectors import customer_ref_of_delivery

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write() hands the line back (csv.writer into a generator)."""

    def write(self, value: str) -> str:
        return value


def _cell(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    # Spreadsheets run cells that start with these as formulas (CSV injection).
    return f"'{text}" if isinstance(value, str) and text.startswith(_FORMULA_START) else text


def csv_response(filename: str, header: list[str], rows: Iterable[Iterable]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def export_filename(prefix: str) -> str:
    return f"{prefix}-{timezone.now():%Y%m%d-%H%M%S}.csv"


LOG_HEADER = [
    "direction",
    "time",
    "brand",
    "integration",
    "endpoint or source",
    "event",
    "method",
    "URL or path",
    "status",
    "outcome",
    "duration (ms)",
    "customer ID",
    "message id",
    "note or error",
    "detail",
]


def log_rows_csv(rows) -> Iterator[list]:
    for row in rows:
        yield [
            row.direction,
            row.at,
            row.brand,
            row.integration,
            row.name,
            row.event,
            row.method,
            row.target,
            row.status,
            "ok" if row.ok else "failed",
            round(row.duration_ms, 1),
            row.customer_ref,
            row.message_id,
            row.note,
            row.detail_url,
        ]


INBOUND_HEADER = [
    "time",
    "brand",
    "endpoint",
    "method",
    "path",
    "query (redacted)",
    "status",
    "outcome",
    "latency (ms)",
    "customers returned",
    "customer ID",
    "key prefix",
    "remote address",
    "note",
]


def inbound_csv(queryset) -> Iterator[list]:
    rows = (
        queryset.annotate(ok=Case(When(inbound_ok_q(), then=Value(True)), default=Value(False)))
        .select_related(None)
        .values_list(
            "created_at",
            "brand__name",
            "endpoint",
            "method",
            "path",
            "query",
            "status",
            "ok",
            "latency_ms",
            "customers_returned",
            "customer__customer_id",
            "credential_prefix",
            "remote_addr",
            "note",
        )
    )
    for row in rows.iterator(chunk_size=2000):
        at, brand, endpoint, method, path, query, status, ok, latency, returned, customer, prefix, addr, note = row
        yield [
            at,
            brand,
            endpoint,
            method,
            path,
            redact_query(query),
            status,
            "ok" if ok else "failed",
            round(latency, 1),
            returned,
            customer,
            prefix,
            addr,
            redact_text(note),
        ]


ATTEMPT_HEADER = [
    "time",
    "brand",
    "source kind",
    "source",
    "event",
    "message id",
    "attempt",
    "method",
    "URL (redacted)",
    "response status",
    "outcome",
    "duration (ms)",
    "customer ID",
    "error",
    "note",
]


def attempts_csv(queryset) -> Iterator[list]:
    rows = (
        queryset.select_related(None)
        .annotate(customer_ref=customer_ref_of_delivery())
        .values_list(
            "started_at",
            "brand__name",
            "delivery__source_kind",
            "delivery__source_name",
            "delivery__event_type",
            "delivery__message_id",
            "number",
            "method",
            "url",
            "response_status",
            "succeeded",
            "duration_ms",
            "customer_ref",
            "error",
            "note",
        )
    )
    for row in rows.iterator(chunk_size=2000):
        at, brand, kind, source, event, message_id, number, method, url, status, ok, ms, customer, error, note = row
        yield [
            at,
            brand,
            kind,
            source,
            event,
            message_id,
            number,
            method,
            redact_url(url),
            status,
            "ok" if ok else "failed",
            round(ms, 1),
            customer,
            redact_text(error),
            redact_text(note),
        ]
