"""Recover since and Replay: putting finished deliveries back on the engine.

* **Recover since** (admin action, ``manage.py deliveries_recover``) re-queues
  every failed delivery of a brand created since a time (of one sync or rule
  when given) as a background job (:class:`~hooks.outbound.models.RecoveryJob`,
  a django-q2 task) that counts its progress.
* **Replay** re-queues chosen deliveries, delivered ones too, and marks them
  (``Delivery.replayed_at``; their attempts after that are noted "Replay").

Either way each delivery keeps its row, and so its message id (the
``webhook-id`` / ``Idempotency-Key`` a Standard Webhooks receiver dedupes on),
its order key (deliveries of one customer still go out one at a time, oldest
first: the job re-queues in id order) and its attempt history. The move is
failed/delivered -> pending through the engine's guarded transition, with a
fresh retry window (deadline = now + HUB_RETRY_WINDOW_SECONDS), as "Retry now".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from .engine import clock, outbox, state
from .models import CrmSync, Delivery, RecoveryJob

CHUNK = 200  # deliveries re-queued per transaction (progress is written after each)
RECOVER_TASK = "hooks.outbound.tasks.recover"


class RecoveryError(Exception):
    """Bad input for a recovery (unknown sync or rule, ...); the message says why."""


def recovery_matching(
    *,
    brand_id: int,
    since: datetime,
    sync: str = "",
    rule: str = "",
    states: tuple[str, ...] = (state.FAILED,),
    source_kind: str = "",
    source_ids: list[int] | None = None,
) -> QuerySet[Delivery]:
    """The deliveries "Recover since" re-queues, oldest first. ``sync`` / ``rule``
    are names within the brand; ``source_kind`` with ``source_ids`` picks destinations by id."""
    EventRule = apps.get_model("rules", "EventRule")  # by label: the rules app uses this one, never the other way round
    queryset = Delivery.objects.filter(brand_id=brand_id, created_at__gte=since, state__in=states)
    if source_kind:
        queryset = queryset.filter(source_kind=source_kind, source_id__in=source_ids or [])
    if sync:
        found = CrmSync.objects.filter(brand_id=brand_id, name=sync).first()
        if found is None:
            raise RecoveryError(f"No CRM sync named {sync!r} in this brand.")
        queryset = queryset.filter(source_kind="crm_action", source_id__in=found.actions.values("pk"))
    if rule:
        found_rule = EventRule.objects.filter(brand_id=brand_id, name=rule).first()
        if found_rule is None:
            raise RecoveryError(f"No dispatcher rule named {rule!r} in this brand.")
        queryset = queryset.filter(source_kind="rule", source_id=found_rule.pk)
    return queryset.order_by("pk")


def recovery_job_create(
    *,
    brand_id: int,
    delivery_ids: list[int],
    description: str,
    created_by: str,
    replay: bool = False,
    enqueue: bool = True,
) -> RecoveryJob:
    """A job over ``delivery_ids`` (re-queued in id order), run by a django-q2 task
    after commit (``enqueue=False``: the caller runs it, e.g. the command's --foreground)."""
    ids = sorted(set(delivery_ids))
    job = RecoveryJob.objects.create(
        brand_id=brand_id,
        description=description[:300],
        replay=replay,
        delivery_ids=ids,
        total=len(ids),
        created_by=created_by[:150],
    )
    if enqueue:
        transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: int) -> None:
    from django_q.tasks import async_task

    async_task(RECOVER_TASK, job_id, task_name="outbound recover")


def deliveries_requeue(*, ids: list[int], replay: bool) -> int:
    """Move ``ids`` that are failed (or delivered, for a replay) back to pending,
    due now, with a fresh retry window. Returns how many moved."""
    moment = clock.now()
    sources = [state.FAILED, state.DELIVERED] if replay else [state.FAILED]
    changes = {
        "next_attempt_at": moment,
        "finished_at": None,
        "deadline": moment + timedelta(seconds=settings.HUB_RETRY_WINDOW_SECONDS),
    }
    if replay:
        changes["replayed_at"] = moment
    return state.deliveries_transition(ids=ids, source=sources, target=state.PENDING, **changes)


def recovery_job_run(*, job_id: int, progress: Callable[[RecoveryJob], None] | None = None) -> RecoveryJob:
    """Re-queue the job's deliveries in chunks from where it stopped (a re-run
    after a crash continues), counting progress; then ask for a delivery task."""
    job = RecoveryJob.objects.get(pk=job_id)
    while job.done < job.total:
        chunk = job.delivery_ids[job.done : job.done + CHUNK]
        with transaction.atomic():
            moved = deliveries_requeue(ids=chunk, replay=job.replay)
            job.done += len(chunk)
            job.requeued += moved
            RecoveryJob.objects.filter(pk=job.pk).update(done=job.done, requeued=job.requeued)
        # Each chunk goes out while the next is re-queued; order holds per customer (ids ascend).
        outbox.deliveries_enqueue(ids=chunk, force=True)
        if progress is not None:
            progress(job)
    if job.finished_at is None:
        job.finished_at = clock.now()
        RecoveryJob.objects.filter(pk=job.pk).update(finished_at=job.finished_at)
    return job


