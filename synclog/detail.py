"""What a log detail page shows: the request and the response side by side.

Rows are masked before they are written; everything shown here is masked once
more on the way out by hub.redaction (JSON keys named like secrets, Authorization
values, secret query parameters, header lines, URL userinfo), so a row written
before a rule existed still shows no secret.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.apps import apps
from django.urls import NoReverseMatch, reverse

from hub.redaction import mask, redact_body, redact_headers, redact_query, redact_url

from .filters import INBOUND, OUTBOUND, event_id_of
from .models import DeliveryAttempt, InboundRequest


def _admin_url(name: str, *args) -> str:
    try:
        return reverse(f"admin:{name}", args=args)
    except NoReverseMatch:
        return ""


def changelist_url(name: str, **filters) -> str:
    """An admin list (``app_model``) with these query parameters; empty when the list is not registered."""
    try:
        return reverse(f"admin:{name}_changelist") + "?" + urlencode(filters)
    except NoReverseMatch:
        return ""


def logs_url(**filters) -> str:
    """The unified Logs page with these filters (synclog.filters names)."""
    return reverse("synclog-logs") + "?" + urlencode({k: v for k, v in filters.items() if v not in (None, "")})


def inbound_detail(row: InboundRequest) -> dict:
    query = redact_query(row.query)
    customer = row.customer if row.customer_id else None
    event_id = event_id_of(row.note)
    links = []
    if customer is not None:
        links.append(("Customer " + customer.customer_id, _admin_url("customers_customer_change", customer.pk)))
        links.append(
            (
                "All logs of this customer",
                logs_url(brand=row.brand_id, customer=customer.customer_id),
            )
        )
    if event_id is not None:
        links.append((f"Inbound event #{event_id}", _admin_url("inbound_inboundevent_change", event_id)))
    links.append(
        (
            f"Other {row.endpoint} calls",
            logs_url(brand=row.brand_id, direction=INBOUND, integration=row.endpoint),
        )
    )
    return {
        "direction": INBOUND,
        "ok": row.succeeded,
        "summary": [
            ("Brand", row.brand.name if row.brand is not None else "— (unknown brand)"),
            ("Endpoint", row.endpoint),
            ("Time", row.created_at),
            ("Customer", customer.customer_id if customer else "—"),
            ("Note", mask(row.note) or "—"),
        ],
        "request": {
            "line": f"{row.method} {row.path}" + (f"?{query}" if query else ""),
            "facts": [
                ("Remote address", row.remote_addr or "—"),
                ("Key prefix", row.credential_prefix or "— (no valid key)"),
                ("Query (redacted)", query or "—"),
            ],
            "headers": [],
            "headers_note": "Inbound request headers are not logged; the key shows only as its prefix.",
            "body": redact_body(row.request_body),
        },
        "response": {
            "line": f"HTTP {row.status}",
            "facts": [
                ("Latency", f"{row.latency_ms:.1f} ms"),
                ("Customers returned", "—" if row.customers_returned is None else row.customers_returned),
            ],
            "headers": [],
            "body": redact_body(row.response_body),
            "body_note": "Successful lookup answers are not stored (only errors).",  # shown when there is no body
        },
        "links": [(label, url) for label, url in links if url],
        "siblings": [],
    }


def _customer(pk: int | None):
    if pk is None:
        return None
    return apps.get_model("customers", "Customer").objects.filter(pk=pk).first()


def attempt_detail(row: DeliveryAttempt) -> dict:
    delivery = row.delivery
    customer = _customer(delivery.customer_id)
    links = [(f"Delivery {delivery.message_id}", _admin_url("outbound_delivery_change", delivery.pk))]
    if customer is not None:
        links.append(("Customer " + customer.customer_id, _admin_url("customers_customer_change", customer.pk)))
        links.append(("All logs of this customer", logs_url(brand=row.brand_id, customer=customer.customer_id)))
    links.append(
        (
            f"Other attempts of {delivery.source_name}",
            logs_url(brand=row.brand_id, direction=OUTBOUND, source=f"{delivery.source_kind}:{delivery.source_id}"),
        )
    )
    siblings = [
        {
            "number": other.number,
            "started_at": other.started_at,
            "status": other.response_status,
            "error": mask(other.error)[:120],
            "succeeded": other.succeeded,
            "url": _admin_url("synclog_deliveryattempt_change", other.pk),
            "current": other.pk == row.pk,
        }
        for other in delivery.attempt_log.order_by("number", "pk")
    ]
    return {
        "direction": OUTBOUND,
        "ok": row.succeeded,
        "summary": [
            ("Brand", row.brand.name),
            ("Source", f"{delivery.source_name} ({delivery.source_kind})"),
            ("Event", delivery.event_type),
            ("Message id", delivery.message_id),
            ("Attempt", f"{row.number} — delivery {delivery.get_state_display().lower()}"),
            ("Time", row.started_at),
            ("Customer", customer.customer_id if customer else (delivery.customer_id or "—")),
        ],
        "request": {
            "line": f"{row.method} {redact_url(row.url)}",
            "facts": [],
            "headers": sorted(redact_headers(row.request_headers or {}).items()),
            "body": redact_body(row.request_body),
        },
        "response": {
            "line": f"HTTP {row.response_status}" if row.response_status else "No answer",
            "facts": [
                ("Duration", f"{row.duration_ms:.1f} ms"),
                ("Error", mask(row.error) or "—"),
                ("Note", mask(row.note) or "—"),
            ],
            "headers": sorted(redact_headers(row.response_headers or {}).items()),
            "body": redact_body(row.response_body),
        },
        "links": [(label, url) for label, url in links if url],
        "siblings": siblings,
    }
