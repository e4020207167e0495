"""The delivery state machine: the moves a delivery may make, and the one
function that changes a delivery's state.

    pending    -> in_flight   claimed by a worker (with a lease)
    pending    -> pending     "Retry now" (a fresh retry window)
    in_flight  -> in_flight   a lease taken over after it expired, or stretched
    in_flight  -> pending     released unsent (stop, budget, lease), or a retry scheduled
    in_flight  -> delivered   a 2xx/3xx answer
    in_flight  -> failed      no success before the deadline
    in_flight  -> obsolete    its configuration was deleted/disabled, or a later change made it pointless
    failed     -> pending     "Retry now", "Recover since", "Replay" (hooks.outbound.recovery)
    delivered  -> pending     "Replay" (same message id, noted as a replay on its attempts)
    pending    -> paused      its destination was auto-disabled (hooks.outbound.engine.health)
    paused     -> pending     the destination was re-enabled (a fresh retry window)

obsolete is final; delivered is final for the engine (only an admin's replay reopens it). A move not listed here is refused with
:class:`TransitionRefused` (a bug, never a runtime condition), and every write
is conditional on the current state, so a concurrent change is never overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..models import Delivery, DeliveryState

PENDING, IN_FLIGHT = DeliveryState.PENDING, DeliveryState.IN_FLIGHT
DELIVERED, FAILED, OBSOLETE = DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.OBSOLETE
PAUSED = DeliveryState.PAUSED

MOVES: dict[str, frozenset[str]] = {
    PENDING: frozenset({IN_FLIGHT, PENDING, PAUSED}),
    IN_FLIGHT: frozenset({IN_FLIGHT, PENDING, DELIVERED, FAILED, OBSOLETE}),
    FAILED: frozenset({PENDING}),
    DELIVERED: frozenset({PENDING}),
    OBSOLETE: frozenset(),
    PAUSED: frozenset({PENDING}),
}
OPEN_STATES = (PENDING, IN_FLIGHT)
# A paused delivery still holds its place: later ones with its order key wait behind it.
ORDER_STATES = (PENDING, IN_FLIGHT, PAUSED)


class TransitionRefused(Exception):
    """A state change that the state machine does not list."""


def check_move(*, source: str, target: str) -> None:
    if target not in MOVES[source]:
        raise TransitionRefused(f"A delivery may not go from {source} to {target}.")


def deliveries_transition(*, ids: Iterable[int], source: Iterable[str], target: str, **changes: Any) -> int:
    """Move the deliveries ``ids`` that are in one of the ``source`` states to
    ``target``, writing ``changes`` with it, in one UPDATE. Returns how many
    rows moved (rows in another state are left alone)."""
    sources = tuple(source)
    for state in sources:
        check_move(source=state, target=target)
    return Delivery.objects.filter(pk__in=list(ids), state__in=sources).update(state=target, **changes)
