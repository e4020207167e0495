"""The delivery task's body, the minute sweep and the sweeper's wake-up check.

A task claims due deliveries in batches, sends each outside any transaction
and records a batch's attempts in one short transaction. It stops after its
time budget, when its lease runs short, or when its worker is asked to stop
(SIGTERM, see ``stopping``): then it gives the unsent rest of its batch back
and enqueues a task for it, so another worker takes it at once.
"""

from __future__ import annotations

import time

from .. import registry
from ..models import Delivery
from . import attempt, claim, clock, health, outbox, stopping, traffic

RUN_BUDGET_SECONDS = 45  # below Q_CLUSTER["timeout"] (90 s) minus one 30 s request (see checks.py)
SWEEP_GRACE_SECONDS = 60  # a first attempt is the on_commit task's job for this long
FLUSH_SECONDS = 1.0  # record finished attempts at least this often within a batch


def deliveries_run(*, ids: list[int] | None = None, budget_seconds: float = RUN_BUDGET_SECONDS) -> int:
    """Claim due deliveries in batches (of ``ids`` when given, then whatever they
    unblocked; any due one when not), send and record them. Returns the number
    of deliveries attempted."""
    stop_at = time.monotonic() + budget_seconds
    wanted = list(ids) if ids is not None else None
    done = 0
    with registry.run_memo():
        while time.monotonic() < stop_at:
            if stopping.requested():
                return done  # nothing claimed: the sweeper or another worker takes what is due
            batch = claim.deliveries_claim(ids=wanted, limit=claim.BATCH_SIZE)
            if not batch:
                if wanted is not None:
                    wanted = None  # then drain whatever else is due
                    continue
                break
            _prefetch(batch)
            finished, handed_off = _batch_send(batch, stop_at)
            done += len(finished)
            if handed_off:
                break  # a fresh task continues with the rest
            if wanted is not None:
                # The given ids and what they unblocked first; then every other due delivery.
                claimed = {d.pk for d in batch}
                unclaimed = [pk for pk in wanted if pk not in claimed]
                wanted = claim.successors(finished) + (unclaimed if len(batch) == claim.BATCH_SIZE else []) or None
        else:
            if claim.due_ids(limit=1):
                outbox.deliveries_enqueue(ids=[], force=True)  # budget spent: a fresh task continues
    return done


def _batch_send(batch: list[Delivery], stop_at: float) -> tuple[list[Delivery], bool]:
    """Send a claimed batch one by one; returns the recorded deliveries and
    whether the unsent rest was handed back (stop, budget or lease)."""
    results: list[attempt.SendResult] = []
    finished: list[Delivery] = []
    held: list[Delivery] = []  # the circuit breaker tripped for their destination in this batch
    tripped: set[tuple[str, int]] = set()
    flushed_at = time.monotonic()
    gate = traffic.gate()  # destinations paused by a Retry-After: one query per batch
    for index, delivery in enumerate(batch):
        config = registry.resolve(delivery.source_kind, delivery.source_id)
        needed = claim.lease_needed(config)
        assert delivery.lease_expires_at is not None  # deliveries_claim set the lease
        lease_left = (delivery.lease_expires_at - clock.now()).total_seconds()
        if index == 0:
            # However short the configured lease, every claim sends its first
            # delivery: a batch is never released and re-enqueued without progress.
            if lease_left < needed:
                claim.lease_stretch(deliveries=batch, seconds=needed)
        elif stopping.requested() or time.monotonic() > stop_at or lease_left < needed:
            finished += attempt.deliveries_record(results=results)
            rest = held + batch[index:]
            claim.deliveries_release(deliveries=rest)
            outbox.deliveries_enqueue(ids=[d.pk for d in rest], force=True)
            return finished, True
        not_before = traffic.admit(delivery=delivery, config=config, gate=gate, rest=batch[index:])
        if not_before is not None:  # over its rate limit or paused: back to pending, not attempted
            traffic.delivery_defer(delivery=delivery, until=not_before)
            continue
        if (delivery.source_kind, delivery.source_id) in tripped:  # a Retry-After pause is deferred above
            held.append(delivery)
            continue
        results.append(attempt.delivery_send(delivery=delivery))
        if health.breaker_trips(results[-1]):
            tripped.add((delivery.source_kind, delivery.source_id))
        traffic.observe(delivery=delivery, outcome=results[-1].outcome, gate=gate)
        if time.monotonic() - flushed_at > FLUSH_SECONDS:
            finished += attempt.deliveries_record(results=results)
            results, flushed_at = [], time.monotonic()
            gate = traffic.gate()  # pauses other workers set meanwhile
    finished += attempt.deliveries_record(results=results)
    claim.deliveries_release(deliveries=held)  # unsent: the breaker holds them until the probe succeeds
    return finished, False


def _prefetch(batch: list[Delivery]) -> None:
    by_kind: dict[str, list[Delivery]] = {}
    for delivery in batch:
        by_kind.setdefault(delivery.source_kind, []).append(delivery)
    for kind, deliveries in by_kind.items():
        source = registry.get_source(kind)
        if source and source.prefetch:
            source.prefetch(deliveries)


def deliveries_sweep() -> int:
    """The minute schedule (a safety net behind the sweeper): enqueue deliveries
    that are due (retries) or whose lease expired. Returns how many."""
    ids = claim.due_ids(limit=outbox.ENQUEUE_LIMIT, grace=SWEEP_GRACE_SECONDS)
    if ids:
        outbox.deliveries_enqueue(ids=ids, force=True)
    return len(ids)


def deliveries_wake() -> bool:
    """The sweeper's check: when anything is due, ask for a task unless one is
    already waiting to start (so several clusters polling never pile up tasks).
    Returns whether something was due."""
    if not claim.anything_due():
        return False
    outbox.deliveries_enqueue(ids=[])
    return True
