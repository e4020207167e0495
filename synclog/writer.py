"""Buffered writes of InboundRequest rows.

A lookup hands its log row to :func:`record` and returns; a daemon thread
writes the rows in bulk every SYNCLOG_FLUSH_INTERVAL seconds. A failure to
write is logged and never reaches the request. With an interval of 0 each row
is written at once (tests, and deployments that prefer it).

A row is a dict of InboundRequest column values (``brand_id``, ``endpoint``,
...; an ``InboundRequest`` instance is accepted too). On PostgreSQL the rows
are written with one COPY, elsewhere with ``bulk_create``: building model
instances and INSERT parameters costs more than the lookup they record.

One bad row never costs the others: text the database cannot store (NUL,
lone surrogates) is escaped before writing, and when a batch is refused anyway
the batch is written again row by row and only the refused rows are dropped,
logged and counted (:func:`dropped_total`).
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
from collections import deque
from functools import cache
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection, models, transaction

logger = logging.getLogger(__name__)

_pending: deque[Any] = deque(maxlen=100_000)
_lock = threading.Lock()
_thread: threading.Thread | None = None
_stop = threading.Event()  # the running thread's; a new thread gets a new one
_touches: dict[int, Any] = {}
_dropped = 0

# The database is away (restart, failover, dropped connection): not the rows' fault.
_CONNECTION_ERRORS = (OperationalError, InterfaceError)
# PostgreSQL text cannot hold NUL; its UTF-8 cannot hold lone surrogates (a broken
# percent-encoded path can decode to one). Written as \uXXXX instead.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def record(row, *, credential_id: int | None = None, used_at=None) -> None:
    """Queue a log row (and optionally a credential last-used time)."""
    _pending.append(row)
    if credential_id is not None:
        _touches[credential_id] = used_at
    if settings.SYNCLOG_FLUSH_INTERVAL <= 0:
        flush()
    else:
        _ensure_thread()


def dropped_total() -> int:
    """Rows the database refused since the process started (each one also logged)."""
    return _dropped


def flush() -> int:
    """Write everything queued; returns the number of rows written."""
    from hub.models import Credential

    drained = []
    while _pending:
        try:
            drained.append(_pending.popleft())
        except IndexError:
            break
    touches = dict(_touches)
    _touches.clear()
    rows: deque[dict[str, Any]] = deque()
    for row in drained:
        try:
            rows.append(_storable(row))
        except Exception:  # noqa: BLE001 - not a row at all: drop it, keep the others
            _count_dropped(1)
            logger.exception("Dropped an inbound request log row that is not one: %r", row)
    written = 0
    try:
        # Touches first: once a call's log row is visible, so is its key's last use.
        for credential_id, used_at in list(touches.items()):
            Credential.objects.filter(pk=credential_id).update(last_used_at=used_at)
            del touches[credential_id]
        written = _write(rows)
        if rows:  # the database went away midway (logged by _write)
            _keep_for_later(rows, touches)
            return written
    except _CONNECTION_ERRORS:
        logger.warning("Could not record credential use; retrying later", exc_info=True)
        _keep_for_later(rows, touches)
    except Exception:  # noqa: BLE001 - logging must never fail a lookup
        logger.exception("Could not write %d inbound request log rows", len(rows))
    return written


def _keep_for_later(rows: deque[dict[str, Any]], touches: dict[int, Any]) -> None:
    """Queue what is not written again, for the next flush on a fresh connection."""
    _pending.extendleft(reversed(rows))
    for credential_id, used_at in touches.items():
        _touches.setdefault(credential_id, used_at)
    connection.close()


def _write(rows: deque[dict[str, Any]]) -> int:
    """Write the rows in one batch, or row by row when the batch is refused;
    returns how many were written.

    Rows leave the deque as they are written or dropped: when the database goes
    away midway, what is left in it is what to keep for later. A batch, and each
    row after a refused batch, is its own transaction (a savepoint inside one), so
    a refused row leaves the connection usable for the next. A lone row (the usual
    flush with SYNCLOG_FLUSH_INTERVAL = 0) has nothing to isolate: no savepoint.
    """
    isolate = len(rows) > 1
    if isolate:
        try:
            refused = _attempt(list(rows), isolate=True)
        except _CONNECTION_ERRORS:
            _log_away(rows)
            return 0
        if refused is None:
            written = len(rows)
            rows.clear()
            return written
        logger.warning(
            "A batch of %d inbound request log rows was refused (%s); writing them one by one", len(rows), refused
        )
    written = dropped = 0
    while rows:
        try:
            refused = _attempt([rows[0]], isolate=isolate)
        except _CONNECTION_ERRORS:
            _log_away(rows)
            break
        if refused is None:
            written += 1
        else:
            dropped += 1
            # The reason once per flush: a systematic fault must not print a traceback per row.
            logger.warning(
                "Dropped an inbound request log row: %s", _describe(rows[0]), exc_info=refused if dropped == 1 else None
            )
        rows.popleft()
    if dropped:
        _count_dropped(dropped)
        logger.error(
            "Dropped %d inbound request log row(s) the database refused; wrote %d others (%d dropped since start)",
            dropped,
            written,
            dropped_total(),
        )
    return written


def _attempt(batch: list[dict[str, Any]], *, isolate: bool) -> Exception | None:
    """Insert the batch; returns why the database refused it, or None. Raises when the database is away."""
    try:
        if isolate:
            with transaction.atomic():
                _insert(batch)
        else:
            _insert(batch)
    except _CONNECTION_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - a refused row is reported, never raised to a lookup
        return exc
    return None


def _log_away(rows: deque[dict[str, Any]]) -> None:
    logger.warning("Could not write %d inbound request log rows; retrying later", len(rows), exc_info=True)


def _count_dropped(count: int) -> None:
    global _dropped
    with _lock:
        _dropped += count


def _describe(row: dict[str, Any]) -> str:
    return f"{row.get('method')} {row.get('path')!r} status {row.get('status')} at {row.get('created_at')}"


def _insert(rows: list[dict[str, Any]]) -> None:
    from .models import InboundRequest

    if connection.vendor == "postgresql":
        _copy(rows)
    else:
        InboundRequest.objects.bulk_create([InboundRequest(**row) for row in rows], batch_size=500)


@cache
def _columns() -> list:
    from .models import InboundRequest

    return [f for f in InboundRequest._meta.concrete_fields if not f.primary_key]


@cache
def _text_columns() -> list[tuple[str, int | None]]:
    return [(f.attname, f.max_length) for f in _columns() if isinstance(f, (models.CharField, models.TextField))]


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _storable(row) -> dict[str, Any]:
    """The row's column values with every text escaped where the database could not
    store it and cut to its column's length (escaping lengthens it)."""
    values = dict(row) if isinstance(row, dict) else {f.attname: getattr(row, f.attname) for f in _columns()}
    for name, max_length in _text_columns():
        value = values.get(name)
        if not isinstance(value, str):
            continue
        if _UNSTORABLE.search(value):
            value = _UNSTORABLE.sub(_escape, value)
        if max_length is not None and len(value) > max_length:
            value = value[:max_length]
        values[name] = value
    return values


def _copy(rows: list[dict[str, Any]]) -> None:
    from .models import InboundRequest

    fields = _columns()
    columns = ", ".join(f'"{f.column}"' for f in fields)
    defaults = {f.attname: f.get_default() for f in fields}
    with connection.cursor() as cursor:
        with cursor.copy(f'COPY "{InboundRequest._meta.db_table}" ({columns}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([row.get(f.attname, defaults[f.attname]) for f in fields])


def _run(stop: threading.Event, interval: float) -> None:
    try:
        while not stop.wait(interval):
            # The thread keeps its connection between flushes (CONN_MAX_AGE, like a
            # request); a broken or expired one is replaced here.
            close_old_connections()
            flush()
        flush()  # what was queued before the stop
    finally:
        connection.close()  # the thread's own connection


def _ensure_thread() -> None:
    global _thread, _stop
    if _thread is not None and _thread.is_alive():
        return
    with _lock:
        if _thread is not None and _thread.is_alive():
            return
        _stop = threading.Event()
        _thread = threading.Thread(
            target=_run, args=(_stop, settings.SYNCLOG_FLUSH_INTERVAL), name="synclog-writer", daemon=True
        )
        _thread.start()
        atexit.unregister(stop)
        atexit.register(stop)


def stop(*, timeout: float = 10.0) -> bool:
    """Stop the writer thread after a last flush (process exit, tests); returns
    whether it ended within the timeout. A later record() starts a new one."""
    global _thread
    with _lock:
        thread = _thread
        _stop.set()
    if thread is None:
        return True
    thread.join(timeout)
    with _lock:
        if _thread is thread and not thread.is_alive():
            _thread = None
    return not thread.is_alive()
