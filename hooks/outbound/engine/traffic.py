"""Traffic to one destination (a CRM sync action or a dispatcher rule): the
shared rate limit, the slow-down a 429/503 Retry-After asks for, and which
answers are worth retrying.

* **Rate limit** (``rate_limit_per_second`` on the destination): one
  :class:`~hooks.outbound.models.DestinationThrottle` row per destination holds
  the earliest time its next request may start. A worker takes slots with a
  compare-and-set UPDATE that moves the time on by 1/rate per slot (for the
  deliveries of its batch to that destination, at most a second's worth at
  once), so every worker of every cluster shares one spacing. A slot at most
  :data:`MAX_WAIT_SECONDS` away is waited for in the worker; a later one is not
  taken: the delivery goes back to pending, due at that time, with its attempt
  not counted, and (being still open) keeps blocking later deliveries of the
  same customer, so the order holds.
* **Retry-After** on a 429 or 503 pauses the destination for everybody until
  then (capped by HUB_RETRY_AFTER_MAX_SECONDS): :func:`gate` reads the paused
  destinations once per claimed batch (one query on a table with a row per
  limited or paused destination), so a destination without a limit costs
  nothing per delivery.
* **Which answers are retried** (:func:`outcome_verdict`): DNS failures,
  connection errors, TLS failures and timeouts, 5xx, and 408/409/425/429 are
  retried; any other 4xx is retried too unless the destination has
  ``stop_on_4xx``: then it fails the delivery at once with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from ..models import Delivery, DestinationThrottle
from . import clock, state
from .claim import relaxed_commit

CAS_TRIES = 20
MAX_WAIT_SECONDS = 1.0
# A reserved slot is used up to this late (any 1 s window then sees at most 5 % more than the
# limit; over time never more); a later one is dropped: other workers hold the slots after it.
LATE_SECONDS = 0.05  # a worker waits in place for a slot this close; a later one sends the delivery back
RETRIED_4XX = frozenset({408, 409, 425, 429})

DELIVERED, RETRY, PERMANENT = "delivered", "retry", "permanent"


def outcome_verdict(*, outcome: Any, config: Any) -> str:
    """The one classification of an attempt's outcome: ``delivered`` (2xx/3xx),
    ``permanent`` (a 4xx other than 408/409/425/429 on a destination with
    "Stop retrying on 4xx") or ``retry`` (everything else: DNS, connection,
    TLS, timeouts, 5xx, 408/409/425/429, other 4xx by default)."""
    if outcome.succeeded:
        return DELIVERED
    status = outcome.status
    if (
        status is not None
        and 400 <= status < 500
        and status not in RETRIED_4XX
        and getattr(config, "stop_on_4xx", False)
    ):
        return PERMANENT
    return RETRY


def retry_after_max() -> int:
    return getattr(settings, "HUB_RETRY_AFTER_MAX_SECONDS", 6 * 3600)


def retry_after_delay(seconds: float) -> float:
    """A receiver's Retry-After, at least 1 s and at most HUB_RETRY_AFTER_MAX_SECONDS."""
    return min(max(seconds, 1.0), float(retry_after_max()))


@dataclass
class Gate:
    """The paused destinations as one worker saw them for its batch."""

    paused: dict[tuple[str, int], datetime] = field(default_factory=dict)
    # Slots this worker reserved for its batch (one compare-and-set per batch and destination).
    slots: dict[tuple[str, int], list[datetime]] = field(default_factory=dict)


def gate() -> Gate:
    """One query per claimed batch: the destinations paused by a Retry-After."""
    rows = DestinationThrottle.objects.filter(paused_until__gt=clock.now()).values_list(
        "source_kind", "source_id", "paused_until"
    )
    return Gate(paused={(kind, pk): until for kind, pk, until in rows if until is not None})


def _throttle(key: tuple[str, int], moment: datetime) -> None:
    DestinationThrottle.objects.get_or_create(
        source_kind=key[0], source_id=key[1], defaults={"next_allowed_at": moment}
    )


def _read(key: tuple[str, int], moment: datetime) -> tuple[datetime, datetime | None]:
    row = DestinationThrottle.objects.filter(source_kind=key[0], source_id=key[1]).values_list(
        "next_allowed_at", "paused_until"
    )
    found = list(row)
    if not found:
        _throttle(key, moment)
        found = list(row.all())
    return found[0]


def admit(*, delivery: Delivery, config: Any, gate: Gate, rest: list[Delivery] | None = None) -> datetime | None:
    """May ``delivery`` be sent now? None: yes (after waiting for its slot, at
    most about MAX_WAIT_SECONDS). Otherwise the time it may go, and it is not
    sent. ``rest`` (the batch from this delivery on) lets one reservation cover
    the batch's other deliveries to the same destination."""
    key = (delivery.source_kind, delivery.source_id)
    moment = clock.now()
    paused = gate.paused.get(key)
    if paused is not None and paused > moment:
        return paused
    rate = getattr(config, "rate_limit_per_second", None)
    if not rate:
        return None
    slots = gate.slots.get(key) or []
    late = moment - timedelta(seconds=LATE_SECONDS)
    while slots and slots[0] < late:
        slots.pop(0)  # a slot missed (slow requests before it) is dropped, never used in a burst
    if not slots:
        wanted = sum(1 for d in rest or [delivery] if (d.source_kind, d.source_id) == key)
        reserved = _reserve(key, float(rate), max(1, min(wanted, int(float(rate) * MAX_WAIT_SECONDS))), gate)
        if isinstance(reserved, datetime):
            return reserved
        slots = gate.slots[key] = reserved
    wait = (slots.pop(0) - clock.now()).total_seconds()
    if wait > 0:
        time.sleep(wait)
    return None


def _reserve(key: tuple[str, int], rate: float, count: int, gate: Gate) -> list[datetime] | datetime:
    """Take ``count`` consecutive slots of the destination, or say when to come back."""
    interval = timedelta(seconds=1 / rate)
    moment = clock.now()
    for _ in range(CAS_TRIES):
        taken, paused = _read(key, moment)
        if paused is not None and paused > moment:
            gate.paused[key] = paused
            return paused
        slot = max(taken, moment)
        if (slot - moment).total_seconds() > MAX_WAIT_SECONDS:
            return slot
        # Compare-and-set: only one worker moves the time on from what it read
        # (no row lock held, and the same on SQLite, whose SELECT FOR UPDATE is a
        # no-op). A crash losing it only lets a few requests through early.
        with transaction.atomic():
            relaxed_commit()
            moved = DestinationThrottle.objects.filter(
                source_kind=key[0], source_id=key[1], next_allowed_at=taken
            ).update(next_allowed_at=slot + interval * count)
        if moved:
            return [slot + interval * n for n in range(count)]
        moment = clock.now()
    return moment + interval  # very busy: try again a slot later


def observe(*, delivery: Delivery, outcome: Any, gate: Gate) -> None:
    """After an attempt: a 429/503 with Retry-After pauses the destination for every worker."""
    if outcome is None or outcome.retry_after is None:
        return
    key = (delivery.source_kind, delivery.source_id)
    moment = clock.now()
    until = moment + timedelta(seconds=retry_after_delay(outcome.retry_after))
    _throttle(key, moment)
    DestinationThrottle.objects.filter(source_kind=key[0], source_id=key[1]).filter(
        Q(paused_until__isnull=True) | Q(paused_until__lt=until)
    ).update(paused_until=until)
    gate.paused[key] = max(until, gate.paused.get(key, until))


def delivery_defer(*, delivery: Delivery, until: datetime) -> None:
    """Give a claimed delivery back unsent, due at ``until``; its attempt is not counted."""
    state.deliveries_transition(
        ids=[delivery.pk],
        source=[state.IN_FLIGHT],
        target=state.PENDING,
        attempts=F("attempts") - 1,
        lease_expires_at=None,
        next_attempt_at=until,
    )
