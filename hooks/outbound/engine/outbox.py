"""The outbox: Delivery rows written in the transaction of the change, and a
django-q2 task asked for when that transaction commits (ARCHITECTURE.md,
"Outbound delivery")."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from ..models import Delivery, DestinationHealth, DrainSignal, HealthState
from . import clock, state

logger = logging.getLogger(__name__)

DELIVER_TASK = "hooks.outbound.tasks.deliver"
ENQUEUE_LIMIT = 5000  # ids carried by one task (the task drains whatever else is due anyway)
DRAIN_REQUEST_STALE_SECONDS = 5


class _EnqueueOnCommit:
    """One on_commit callback per transaction that enqueues all its new deliveries."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def __call__(self) -> None:
        deliveries_enqueue(ids=self.ids)


def _enqueue_after_commit(pk: int) -> None:
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        deliveries_enqueue(ids=[pk])
        return
    for _sids, func, _robust in connection.run_on_commit:
        if isinstance(func, _EnqueueOnCommit):
            func.ids.append(pk)
            return
    batch = _EnqueueOnCommit()
    batch.ids.append(pk)
    transaction.on_commit(batch, robust=True)


def delivery_build(
    *,
    brand_id: int,
    source_kind: str,
    source_id: int,
    source_name: str,
    event_type: str,
    context: dict,
    customer_id: int | None = None,
    order_key: str = "",
) -> Delivery:
    """An unsaved outbox row (for :func:`deliveries_create`)."""
    created = clock.now()
    return Delivery(
        brand_id=brand_id,
        source_kind=source_kind,
        source_id=source_id,
        source_name=source_name[:300],
        event_type=event_type,
        customer_id=customer_id,
        order_key=order_key,
        message_id=f"msg_{uuid.uuid4().hex}",
        context=context,
        next_attempt_at=created,
        deadline=created + timedelta(seconds=settings.HUB_RETRY_WINDOW_SECONDS),
    )


def delivery_create(
    *,
    brand_id: int,
    source_kind: str,
    source_id: int,
    source_name: str,
    event_type: str,
    context: dict,
    customer_id: int | None = None,
    order_key: str = "",
) -> Delivery:
    """Write one outbox row; call it inside the transaction of the change.
    A django-q2 task is enqueued when that transaction commits."""
    delivery = delivery_build(
        brand_id=brand_id,
        source_kind=source_kind,
        source_id=source_id,
        source_name=source_name,
        event_type=event_type,
        context=context,
        customer_id=customer_id,
        order_key=order_key,
    )
    delivery.save(force_insert=True)
    _enqueue_after_commit(delivery.pk)
    return delivery


def deliveries_create(*, deliveries: list[Delivery]) -> list[Delivery]:
    """Several outbox rows in one INSERT (built by delivery_build), in the caller's transaction."""
    if not deliveries:
        return []
    created = Delivery.objects.bulk_create(deliveries)
    for delivery in created:
        _enqueue_after_commit(delivery.pk)
    return created


def _task_requested() -> bool:
    """True when this caller should enqueue a task: none is waiting to start (see DrainSignal)."""
    moment = clock.now()  # the engine's clock: web processes and workers compare each other's stamps
    stale = moment - timedelta(seconds=DRAIN_REQUEST_STALE_SECONDS)
    updated = (
        DrainSignal.objects.filter(pk=1)
        .filter(
            Q(requested_at__isnull=True)
            | Q(taken_at__isnull=False, taken_at__gte=F("requested_at"))
            | Q(requested_at__lt=stale)
        )
        .update(requested_at=moment)
    )
    if updated:
        return True
    _signal, created = DrainSignal.objects.get_or_create(pk=1, defaults={"requested_at": moment})
    return created


def delivery_task_started() -> None:
    """Called by the task before it claims: later commits must enqueue a new task."""
    DrainSignal.objects.filter(pk=1).update(taken_at=clock.now())


def deliveries_enqueue(*, ids: list[int], force: bool = False) -> None:
    """Ask django-q2 for a delivery task, unless one is already waiting to start
    (it will drain these too). ``force`` always enqueues (sweep, Retry now,
    continuations, hand-offs). A failure here is logged; the sweeper catches up."""
    from django_q.tasks import async_task

    try:
        if not force and not _task_requested():
            return
        async_task(DELIVER_TASK, list(ids[:ENQUEUE_LIMIT]), task_name="outbound deliver")
    except Exception:  # noqa: BLE001 - the delivery is safe in the outbox; the sweeper enqueues it later
        logger.exception("Could not enqueue deliveries %s; the sweeper will pick them up", ids[:10])


def deliveries_retry_now(*, delivery_ids: list[int]) -> int:
    """Admin "Retry now": failed (or waiting) deliveries get a fresh retry window and go out at once."""
    moment = clock.now()
    sources = [state.FAILED, state.PENDING]
    ids = list(Delivery.objects.filter(pk__in=delivery_ids, state__in=sources).values_list("pk", flat=True))
    state.deliveries_transition(
        ids=ids,
        source=sources,
        target=state.PENDING,
        next_attempt_at=moment,
        finished_at=None,
        deadline=moment + timedelta(seconds=settings.HUB_RETRY_WINDOW_SECONDS),
    )
    _probe_now(delivery_ids=ids)  # an admin's "now" is not held back by the breaker's probe time
    transaction.on_commit(lambda: deliveries_enqueue(ids=ids, force=True))
    return len(ids)


def _probe_now(*, delivery_ids: list[int]) -> None:
    """ "Retry now" of deliveries of failing destinations: their next probe may go at once."""
    sources = Delivery.objects.filter(pk__in=delivery_ids).values("source_kind", "source_id")
    DestinationHealth.objects.filter(
        state=HealthState.FAILING,
        source_kind__in=sources.values("source_kind"),
        source_id__in=sources.values("source_id"),
    ).update(probe_at=None)
