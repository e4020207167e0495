"""The internal event bus.

Services call :func:`emit` inside the transaction that made the change; the
subscribers (outbound CRM syncs, dispatcher rules) write their outbox rows in
that same transaction, so a change and the deliveries it causes commit or roll
back together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

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
