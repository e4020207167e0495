"""The log of calls to lookup sources: rows queued by any thread, written by the
lookup's own thread or a background flusher (worker threads never touch the
database)."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction

from hub.models import Brand

from .models import LookupSource, SourceCall

logger = logging.getLogger(__name__)

_pending: deque[dict[str, Any]] = deque(maxlen=100_000)
_flusher: threading.Thread | None = None
_flusher_lock = threading.Lock()


def call_record(row: dict[str, Any]) -> None:
    """Queue one SourceCall row. Worker threads never write to the database; the
    rows are written by the lookup's own thread when it ends (SYNCLOG_FLUSH_INTERVAL
    0) or by a background flusher every interval, off the response path."""
    _pending.append(row)
    if settings.SYNCLOG_FLUSH_INTERVAL > 0:
        _ensure_flusher()


def calls_flush() -> int:
    """Write the queued call rows; returns how many. A failure is logged, never raised."""
    rows = []
    while _pending:
        try:
            rows.append(_pending.popleft())
        except IndexError:
            break
    if not rows:
        return 0
    try:
        # A source or brand deleted while its call was in flight: keep the row (its
        # name stays), without the link; a gone brand's rows have nowhere to go.
        sources = set(LookupSource.objects.filter(pk__in={r["source_id"] for r in rows}).values_list("pk", flat=True))
        brands = set(Brand.objects.filter(pk__in={r["brand_id"] for r in rows}).values_list("pk", flat=True))
        kept = [
            {**r, "source_id": r["source_id"] if r["source_id"] in sources else None}
            for r in rows
            if r["brand_id"] in brands
        ]
        with transaction.atomic():
            SourceCall.objects.bulk_create([SourceCall(**row) for row in kept], batch_size=500)
    except Exception:  # noqa: BLE001 - the log must never fail a lookup
        logger.exception("Could not write %d lookup source call rows", len(rows))
        return 0
    return len(rows)


def _flush_forever() -> None:
    while True:
        time.sleep(max(settings.SYNCLOG_FLUSH_INTERVAL, 0.05))
        if _pending:
            close_old_connections()
            calls_flush()


def _ensure_flusher() -> None:
    global _flusher
    if _flusher is not None and _flusher.is_alive():
        return
    with _flusher_lock:
        if _flusher is None or not _flusher.is_alive():
            _flusher = threading.Thread(target=_flush_forever, name="lookup-source-log", daemon=True)
            _flusher.start()


atexit.register(lambda: _pending and calls_flush())


def flush_here() -> None:
    """Write the queued rows now when no flusher runs (SYNCLOG_FLUSH_INTERVAL 0)."""
    if settings.SYNCLOG_FLUSH_INTERVAL <= 0:
        calls_flush()
