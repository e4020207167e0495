"""The internal event bus, and the hub's own news for the apps that build on it.

Services call :func:`emit` inside the transaction that made the change; the
subscribers (outbound CRM syncs, dispatcher rules) write their outbox rows in
that same transaction, so a change and the deliveries it causes commit or roll
back together.

Changes to hub objects that other apps must follow are Django signals sent the
same way (inside the change's transaction): hub imports no app, the apps
subscribe in their AppConfig.ready(). They are not platform events and never
reach CRM syncs or rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.dispatch import Signal

Subscriber = Callable[["Event"], None]
_subscribers: dict[str, list[Subscriber]] = defaultdict(list)

ALL = "*"

# The event types the hub emits (dispatcher rules trigger on these).
EVENT_TYPES = [
    ("customer.created", "Customer created"),
    ("customer.updated", "Customer updated"),
    ("customer.deleted", "Customer deleted"),
    ("call.logged", "Call logged (M8Com)"),
    ("conversation.abandoned", "Conversation abandoned (service hook)"),
    ("call.outbound", "Outbound call started (service hook)"),
    ("workitem.closed", "Work item closed (service hook)"),
]


# A brand's time zone changed (hub.services.brand_update), sent with brand_id,
# old_time_zone and new_time_zone. customers rebuilds the stored Omnidesk answers,
# whose timeline lastUpdate is written in the brand's time zone.
brand_time_zone_changed = Signal()

# The address types a brand counts as a phone changed (hub.services.brand_update),
# sent with brand_id, old_types and new_types. customers rebuilds the stored M8Com
# contacts, whose phoneNumbers list the numbers of those types.
brand_phone_address_types_changed = Signal()


@dataclass(frozen=True)
class Event:
    brand_id: int
    event_type: str
    data: dict[str, Any]
    customer_id: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def subscribe(event_type: str = ALL) -> Callable[[Subscriber], Subscriber]:
    def register(fn: Subscriber) -> Subscriber:
        if fn not in _subscribers[event_type]:
            _subscribers[event_type].append(fn)
        return fn

    return register


def emit(*, brand_id: int, event_type: str, data: dict[str, Any], customer_id: int | None = None) -> Event:
    """Hand an event to its subscribers. Must run inside a transaction."""
    if not connection.in_atomic_block:
        raise RuntimeError("emit() must be called inside transaction.atomic()")
    event = Event(brand_id=brand_id, event_type=event_type, data=data, customer_id=customer_id)
    for fn in (*_subscribers[ALL], *_subscribers[event_type]):
        fn(event)
    return event
