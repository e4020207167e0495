"""Writes of the outbound engine: the outbox, claiming, attempts, retries, CRM sync.

The flow (ARCHITECTURE.md, "Outbound delivery"): :func:`delivery_create` writes
the outbox row inside the transaction of the change and enqueues a django-q2
task on commit; the task calls :func:`deliveries_run`, which claims each row
(``select_for_update(skip_locked=True)`` plus a lease), sends it outside any
transaction, and records a ``synclog.DeliveryAttempt`` and the new state in one
short transaction. The retry schedule is the EddyDesk contract's: every
HUB_RETRY_INTERVAL_SECONDS (30 min) until HUB_RETRY_WINDOW_SECONDS (24 h) have
passed, then failed. :func:`deliveries_sweep` (a django-q2 schedule, every
minute) re-enqueues deliveries that are due or whose lease expired, so a lost
task or a killed worker delays a delivery but never loses it.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from hub import redaction
from hub.redaction import redact_headers, redact_url

from . import registry
from .models import (
    CRM_EVENT_ACTIONS,
    CrmAction,
    CrmSync,
    CrmSyncAction,
    Delivery,
    DeliveryState,
    DrainSignal,
    RemoteId,
)
from .rendering import RenderedRequest, RenderError, render_request
from .transport import BODY_LIMIT, Outcome, send

logger = logging.getLogger(__name__)

RUN_BUDGET_SECONDS = 45  # below Q_CLUSTER["timeout"] (90 s) minus one 30 s request
BATCH_SIZE = 50
SWEEP_GRACE_SECONDS = 60  # a first attempt is the on_commit task's job for this long
SWEEP_LIMIT = 5000
DRAIN_REQUEST_STALE_SECONDS = 5
OPEN_STATES = (DeliveryState.PENDING, DeliveryState.IN_FLIGHT)


def now() -> datetime:
    """The engine's clock (tests move it instead of waiting)."""
    return timezone.now()


def retry_after_max() -> int:
    return getattr(settings, "HUB_RETRY_AFTER_MAX_SECONDS", 6 * 3600)


# ------------------------------------------------------------------ outbox


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


def _delivery_build(
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
    created = now()
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
    delivery = _delivery_build(
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
    """Several outbox rows in one INSERT (built by _delivery_build), in the caller's transaction."""
    if not deliveries:
        return []
    created = Delivery.objects.bulk_create(deliveries)
    for delivery in created:
        _enqueue_after_commit(delivery.pk)
    return created


def _task_requested() -> bool:
    """True when this caller should enqueue a task: none is waiting to start (see DrainSignal)."""
    moment = timezone.now()
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
    DrainSignal.objects.filter(pk=1).update(taken_at=timezone.now())


def deliveries_enqueue(*, ids: list[int], force: bool = False) -> None:
    """Ask django-q2 for a delivery task, unless one is already waiting to start
    (it will drain these too). ``force`` always enqueues (sweeper, Retry now,
    continuations). A failure here is logged; the sweeper catches up."""
    from django_q.tasks import async_task

    try:
        if not force and not _task_requested():
            return
        async_task("hooks.outbound.tasks.deliver", list(ids[:SWEEP_LIMIT]), task_name="outbound deliver")
    except Exception:  # noqa: BLE001 - the delivery is safe in the outbox; the sweeper enqueues it later
        logger.exception("Could not enqueue deliveries %s; the sweeper will pick them up", ids[:10])


# ------------------------------------------------------------------ claiming


def _claimable(moment: datetime):
    earlier_open = Delivery.objects.filter(
        order_key=OuterRef("order_key"), pk__lt=OuterRef("pk"), state__in=OPEN_STATES
    )
    return (
        Delivery.objects.filter(
            Q(state=DeliveryState.PENDING, next_attempt_at__lte=moment)
            | Q(state=DeliveryState.IN_FLIGHT, lease_expires_at__lt=moment)
        )
        .annotate(blocked=Exists(earlier_open))
        .filter(Q(order_key="") | Q(blocked=False))
    )


def _relaxed_commit() -> None:
    """Claims and attempt records may be lost in a database crash without losing a
    delivery (the row is then pending or in flight and is sent again, with the
    same message id), so on PostgreSQL they skip the wait for the WAL flush."""
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def deliveries_claim(*, ids: list[int] | None = None, limit: int = BATCH_SIZE) -> list[Delivery]:
    """Take up to ``limit`` due deliveries (of ``ids`` when given) for sending:
    ``select_for_update(skip_locked=True)`` so concurrent workers never take the
    same row, then a lease (HUB_DELIVERY_LEASE_SECONDS) after which the sweeper
    may hand the row to another worker. A delivery blocked by an earlier open
    delivery with the same order key is not taken."""
    moment = now()
    lease = moment + timedelta(seconds=lease_seconds())
    with transaction.atomic():
        _relaxed_commit()
        queryset = _claimable(moment)
        if ids is not None:
            queryset = queryset.filter(pk__in=ids)
        rows = list(queryset.order_by("pk").select_for_update(skip_locked=True, of=("self",))[:limit])
        if not rows:
            return []
        Delivery.objects.filter(pk__in=[row.pk for row in rows]).update(
            state=DeliveryState.IN_FLIGHT, attempts=F("attempts") + 1, lease_expires_at=lease
        )
    for row in rows:
        row.state = DeliveryState.IN_FLIGHT
        row.attempts += 1
        row.lease_expires_at = lease
    return rows


def delivery_claim(*, delivery_id: int) -> Delivery | None:
    """Claim one delivery (see deliveries_claim), or None when it is not due, is
    blocked, or another worker holds it."""
    rows = deliveries_claim(ids=[delivery_id], limit=1)
    return rows[0] if rows else None


def deliveries_release(*, deliveries: list[Delivery]) -> None:
    """Give claimed but unsent deliveries back (their attempt did not happen)."""
    if not deliveries:
        return
    Delivery.objects.filter(pk__in=[d.pk for d in deliveries], state=DeliveryState.IN_FLIGHT).update(
        state=DeliveryState.PENDING, attempts=F("attempts") - 1, lease_expires_at=None
    )


def lease_seconds() -> int:
    return getattr(settings, "HUB_DELIVERY_LEASE_SECONDS", 60)


def _due_ids(*, ids: list[int] | None = None, limit: int = BATCH_SIZE, grace: int = 0) -> list[int]:
    moment = now()
    queryset = _claimable(moment)
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    if grace:
        queryset = queryset.filter(Q(attempts__gt=0) | Q(created_at__lte=moment - timedelta(seconds=grace)))
    return list(queryset.order_by("pk").values_list("pk", flat=True)[:limit])


def _successors(finished: list[Delivery]) -> list[int]:
    """For each order key whose delivery just finished, the next pending one."""
    keys = {d.order_key for d in finished if d.order_key and d.is_final}
    if not keys:
        return []
    first: dict[str, int] = {}
    for key, pk in (
        Delivery.objects.filter(order_key__in=keys, state=DeliveryState.PENDING)
        .order_by("order_key", "pk")
        .values_list("order_key", "pk")
    ):
        first.setdefault(key, pk)
    return sorted(first.values())


def deliveries_run(*, ids: list[int] | None = None, budget_seconds: float = RUN_BUDGET_SECONDS) -> int:
    """The task body: claim due deliveries in batches (of ``ids`` when given, then
    whatever they unblocked; any due one when not), send each outside any
    transaction, record the batch's attempts in one short transaction. Stops
    after the time budget, handing the rest to a fresh task. Returns the number
    of deliveries attempted."""
    stop_at = time.monotonic() + budget_seconds
    wanted = list(ids) if ids is not None else None
    done = 0
    with registry.run_memo():
        while time.monotonic() < stop_at:
            batch = deliveries_claim(ids=wanted, limit=BATCH_SIZE)
            if not batch:
                if wanted is not None:
                    wanted = None  # then drain whatever else is due
                    continue
                break
            _prefetch(batch)
            handed_off = False
            results, finished = [], []
            flushed_at = time.monotonic()
            for index, delivery in enumerate(batch):
                assert delivery.lease_expires_at is not None  # deliveries_claim set the lease
                lease_left = (delivery.lease_expires_at - now()).total_seconds()
                config = registry.resolve(delivery.source_kind, delivery.source_id)
                needed = (getattr(config, "timeout_seconds", 10) or 10) + 5
                if time.monotonic() > stop_at or lease_left < needed:
                    rest = batch[index:]
                    deliveries_release(deliveries=rest)
                    deliveries_enqueue(ids=[d.pk for d in rest], force=True)
                    handed_off = True
                    break
                results.append(delivery_send(delivery=delivery))
                if time.monotonic() - flushed_at > 1.0:
                    finished += deliveries_record(results=results)
                    results, flushed_at = [], time.monotonic()
            finished += deliveries_record(results=results)
            done += len(finished)
            if handed_off:
                break  # a fresh task continues with the rest
            if wanted is not None:
                # The given ids and what they unblocked first; then every other due delivery.
                claimed = {d.pk for d in batch}
                unclaimed = [pk for pk in wanted if pk not in claimed]
                wanted = _successors(finished) + (unclaimed if len(batch) == BATCH_SIZE else []) or None
        else:
            if _due_ids(limit=1):
                deliveries_enqueue(ids=[], force=True)  # budget spent: a fresh task continues
    return done


def _prefetch(batch: list[Delivery]) -> None:
    by_kind: dict[str, list[Delivery]] = {}
    for delivery in batch:
        by_kind.setdefault(delivery.source_kind, []).append(delivery)
    for kind, deliveries in by_kind.items():
        source = registry.get_source(kind)
        if source and source.prefetch:
            source.prefetch(deliveries)


def deliveries_sweep() -> int:
    """Re-enqueue deliveries that are due (retries) or whose lease expired. Returns how many."""
    ids = _due_ids(limit=SWEEP_LIMIT, grace=SWEEP_GRACE_SECONDS)
    if ids:
        deliveries_enqueue(ids=ids, force=True)
    return len(ids)


# ------------------------------------------------------------------ one attempt


def _secrets_of(config: Any) -> list[str]:
    return redaction.config_secrets(config)


def mask(text: str, secrets: list[str]) -> str:
    return redaction.mask(text, secrets=secrets)


def _bounded(text: str) -> str:
    return text if len(text) <= BODY_LIMIT else text[:BODY_LIMIT] + "\n[truncated]"


@dataclass
class SendResult:
    delivery: Delivery
    config: Any = None
    rendered: RenderedRequest | None = None
    outcome: Outcome | None = None
    obsolete: str = ""


def delivery_send(*, delivery: Delivery) -> SendResult:
    """Render and send a claimed delivery once; no database writes (see deliveries_record)."""
    source = registry.get_source(delivery.source_kind)
    config = registry.resolve(delivery.source_kind, delivery.source_id)
    if source is None or config is None:
        return SendResult(delivery, obsolete=f"Not sent: its {delivery.source_kind} was deleted or disabled.")
    try:
        extra = source.prepare(delivery) if source.prepare else {}
    except registry.Obsolete as exc:
        logger.info("Delivery %s obsolete: %s", delivery.pk, exc)
        return SendResult(delivery, config=config, obsolete=f"Not sent: {exc}")
    try:
        rendered = render_request(config, {**delivery.context, **extra})
    except RenderError as exc:
        outcome = Outcome(started_at=time.time(), duration_ms=0.0, request_headers={})
        outcome.error = f"Could not build the request: {exc.reason}"
        return SendResult(delivery, config=config, outcome=outcome)
    outcome = send(
        rendered,
        message_id=delivery.message_id,
        signing_secret=getattr(config, "signing_secret", "") or "",
        verify_ssl=config.verify_ssl,
        timeout=config.timeout_seconds,
    )
    return SendResult(delivery, config=config, rendered=rendered, outcome=outcome)


def deliveries_record(*, results: list[SendResult]) -> list[Delivery]:
    """Write the attempts (masked, bounded) and the new states in one transaction."""
    from synclog.models import DeliveryAttempt

    if not results:
        return []
    moment = now()
    attempts = []
    with transaction.atomic():
        _relaxed_commit()
        for result in results:
            delivery, outcome, rendered, config = result.delivery, result.outcome, result.rendered, result.config
            delivery.lease_expires_at = None
            if result.obsolete:
                delivery.state = DeliveryState.OBSOLETE
                delivery.last_error = result.obsolete[:2000]
                delivery.finished_at = moment
                delivery.next_attempt_at = None
                continue
            assert outcome is not None  # delivery_send gives every result that is not obsolete an outcome
            secrets = _secrets_of(config)
            source = registry.get_source(delivery.source_kind)
            note = ""
            if outcome.succeeded and outcome.status is not None and source and source.on_delivered:
                # Runs inside this transaction; a hook that writes wraps its writes in
                # its own transaction.atomic() (a savepoint), so most deliveries need none.
                try:
                    note = source.on_delivered(delivery, config, outcome.status, outcome.response_body) or ""
                except Exception as exc:  # noqa: BLE001 - a bad response body never undoes a delivery
                    note = f"Could not read the response: {exc}"
            attempts.append(
                DeliveryAttempt(
                    delivery_id=delivery.pk,
                    brand_id=delivery.brand_id,
                    number=delivery.attempts,
                    started_at=datetime.fromtimestamp(outcome.started_at, tz=UTC),
                    duration_ms=round(outcome.duration_ms, 2),
                    method=rendered.method if rendered else getattr(config, "method", ""),
                    url=redact_url(rendered.url, secrets=secrets)[:2000] if rendered else "",
                    request_headers=redact_headers(outcome.request_headers, secrets=secrets),
                    request_body=_bounded(mask(rendered.body, secrets)) if rendered else "",
                    response_status=outcome.status,
                    response_headers=redact_headers(outcome.response_headers, secrets=secrets),
                    response_body=_bounded(mask(outcome.response_body, secrets)),
                    error=mask(outcome.error, secrets)[:2000],
                    note=note[:500],
                    succeeded=outcome.succeeded,
                )
            )
            delivery.last_status = outcome.status
            if outcome.succeeded:
                delivery.state = DeliveryState.DELIVERED
                delivery.last_error = ""
                delivery.finished_at = moment
                delivery.next_attempt_at = None
                continue
            delivery.last_error = mask(outcome.error or f"HTTP {outcome.status}", secrets)[:2000]
            if outcome.retry_after is not None:
                delay = min(max(outcome.retry_after, 1.0), float(retry_after_max()))
                next_at = moment + timedelta(seconds=delay)
            else:
                next_at = next_on_schedule(delivery, moment)
            if next_at > delivery.deadline:
                delivery.state = DeliveryState.FAILED
                delivery.finished_at = moment
                delivery.next_attempt_at = None
                logger.warning(
                    "Delivery %s (%s, %s) failed after %d attempts: %s",
                    delivery.pk,
                    delivery.source_name,
                    delivery.event_type,
                    delivery.attempts,
                    delivery.last_error[:300],
                )
            else:
                delivery.state = DeliveryState.PENDING
                delivery.next_attempt_at = next_at
        DeliveryAttempt.objects.bulk_create(attempts)
        # One UPDATE per distinct outcome (usually one for the whole batch):
        # far cheaper than bulk_update's CASE per row and field.
        groups: dict[tuple, list[int]] = {}
        for result in results:
            d = result.delivery
            key = (d.state, d.last_status, d.last_error, d.finished_at, d.next_attempt_at)
            groups.setdefault(key, []).append(d.pk)
        for (state, last_status, last_error, finished_at, next_attempt_at), pks in groups.items():
            Delivery.objects.filter(pk__in=pks).update(
                state=state,
                last_status=last_status,
                last_error=last_error,
                finished_at=finished_at,
                next_attempt_at=next_attempt_at,
                lease_expires_at=None,
            )
    return [r.delivery for r in results]


def next_on_schedule(delivery: Delivery, moment: datetime) -> datetime:
    """EddyDesk: "repeated every 30 minutes for 24 hours". The attempts keep to a
    grid laid from the start of the delivery's window (the change, or "Retry now"):
    0, 30 min, 1 h, ... 24 h, so a late worker or a slow receiver never shifts
    the later attempts, and the last one is due at the deadline itself."""
    interval = max(1, int(settings.HUB_RETRY_INTERVAL_SECONDS))
    start = delivery.deadline - timedelta(seconds=settings.HUB_RETRY_WINDOW_SECONDS)
    steps = int((moment - start).total_seconds() // interval) + 1
    return start + timedelta(seconds=steps * interval)


def delivery_attempt(*, delivery: Delivery) -> Delivery:
    """Send a claimed delivery once and record the attempt. Never raises for HTTP failures."""
    deliveries_record(results=[delivery_send(delivery=delivery)])
    return delivery


def deliveries_retry_now(*, delivery_ids: list[int]) -> int:
    """Admin "Retry now": failed (or waiting) deliveries get a fresh retry window and go out at once."""
    moment = now()
    ids = list(
        Delivery.objects.filter(
            pk__in=delivery_ids, state__in=[DeliveryState.FAILED, DeliveryState.PENDING]
        ).values_list("pk", flat=True)
    )
    Delivery.objects.filter(pk__in=ids).update(
        state=DeliveryState.PENDING,
        next_attempt_at=moment,
        finished_at=None,
        deadline=moment + timedelta(seconds=settings.HUB_RETRY_WINDOW_SECONDS),
    )
    transaction.on_commit(lambda: deliveries_enqueue(ids=ids, force=True))
    return len(ids)


# ------------------------------------------------------------------ CRM sync


def crm_order_key(sync_id: int, customer_pk: int) -> str:
    return f"crmsync:{sync_id}:{customer_pk}"


def crm_context(*, event_type: str, customer: dict, changed: list | None = None) -> dict:
    """The Deskpro tokens: person.* (user.* is an alias), customer_id, event, changed."""
    return {
        "person": customer,
        "customer_id": customer.get("customer_id", ""),
        "event": event_type,
        "changed": list(changed or []),
    }


class _TransactionCrmActions:
    """The brands' enabled actions of enabled CRM syncs, read once per atomic block.

    A bulk import emits one event per customer inside one transaction; reading
    the actions for each would cost a query per customer (most brands have no
    CRM sync at all), as the rules dispatcher's cache avoids for rules. The
    cache serves only the atomic block (transaction or savepoint) that filled
    it: it holds the connection's on-commit list, which Django replaces on
    every commit, rollback and savepoint rollback, and the stack of savepoint
    ids, which differs in any other block. So it never outlives a transaction,
    a sync created in a rolled-back savepoint is forgotten with it, and a
    service call that opens its own atomic block reads afresh. Saving or
    deleting a CrmSync or CrmSyncAction (admin, config import, cascades) clears
    it through the signals below, so an action created in the same block as
    later events is seen by them. QuerySet.update() and bulk_create() on those
    models send no signals: code that uses them in the same atomic block as
    customer events it emits afterwards must call :func:`crm_actions_forget`
    (none does today).
    """

    __slots__ = ("by_brand", "hooks", "savepoint_ids")

    def __init__(self, hooks: list, savepoint_ids: list) -> None:
        self.hooks = hooks  # connection.run_on_commit when it was filled
        self.savepoint_ids = savepoint_ids
        self.by_brand: dict[int, list[CrmSyncAction]] = {}


_crm_actions_local = threading.local()


def _crm_actions_cache() -> _TransactionCrmActions | None:
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        return None
    cache = getattr(_crm_actions_local, "cache", None)
    if cache is None or cache.hooks is not connection.run_on_commit or cache.savepoint_ids != connection.savepoint_ids:
        cache = _TransactionCrmActions(connection.run_on_commit, list(connection.savepoint_ids))
        _crm_actions_local.cache = cache
    return cache


def crm_actions_forget(**kwargs: Any) -> None:
    """Drop the cached CRM sync actions of the current transaction (they changed)."""
    _crm_actions_local.cache = None


for _model in (CrmSync, CrmSyncAction):
    post_save.connect(crm_actions_forget, sender=_model, dispatch_uid=f"crm-actions-forget-save-{_model.__name__}")
    post_delete.connect(crm_actions_forget, sender=_model, dispatch_uid=f"crm-actions-forget-delete-{_model.__name__}")


def crm_actions_for(*, brand_id: int) -> list[CrmSyncAction]:
    """Every enabled action of the brand's enabled CRM syncs (cached for the transaction)."""
    cache = _crm_actions_cache()
    actions = cache.by_brand.get(brand_id) if cache is not None else None
    if actions is None:
        actions = list(
            CrmSyncAction.objects.filter(sync__brand_id=brand_id, sync__enabled=True, enabled=True)
            .select_related("sync")
            .only("pk", "action", "sync__id", "sync__name")
        )
        if cache is not None:
            cache.by_brand[brand_id] = actions
    return actions


def crm_deliveries_create(*, brand_id: int, event_type: str, data: dict, customer_id: int | None) -> list[Delivery]:
    """customer.created/updated/deleted → one Delivery per enabled matching action
    of the brand's enabled CRM syncs, in the caller's transaction (outbox)."""
    action = CRM_EVENT_ACTIONS.get(event_type)
    customer: dict[str, Any] = data.get("customer") or {}
    if action is None or not customer:
        return []
    actions = [item for item in crm_actions_for(brand_id=brand_id) if item.action == action]
    if not actions:
        return []
    customer_pk = customer_id or customer.get("id")
    assert customer_pk is not None  # customer events carry the customer's pk (customers.services.customer_event_emit)
    context = crm_context(event_type=event_type, customer=customer, changed=data.get("changed"))
    return deliveries_create(
        deliveries=[
            _delivery_build(
                brand_id=brand_id,
                source_kind="crm_action",
                source_id=item.pk,
                source_name=f"{item.sync.name} — {item.get_action_display()}",
                event_type=event_type,
                context=context,
                customer_id=customer_pk,
                order_key=crm_order_key(item.sync.pk, customer_pk),
            )
            for item in actions
        ]
    )


def remote_id_store(*, sync_id: int, customer_pk: int, customer_ref: str, remote_id: str) -> RemoteId:
    obj, _ = RemoteId.objects.update_or_create(
        sync_id=sync_id, customer_pk=customer_pk, defaults={"remote_id": remote_id, "customer_ref": customer_ref}
    )
    return obj


def remote_id_from_response(*, path: str, text: str) -> str | None:
    import jsonpath

    try:
        document = json.loads(text)
    except ValueError:
        return None
    match = jsonpath.match(path, document)
    if match is None or match.obj is None or isinstance(match.obj, (dict, list)):
        return None
    return str(match.obj)


def crm_sync_test_delivery(*, action: CrmSyncAction, customer_snapshot: dict) -> Delivery:
    """Admin "Send a test": a delivery outside the customer's order, sent at once."""
    event_types: dict[str, str] = {value: key for key, value in CRM_EVENT_ACTIONS.items()}
    event_type = event_types[action.action]
    context = crm_context(event_type=event_type, customer=customer_snapshot)
    context["test"] = True
    with transaction.atomic():
        delivery = Delivery.objects.create(
            brand_id=action.sync.brand_id,
            source_kind="crm_action",
            source_id=action.pk,
            source_name=f"{action.sync.name} — {action.get_action_display()} (test)",
            event_type="test",
            customer_id=customer_snapshot.get("id"),
            message_id=f"msg_{uuid.uuid4().hex}",
            context=context,
            next_attempt_at=now(),
            deadline=now(),
        )
    claimed = delivery_claim(delivery_id=delivery.pk)
    if claimed is not None:
        delivery_attempt(delivery=claimed)
    delivery.refresh_from_db()
    return delivery


def crm_sync_set_signing_secret(*, sync: CrmSync) -> str:
    """Generate a Standard Webhooks secret (whsec_ + 32 random bytes); returned once."""
    import secrets as pysecrets

    secret = "whsec_" + base64.b64encode(pysecrets.token_bytes(32)).decode()
    sync.signing_secret = secret
    sync.save(update_fields=["signing_secret", "updated_at"])
    return secret


CRM_ACTIONS = [CrmAction.CREATE, CrmAction.UPDATE, CrmAction.DELETE]
