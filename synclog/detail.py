"""What a log detail page shows: the request and the response side by side.

Rows are masked before they are written; everything shown here is masked once
more on the way out (JSON keys named like secrets, Authorization values, secret
query parameters), so a row written before a rule existed still shows no secret.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.apps import apps
from django.urls import NoReverseMatch, reverse

from hub.redaction import (
    MASK,
    SECRET_PARAM_NAMES,
    is_secret_header,
    redact_headers,
    redact_query,
    redact_text,
    redact_url,
)

from .filters import INBOUND, OUTBOUND, event_id_of
from .models import DeliveryAttempt, InboundRequest


def is_secret_name(name: str) -> bool:
    lowered = str(name).lower()
    return lowered in SECRET_PARAM_NAMES or is_secret_header(lowered)


def mask_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: (MASK if is_secret_name(key) and item not in (None, "") else mask_json(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_json(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def pretty_body(text: str) -> str:
    """JSON pretty-printed (secret-named keys masked); anything else masked as text."""
    if not text:
        return ""
    try:
        parsed = json.loads(text)
    except ValueError:
        return redact_text(text)
    if not isinstance(parsed, dict | list):
        return redact_text(text)
    return json.dumps(mask_json(parsed), indent=2, ensure_ascii=False)


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
            ("Note", redact_text(row.note) or "—"),
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
            "body": pretty_body(row.request_body),
        },
        "response": {
            "line": f"HTTP {row.status}",
            "facts": [
                ("Latency", f"{row.latency_ms:.1f} ms"),
                ("Customers returned", "—" if row.customers_returned is None else row.customers_returned),
            ],
            "headers": [],
            "body": pretty_body(row.response_body),
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
            "error": redact_text(other.error)[:120],
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
            "body": pretty_body(row.request_body),
        },
        "response": {
            "line": f"HTTP {row.response_status}" if row.response_status else "No answer",
            "facts": [
                ("Duration", f"{row.duration_ms:.1f} ms"),
                ("Error", redact_text(row.error) or "—"),
                ("Note", redact_text(row.note) or "—"),
            ],
            "headers": sorted(redact_headers(row.response_headers or {}).items()),
            "body": pretty_body(row.response_body),
        },
        "links": [(label, url) for label, url in links if url],
        "siblings": siblings,
    }
