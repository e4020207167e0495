"""Reads of the logs: the rows a user may see, filtered, newest first, inbound
and outbound together (the unified Logs page and its CSV export)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import islice

from django.apps import apps
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.urls import reverse

from hub import scoping
from hub.redaction import redact_query, redact_text, redact_url

from .filters import INBOUND, INTEGRATIONS, OUTBOUND, LogQuery
from .models import DeliveryAttempt, InboundRequest, inbound_succeeded

INTEGRATION_LABELS = {value: label for value, label, _direction in INTEGRATIONS}


@dataclass(frozen=True)
class LogRow:
    """One line of the unified list: an inbound call or an outbound attempt."""

    direction: str
    pk: int
    at: datetime
    brand: str
    integration: str
    name: str
    event: str
    method: str
    target: str
    status: int | None
    ok: bool
    duration_ms: float
    customer_ref: str
    message_id: str
    note: str

    @property
    def detail_url(self) -> str:
        model = "inboundrequest" if self.direction == INBOUND else "deliveryattempt"
        return reverse(f"admin:synclog_{model}_change", args=[self.pk])

    @property
    def integration_label(self) -> str:
        return INTEGRATION_LABELS.get(self.integration, self.integration)


def logs_visible(*, user, direction: str) -> QuerySet:
    """Every log row of the user's brands (superusers: all, calls to no brand included)."""
    queryset = InboundRequest.objects.all() if direction == INBOUND else DeliveryAttempt.objects.all()
    return scoping.restrict(queryset, user=user, action=scoping.VIEW)


def customer_ref_of_delivery():
    customer_model = apps.get_model("customers", "Customer")
    return Subquery(customer_model.objects.filter(pk=OuterRef("delivery__customer_id")).values("customer_id")[:1])


def _rows(direction: str, queryset) -> QuerySet:
    if direction == INBOUND:
        return queryset.order_by("-created_at", "-pk").values(
            "pk",
            "endpoint",
            "method",
            "path",
            "query",
            "status",
            "latency_ms",
            "note",
            at=F("created_at"),
            brand_name=F("brand__name"),
            customer_ref=F("customer__customer_id"),
        )
    return queryset.order_by("-started_at", "-pk").values(
        "pk",
        "method",
        "url",
        "response_status",
        "succeeded",
        "duration_ms",
        "error",
        "note",
        at=F("started_at"),
        brand_name=F("brand__name"),
        kind=F("delivery__source_kind"),
        source_name=F("delivery__source_name"),
        event_type=F("delivery__event_type"),
        message_id=F("delivery__message_id"),
        customer_ref=customer_ref_of_delivery(),
    )


def _as_row(direction: str, values: dict) -> LogRow:
    if direction == INBOUND:
        query = redact_query(values["query"])
        status = values["status"]
        endpoint = values["endpoint"]
        return LogRow(
            direction=INBOUND,
            pk=values["pk"],
            at=values["at"],
            brand=values["brand_name"] or "",
            integration=endpoint.split(".", 1)[0],
            name=endpoint,
            event="",
            method=values["method"],
            target=values["path"] + (f"?{query}" if query else ""),
            status=status,
            ok=inbound_succeeded(endpoint, status),
            duration_ms=values["latency_ms"],
            customer_ref=values["customer_ref"] or "",
            message_id="",
            note=redact_text(values["note"]),
        )
    return LogRow(
        direction=OUTBOUND,
        pk=values["pk"],
        at=values["at"],
        brand=values["brand_name"] or "",
        integration=values["kind"],
        name=values["source_name"],
        event=values["event_type"],
        method=values["method"],
        target=redact_url(values["url"]),
        status=values["response_status"],
        ok=values["succeeded"],
        duration_ms=values["duration_ms"],
        customer_ref=values["customer_ref"] or "",
        message_id=values["message_id"],
        note=redact_text(values["error"] or values["note"]),
    )


def logs_filtered(*, user, query: LogQuery) -> dict[str, QuerySet]:
    """{direction: the user's rows of that direction matching the filters}; a
    direction no row of which can match is left out."""
    filtered = {}
    for direction in query.directions():
        queryset = query.apply(direction, logs_visible(user=user, direction=direction), user=user)
        if queryset is not None:
            filtered[direction] = queryset
    return filtered


def _merged(streams: Mapping[str, Iterable[dict]]) -> Iterator[LogRow]:
    rows = [map(partial(_as_row, direction), stream) for direction, stream in streams.items()]
    return heapq.merge(*rows, key=lambda row: (row.at, row.direction == INBOUND, row.pk), reverse=True)


def log_page(*, filtered: Mapping[str, QuerySet], offset: int, limit: int) -> list[LogRow]:
    """Rows offset..offset+limit of the merged list (``filtered``: logs_filtered).
    Each table gives its newest offset+limit rows (an indexed, bounded read); the merge picks the page."""
    wanted = offset + limit
    streams = {direction: list(_rows(direction, qs)[:wanted]) for direction, qs in filtered.items()}
    return list(islice(_merged(streams), offset, wanted))


def log_count(*, filtered: Mapping[str, QuerySet]) -> dict[str, int]:
    return {direction: qs.count() for direction, qs in filtered.items()}


def log_iter(*, user, query: LogQuery, chunk_size: int = 2000) -> Iterator[LogRow]:
    """Every matching row, newest first, read in chunks (for the streamed CSV)."""
    streams = {
        direction: _rows(direction, qs).iterator(chunk_size=chunk_size)
        for direction, qs in logs_filtered(user=user, query=query).items()
    }
    return _merged(streams)
