"""Claiming due deliveries for sending, and giving them back.

A claim is ``select_for_update(skip_locked=True)`` (concurrent workers never
take the same row) plus a lease (HUB_DELIVERY_LEASE_SECONDS): when a worker dies
holding a delivery, the lease expires and the delivery is due again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, F, Q, QuerySet
from django.db.models.expressions import RawSQL

from ..models import TIMEOUT_MAX, Delivery
from . import clock, health, state

logger = logging.getLogger(__name__)

BATCH_SIZE = 50
LEASE_MARGIN_SECONDS = 5  # rendering, connecting and recording around one request's timeout


def lease_seconds() -> int:
    return getattr(settings, "HUB_DELIVERY_LEASE_SECONDS", 60)


def lease_needed(config: Any) -> int:
    """How long a lease must still run to send one delivery of ``config``."""
    return (getattr(config, "timeout_seconds", 10) or 10) + LEASE_MARGIN_SECONDS


def lease_floor() -> int:
    """The shortest safe HUB_DELIVERY_LEASE_SECONDS: the longest webhook timeout plus the margin."""
    return TIMEOUT_MAX + LEASE_MARGIN_SECONDS


def claimable(moment: datetime) -> QuerySet[Delivery]:
    """Deliveries that are due (or whose lease expired) and not blocked by an
    earlier open delivery with the same order key, nor held by the circuit
    breaker of a failing or disabled destination (hooks.outbound.engine.health).

    Ordered by id, PostgreSQL walks the partial index ``delivery_open`` and stops
    after a batch (:func:`deliveries_claim` turns sorting off for its
    transaction): a claim reads about as many rows as it takes, whatever the
    backlog (before, the planner, whose statistics say "no pending rows" right
    after a burst, sorted every due row for each claim: 13 ms a claim at a
    backlog of 2 000). The two NOT EXISTS are SQL (:data:`_IN_ORDER_SQL`, the
    breaker's in health): as ORM expressions they cost more Python to build
    than the claim costs the database."""
    return Delivery.objects.filter(
        Q(state=state.PENDING, next_attempt_at__lte=moment) | Q(state=state.IN_FLIGHT, lease_expires_at__lt=moment),
        RawSQL(_IN_ORDER_SQL, [], output_field=BooleanField()),  # noqa: S611 - constant SQL
        health.breaker_allows(moment),
    )


# Not blocked by an earlier open delivery of the same order key (one customer's deliveries to one
# destination go out in order). The outer query's table is Delivery's own, without an alias.
_D = Delivery._meta.db_table
_IN_ORDER_SQL = f"""({_D}.order_key = '' OR NOT EXISTS (
    SELECT 1 FROM {_D} b
    WHERE b.order_key = {_D}.order_key AND b.id < {_D}.id
      AND b.state IN ({", ".join(f"'{value}'" for value in state.ORDER_STATES)})))"""  # noqa: S608 - names and values from the models


def relaxed_commit(*, walk: bool = False) -> None:
    """Claims and attempt records may be lost in a database crash without losing a
    delivery (the row is then pending or in flight and is sent again, with the
    same message id), so on PostgreSQL they skip the wait for the WAL flush.

    ``walk`` (the claim): also no sort in this transaction's plans, so the
    claim's ``ORDER BY id LIMIT`` is always the walk of ``delivery_open`` that
    stops after a batch. Left to its statistics, the planner sometimes chose to
    read and sort every due row instead (right after a burst its statistics
    say "no pending rows"; tests/hooks/outbound/test_claim_plan.py)."""
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # One round trip either way (two statements, no parameters: psycopg's simple query protocol).
            no_sort = "; SET LOCAL enable_sort TO OFF" if walk else ""
            cursor.execute("SET LOCAL synchronous_commit TO OFF" + no_sort)


def deliveries_claim(*, ids: list[int] | None = None, limit: int = BATCH_SIZE) -> list[Delivery]:
    """Take up to ``limit`` due deliveries (of ``ids`` when given) for sending,
    with a lease. A delivery blocked by an earlier open delivery with the same
    order key is not taken."""
    moment = clock.now()
    lease = moment + timedelta(seconds=lease_seconds())
    with transaction.atomic():
        relaxed_commit(walk=True)
        queryset = claimable(moment)
        if ids is not None:
            queryset = queryset.filter(pk__in=ids)
        rows = list(queryset.order_by("pk").select_for_update(skip_locked=True, of=("self",))[:limit])
        if not rows:
            return []
        state.deliveries_transition(
            ids=[row.pk for row in rows],
            source=state.OPEN_STATES,
            target=state.IN_FLIGHT,
            attempts=F("attempts") + 1,
            lease_expires_at=lease,
        )
    for row in rows:
        row.state = state.IN_FLIGHT
        row.attempts += 1
        row.lease_expires_at = lease
    return rows


def delivery_claim(*, delivery_id: int) -> Delivery | None:
    """Claim one delivery, or None when it is not due, is blocked, or another worker holds it."""
    rows = deliveries_claim(ids=[delivery_id], limit=1)
    return rows[0] if rows else None


def deliveries_release(*, deliveries: list[Delivery]) -> None:
    """Give claimed but unsent deliveries back, due at once for any worker (their attempt did not happen)."""
    if not deliveries:
        return
    state.deliveries_transition(
        ids=[d.pk for d in deliveries],
        source=[state.IN_FLIGHT],
        target=state.PENDING,
        attempts=F("attempts") - 1,
        lease_expires_at=None,
    )


def lease_stretch(*, deliveries: list[Delivery], seconds: int) -> None:
    """Make the lease of claimed deliveries run at least ``seconds`` from now.

    Used when HUB_DELIVERY_LEASE_SECONDS is shorter than one request needs (the
    system check refuses that, but a worker started with --skip-checks must not
    spin releasing and re-enqueueing the same batch forever)."""
    until = clock.now() + timedelta(seconds=seconds)
    pending = [d for d in deliveries if d.lease_expires_at is None or d.lease_expires_at < until]
    if not pending:
        return
    logger.warning(
        "HUB_DELIVERY_LEASE_SECONDS=%s is shorter than one request needs (%s s); the lease is stretched. "
        "Set it above %s s.",
        lease_seconds(),
        seconds,
        lease_floor(),
    )
    state.deliveries_transition(
        ids=[d.pk for d in pending], source=[state.IN_FLIGHT], target=state.IN_FLIGHT, lease_expires_at=until
    )
    for delivery in pending:
        delivery.lease_expires_at = until


def due_ids(*, ids: list[int] | None = None, limit: int = BATCH_SIZE, grace: int = 0) -> list[int]:
    """Ids of claimable deliveries; with ``grace``, first attempts younger than it are left to their own task."""
    moment = clock.now()
    queryset = claimable(moment)
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    if grace:
        queryset = queryset.filter(Q(attempts__gt=0) | Q(created_at__lte=moment - timedelta(seconds=grace)))
    return list(queryset.order_by("pk").values_list("pk", flat=True)[:limit])


def anything_due() -> bool:
    """One cheap indexed query: is any delivery claimable now? (the sweeper's question)."""
    return claimable(clock.now()).exists()


def successors(finished: list[Delivery]) -> list[int]:
    """For each order key whose delivery just finished, the next pending one."""
    keys = {d.order_key for d in finished if d.order_key and d.is_final}
    if not keys:
        return []
    first: dict[str, int] = {}
    for key, pk in (
        Delivery.objects.filter(order_key__in=keys, state=state.PENDING)
        .order_by("order_key", "pk")
        .values_list("order_key", "pk")
    ):
        first.setdefault(key, pk)
    return sorted(first.values())
