"""Log rows for the synclog tests, shaped like the ones the hub writes."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from hooks.outbound.models import Delivery
from synclog.models import DeliveryAttempt, InboundRequest


def inbound(brand, *, endpoint="omnidesk.lookup", status=200, ago=timedelta(hours=1), customer=None, **fields):
    fields.setdefault("path", f"/hooks/{endpoint.split('.')[0]}/{brand.slug if brand else 'nope'}/x")
    fields.setdefault("latency_ms", 4.0)
    fields.setdefault("method", "GET" if endpoint.endswith("lookup") else "POST")
    return InboundRequest.objects.create(
        brand=brand,
        endpoint=endpoint,
        status=status,
        customer=customer,
        created_at=timezone.now() - ago,
        **fields,
    )


def delivery(brand, *, source_kind="crm_action", source_id=1, source_name="CRM — Create Users", **fields):
    now = timezone.now()
    fields.setdefault("event_type", "customer.created")
    fields.setdefault("deadline", now + timedelta(hours=24))
    return Delivery.objects.create(
        brand=brand,
        source_kind=source_kind,
        source_id=source_id,
        source_name=source_name,
        message_id=f"msg_{uuid.uuid4().hex}",
        **fields,
    )


def attempt(delivery_row, *, status=200, ago=timedelta(hours=1), number=1, **fields):
    fields.setdefault("method", "POST")
    fields.setdefault("url", "https://crm.example.com/people")
    fields.setdefault("duration_ms", 120.0)
    fields.setdefault("succeeded", status is not None and status < 400)
    return DeliveryAttempt.objects.create(
        delivery=delivery_row,
        brand_id=delivery_row.brand_id,
        number=number,
        started_at=timezone.now() - ago,
        response_status=status,
        **fields,
    )
