"""Reads for inbound events."""

from __future__ import annotations

from django.db.models import QuerySet

from hub.models import Brand

from .models import InboundEvent


def inbound_events_for_brand(*, brand: Brand | int, event_types: list[str] | None = None) -> QuerySet[InboundEvent]:
    """The brand's stored events, newest first (optionally of some hub event types)."""
    events = InboundEvent.objects.filter(brand=brand).select_related("customer")
    if event_types:
        events = events.filter(event_type__in=event_types)
    return events.order_by("-received_at", "-pk")


def inbound_event_get(*, brand: Brand | int, pk: int) -> InboundEvent | None:
    """One stored event of the brand (never another brand's)."""
    return InboundEvent.objects.filter(brand=brand, pk=pk).select_related("customer", "brand").first()
