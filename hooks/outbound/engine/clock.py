"""The engine's clock. Every engine module reads it as ``clock.now()`` so a test
can move time (tests/conftest.py ``clock`` fixture) instead of waiting.

Leases, due times and deadlines are written by one host and compared by
another (a web process writes ``next_attempt_at``, any cluster claims; one
cluster's lease is judged by the others). On PostgreSQL the clock is therefore
the **database's**, not the host's: each process reads ``clock_timestamp()``
once (the sample with the shortest round trip of a few, half the round trip
added) and from then on adds ``time.monotonic()``, which a step of the wall
clock does not move. It is read again every HUB_CLOCK_RESYNC_SECONDS (60 s;
the sweeper and each delivery task resync when it is due, outside any
transaction) to follow the database's clock and bound the monotonic clock's
drift. A host whose wall clock jumps (NTP step, a VM resumed, an operator)
keeps the same engine time as every other host: its leases are not seen as
expired, its claims do not reach into the future, its retries are not pushed
back (docs/reliability.md, "A clock jump").

SQLite is the embedded mode: every process runs on one host and shares its
clock, so the host's ``timezone.now()`` is used there.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

logger = logging.getLogger(__name__)

SAMPLES = 3  # round trips per sync; the shortest one is kept (as NTP does)
RETRY_AFTER_FAILURE_SECONDS = 1.0

# (database time, time.monotonic() at that instant, time.monotonic() of the sync)
_anchor: tuple[datetime, float, float] | None = None
_failed_at = 0.0


def resync_seconds() -> float:
    return float(getattr(settings, "HUB_CLOCK_RESYNC_SECONDS", 60))


def now() -> datetime:
    """The engine's time: the database's clock (PostgreSQL), the host's (SQLite)."""
    if connection.vendor != "postgresql":
        return timezone.now()
    database_time, at, _synced = _fresh_anchor()
    return database_time + timedelta(seconds=time.monotonic() - at)


def _fresh_anchor() -> tuple[datetime, float, float]:
    """The reading, taken again when older than HUB_CLOCK_RESYNC_SECONDS (the first one is required)."""
    anchor = _anchor
    if anchor is None or time.monotonic() - anchor[2] > resync_seconds():
        anchor = sync(required=anchor is None)
    assert anchor is not None  # sync(required=True) raises instead
    return anchor


def sync(*, required: bool = True) -> tuple[datetime, float, float] | None:
    """Read the database's clock now. When it cannot be read, an earlier anchor
    keeps counting (tried again after a second); without one, ``required``
    raises the database's error."""
    global _anchor, _failed_at
    if not required and time.monotonic() - _failed_at < RETRY_AFTER_FAILURE_SECONDS:
        return _anchor
    best: tuple[float, datetime, float] | None = None  # (round trip, database time, monotonic mid-point)
    try:
        with connection.cursor() as cursor:
            for _ in range(SAMPLES):
                sent = time.monotonic()
                cursor.execute("SELECT clock_timestamp()")
                (database_time,) = cursor.fetchone()
                received = time.monotonic()
                if best is None or received - sent < best[0]:
                    best = (received - sent, database_time, (sent + received) / 2)
    except DatabaseError:
        _failed_at = time.monotonic()
        if required or _anchor is None:
            raise
        logger.warning("Could not read the database's clock; the engine keeps its last reading", exc_info=True)
        return _anchor
    assert best is not None
    _round_trip, database_time, midpoint = best
    _anchor = (database_time, midpoint, time.monotonic())  # one assignment: threads see the old or the new reading
    return _anchor


def sync_if_due() -> None:
    """Resync when the reading is older than HUB_CLOCK_RESYNC_SECONDS (the sweeper,
    each delivery task: outside any transaction, so ``now()`` rarely has to)."""
    if connection.vendor == "postgresql":
        _fresh_anchor()


def forget() -> None:
    """Drop the reading (tests; a process that changed databases)."""
    global _anchor, _failed_at
    _anchor, _failed_at = None, 0.0
