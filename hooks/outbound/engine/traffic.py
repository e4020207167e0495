"""Traffic to one destination (a CRM sync action or a dispatcher rule): the
shared rate limit, the slow-down a 429/503 Retry-After asks for, and which
answers are worth retrying.

* **Rate limit** (``rate_limit_per_second`` on the destination): one
  :class:`~hooks.outbound.models.DestinationThrottle` row per destination holds
  the destination's *theoretical arrival time* (GCRA, the generic cell rate
  algorithm of token-bucket limiters): when its next request would be due had
  every request so far been spaced exactly 1/rate apart. A worker takes slots
  with ONE atomic statement (``UPDATE … RETURNING``, the same on PostgreSQL
  and SQLite: the time moves on by k/rate from itself or from now, whichever is
  later), so every worker of every cluster shares one spacing. It takes k
  slots at once for the deliveries to that destination in its batch, at most
  :data:`LATE_SECONDS` worth (k = 1 below 80/s). Slots not used by the end of
  a batch stay with the worker's task for its next batches (until they are
  too late). While the limit is far from reached (the worker's last
  reservation started at once), it takes at least :data:`RESERVE_AHEAD` slots,
  so a worker sending small batches (deliveries arriving one by one) does not
  pay one statement per batch; when it had to wait for its slot, only what its
  batch needs, so unused slots never eat into a limit that is being reached.
  Each slot is sent from :data:`TOLERANCE_SECONDS` before it (so a limit that
  is not reached never makes anyone wait) to LATE_SECONDS after it (a later
  one is dropped, never used in a burst: the worker reserves again). A slot further ahead (the limit is reached) is waited
  for in the worker, up to :data:`MAX_WAIT_SECONDS`; beyond that it is not
  taken: the delivery goes back to pending, due at that time, with its attempt
  not counted, and (being still open) keeps blocking later deliveries of the
  same customer, so the order holds. **The bound:** any n consecutive requests
  to a destination start at least (n - 1)/rate - 50 ms apart (the tolerance
  plus the lateness), so a window of W seconds sees at most
  rate x (W + 0.05) + 1 requests: 5 % of a second's worth above the limit in any
  second, never more over time.
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
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from .. import registry
from ..models import Delivery, DestinationThrottle
from . import clock, state

MAX_WAIT_SECONDS = 1.0  # a worker waits in place for a slot this close; a later one sends the delivery back
# A slot is sent from TOLERANCE_SECONDS before it (GCRA's tolerance: requests that jitter around a rate
# below the limit never wait) to LATE_SECONDS after it (a later one is dropped). Together they are the
# bound: at most 50 ms worth of requests (5 % of a second's worth) above the limit in any 1 s window.
TOLERANCE_SECONDS = 0.025
LATE_SECONDS = 0.025
RESERVE_TRIES = 5
# While the limit is far from reached, a reservation takes at least this many slots (when the
# limit allows that many within LATE_SECONDS): about what one worker sends in 25 ms.
RESERVE_AHEAD = 8
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
    # Slots this worker reserved and has not used yet, per destination (one statement per reservation).
    slots: dict[tuple[str, int], list[datetime]] = field(default_factory=dict)
    # Destinations whose last reservation here had to wait (the limit is being reached): no slots ahead.
    busy: set[tuple[str, int]] = field(default_factory=set)


def gate() -> Gate:
    """One query per claimed batch: the destinations paused by a Retry-After.
    The reserved slots (and which destinations are busy) carry over between the
    batches of one task (registry.run_memo); nothing outlives the task."""
    rows = DestinationThrottle.objects.filter(paused_until__gt=clock.now()).values_list(
        "source_kind", "source_id", "paused_until"
    )
    kept = registry.memo(("traffic", "gate"), Gate)
    return Gate(
        paused={(kind, pk): until for kind, pk, until in rows if until is not None}, slots=kept.slots, busy=kept.busy
    )


def _throttle(key: tuple[str, int], moment: datetime) -> None:
    DestinationThrottle.objects.get_or_create(
        source_kind=key[0], source_id=key[1], defaults={"next_allowed_at": moment}
    )


def admit(*, delivery: Delivery, config: Any, gate: Gate, rest: list[Delivery] | None = None) -> datetime | None:
    """May ``delivery`` be sent now? None: yes (after waiting for its slot, at
    most MAX_WAIT_SECONDS; no wait while the limit is not reached). Otherwise
    the time it may go, and it is not sent. ``rest`` (the batch from this
    delivery on) lets one reservation cover the batch's next deliveries to the
    same destination. A destination without a limit costs no query."""
    key = (delivery.source_kind, delivery.source_id)
    moment = clock.now()
    paused = gate.paused.get(key)
    if paused is not None and paused > moment:
        return paused
    rate = getattr(config, "rate_limit_per_second", None)
    if not rate:
        return None
    slots = gate.slots.setdefault(key, [])
    late = moment - timedelta(seconds=LATE_SECONDS)
    while slots and slots[0] < late:
        slots.pop(0)  # too late (slow requests before it): dropped, never used in a burst
    if not slots:
        wanted = sum(1 for d in rest or [delivery] if (d.source_kind, d.source_id) == key)
        if key not in gate.busy:
            wanted = max(wanted, RESERVE_AHEAD)
        count = max(1, min(wanted, int(float(rate) * LATE_SECONDS)))
        first, taken = _reserve(key, float(rate), count, gate)
        if not taken:
            return first
        interval = _interval(float(rate))
        slots.extend(first + interval * n for n in range(count))
        wait = (first - timedelta(seconds=TOLERANCE_SECONDS) - clock.now()).total_seconds()
        if wait > 0:
            gate.busy.add(key)
        else:
            gate.busy.discard(key)
    wait = (slots.pop(0) - timedelta(seconds=TOLERANCE_SECONDS) - clock.now()).total_seconds()
    if wait > 0:
        time.sleep(wait)
    return None


def _interval(rate: float) -> timedelta:
    return timedelta(microseconds=max(1, round(1_000_000 / rate)))


def _reserve(key: tuple[str, int], rate: float, count: int, gate: Gate) -> tuple[datetime, bool]:
    """Take ``count`` consecutive slots of the destination: (the first, True).
    Or (when to come back, False) when the destination is paused or its next
    slot is more than MAX_WAIT_SECONDS away; then nothing was taken."""
    interval = _interval(rate)
    tolerance = timedelta(seconds=TOLERANCE_SECONDS)
    reach = timedelta(seconds=MAX_WAIT_SECONDS) + tolerance
    for _ in range(RESERVE_TRIES):
        moment = clock.now()
        moved = _take_slot(key=key, moment=moment, step=interval * count, latest=moment + reach)
        if moved is not None:
            return moved - interval * count, True
        # Nothing taken: paused, too far ahead, or no row yet (the destination's first request).
        found = (
            DestinationThrottle.objects.filter(source_kind=key[0], source_id=key[1])
            .values_list("next_allowed_at", "paused_until")
            .first()
        )
        if found is None:
            _throttle(key, moment)
            continue
        next_at, paused = found
        if paused is not None and paused > moment:
            gate.paused[key] = paused
            return paused, False
        if next_at > moment + reach:
            return next_at - tolerance, False
    return clock.now() + interval, False  # the row changed under every try: come back a slot later


def _take_slot(*, key: tuple[str, int], moment: datetime, step: timedelta, latest: datetime) -> datetime | None:
    """The one atomic statement: unless the destination is paused or its time
    is beyond ``latest``, move its time on by ``step`` from itself or from
    ``moment``, whichever is later. Returns the new time, or None (nothing moved).

    Outside a transaction on PostgreSQL the statement also turns the WAL flush
    off for itself (``set_config(..., true)`` lasts until its own implicit
    commit), as claims do (``claim.relaxed_commit``): a slot lost in a crash
    only lets a few requests through early, not worth a disk flush per reservation."""
    connection = transaction.get_connection()
    table = connection.ops.quote_name(DestinationThrottle._meta.db_table)
    now = connection.ops.adapt_datetimefield_value(moment)
    until = connection.ops.adapt_datetimefield_value(latest)
    where = (
        "source_kind = %s AND source_id = %s AND next_allowed_at <= %s AND (paused_until IS NULL OR paused_until <= %s)"
    )
    if connection.vendor == "postgresql":
        relaxed = (
            ""
            if connection.in_atomic_block
            else " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed"
        )
        sql = f"UPDATE {table} SET next_allowed_at = GREATEST(next_allowed_at, %s) + %s{relaxed} WHERE {where}"  # noqa: S608 - names from the model
        amount: Any = step
    else:  # SQLite >= 3.35: datetimes are text; Django's own SQL function adds microseconds to one
        sql = f"UPDATE {table} SET next_allowed_at = django_format_dtdelta('+', MAX(next_allowed_at, %s), %s) WHERE {where}"  # noqa: S608
        amount = step // timedelta(microseconds=1)
    with connection.cursor() as cursor:
        cursor.execute(sql + " RETURNING next_allowed_at", [now, amount, key[0], key[1], until, now])
        found = cursor.fetchone()
    if found is None:
        return None
    value = found[0]  # SQLite: naive UTC (text, or parsed by Django's converter)
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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
