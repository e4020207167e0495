"""django-q2 entry points (thin: they call services and never raise for HTTP failures)."""

from __future__ import annotations

from . import services


def deliver(ids: list[int]) -> int:
    services.delivery_task_started()
    return services.deliveries_run(ids=list(ids))


def sweep() -> int:
    return services.deliveries_sweep()
