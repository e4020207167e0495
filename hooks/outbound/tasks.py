"""django-q2 entry points (thin: they call the engine and never raise for HTTP failures).

The task names (``hooks.outbound.tasks.deliver`` / ``.sweep``) are stored in
queued tasks and in the sweep Schedule: keep them stable.
"""

from __future__ import annotations

from .engine import clock, outbox, reconnect, run, stopping


def deliver(ids: list[int]) -> int:
    with stopping.engine_task():
        if stopping.requested():
            # This worker is stopping: hand the ids to another worker without sending.
            outbox.deliveries_enqueue(ids=list(ids), force=True)
            return 0
        reconnect.reconnecting(outbox.delivery_task_started, what="the task's start")
        reconnect.reconnecting(clock.sync_if_due, what="reading the database's clock")
        return run.deliveries_run(ids=list(ids))


def sweep() -> int:
    with stopping.engine_task():
        if stopping.requested():
            return 0
        return run.deliveries_sweep()


def recover(job_id: int) -> int:
    """A "Recover since" / replay job (hooks.outbound.recovery); returns how many deliveries were re-queued."""
    from .recovery import recovery_job_run

    return recovery_job_run(job_id=job_id).requeued
