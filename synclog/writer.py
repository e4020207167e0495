"""Buffered writes of InboundRequest rows.

A lookup hands its log row to :func:`record` and returns; a daemon thread
writes the rows in bulk every SYNCLOG_FLUSH_INTERVAL seconds. A failure to
write is logged and never reaches the request. With an interval of 0 each row
is written at once (tests, and deployments that prefer it).

A row is a dict of InboundRequest column values (``brand_id``, ``endpoint``,
...; an ``InboundRequest`` instance is accepted too). On PostgreSQL the rows
are written with one COPY, elsewhere with ``bulk_create``: building model
instances and INSERT parameters costs more than the lookup they record.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import deque
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

logger = logging.getLogger(__name__)

_pending: deque[Any] = deque(maxlen=100_000)
_lock = threading.Lock()
_thread: threading.Thread | None = None
_touches: dict[int, Any] = {}


def record(row, *, credential_id: int | None = None, used_at=None) -> None:
    """Queue a log row (and optionally a credential last-used time)."""
    _pending.append(row)
    if credential_id is not None:
        _touches[credential_id] = used_at
    if settings.SYNCLOG_FLUSH_INTERVAL <= 0:
        flush()
    else:
        _ensure_thread()


def flush() -> int:
    """Write everything queued; returns the number of rows written."""
    from hub.models import Credential

    from .models import InboundRequest

    rows = []
    while _pending:
        try:
            rows.append(_pending.popleft())
        except IndexError:
            break
    touches = dict(_touches)
    _touches.clear()
    try:
        if rows:
            rows = [_values(row) for row in rows]
            if connection.vendor == "postgresql":
                _copy(rows)
            else:
                InboundRequest.objects.bulk_create([InboundRequest(**row) for row in rows], batch_size=500)
        for credential_id, used_at in touches.items():
            Credential.objects.filter(pk=credential_id).update(last_used_at=used_at)
    except (OperationalError, InterfaceError):
        # The database is away (restart, failover, dropped connection): keep
        # the rows for the next flush, on a fresh connection.
        logger.warning("Could not write %d inbound request log rows; retrying later", len(rows), exc_info=True)
        _pending.extendleft(reversed(rows))
        for credential_id, used_at in touches.items():
            _touches.setdefault(credential_id, used_at)
        connection.close()
        return 0
    except Exception:  # noqa: BLE001 - logging must never fail a lookup
        logger.exception("Could not write %d inbound request log rows", len(rows))
        return 0
    return len(rows)


def _columns() -> list:
    from .models import InboundRequest

    return [f for f in InboundRequest._meta.concrete_fields if not f.primary_key]


def _values(row) -> dict[str, Any]:
    if isinstance(row, dict):
        return row
    return {f.attname: getattr(row, f.attname) for f in _columns()}


def _copy(rows: list[dict[str, Any]]) -> None:
    from .models import InboundRequest

    fields = _columns()
    columns = ", ".join(f'"{f.column}"' for f in fields)
    defaults = {f.attname: f.get_default() for f in fields}
    with connection.cursor() as cursor:
        with cursor.copy(f'COPY "{InboundRequest._meta.db_table}" ({columns}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([row.get(f.attname, defaults[f.attname]) for f in fields])


def _run() -> None:
    interval = settings.SYNCLOG_FLUSH_INTERVAL
    event = threading.Event()
    while True:
        event.wait(interval)
        # The thread keeps its connection between flushes (CONN_MAX_AGE, like a
        # request); a broken or expired one is replaced here.
        close_old_connections()
        flush()


def _ensure_thread() -> None:
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    with _lock:
        if _thread is not None and _thread.is_alive():
            return
        _thread = threading.Thread(target=_run, name="synclog-writer", daemon=True)
        _thread.start()
        atexit.register(flush)
