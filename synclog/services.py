"""Log retention: old rows are deleted in small batches, never in one long lock."""

from __future__ import annotations

import time
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db import models
from django.utils import timezone

# (model label, timestamp field) of every log table retention applies to.
RETAINED_LOGS = [
    ("synclog.InboundRequest", "created_at"),
    ("synclog.DeliveryAttempt", "started_at"),
    ("sources.SourceCall", "started_at"),  # lookup source calls (hooks.sources), when installed
]
PURGE_BATCH = 2000


def retained_logs() -> list[tuple[str, type[models.Model], str]]:
    """(label, model, timestamp field) of every retained log. A misspelt model or
    field raises (LookupError / FieldDoesNotExist): a purge that silently skipped a
    table would keep its rows forever."""
    resolved = []
    for label, field_name in RETAINED_LOGS:
        model = apps.get_model(label)
        field = model._meta.get_field(field_name)
        if not isinstance(field, models.DateTimeField):
            raise TypeError(f"{label}.{field_name} is not a DateTimeField; retention needs the row's time.")
        resolved.append((label, model, field_name))
    return resolved


def logs_purge(*, older_than_days: int | None = None, batch_size: int = PURGE_BATCH, pause: float = 0.05) -> dict:
    """Delete log rows older than the retention (SYNCLOG_RETENTION_DAYS), batch by batch.

    Each batch is one short DELETE by primary key, so writers are never blocked
    for long; returns {model label: rows deleted}.
    """
    days = settings.SYNCLOG_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted: dict[str, int] = {}
    for label, model, field in retained_logs():  # every name checked before anything is deleted
        total = 0
        while True:
            ids = list(
                model._default_manager.filter(**{f"{field}__lt": cutoff})
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            total += model._default_manager.filter(pk__in=ids).delete()[1].get(label, len(ids))
            if len(ids) < batch_size:
                break
            time.sleep(pause)
        deleted[label] = total
    return deleted
