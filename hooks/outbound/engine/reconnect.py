"""A worker's database connection that went away (``pg_terminate_backend``, a
database restart or failover, a pooler restarted): reconnect and carry on.

Django reuses a persistent connection (CONN_MAX_AGE) without checking it, so
the first statement after the database ended it fails. Two things keep a
worker going (docs/reliability.md, "pg_terminate_backend"):

* ``qcluster`` turns on Django's CONN_HEALTH_CHECKS for its own processes
  only (a reused connection is checked once before each task, and by the
  sweeper once a second); web processes keep reusing theirs unchecked, since a
  check there would add a round trip to every lookup;
* a connection lost *during* a task does not fail the task with its batch
  still claimed (held until its lease ran out): the engine's statements go
  through :func:`reconnecting`, which reconnects and runs them again, and a
  batch interrupted midway records what was sent and gives the rest back
  (``run._batch_send``).

Only a lost connection is retried: another OperationalError (a lock timeout,
a serialization failure) on a connection that still works is raised as it
was, and nothing is retried inside a caller's transaction (the transaction is
gone with the connection; its outermost caller decides).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_DELAYS = (
    0.0,
    0.5,
    1.0,
    2.0,
)  # before each retry; a restart or failover takes a few seconds; then the lease takes over
LOST = (OperationalError, InterfaceError)
SHUTDOWN_STATES = {"57P01", "57P02", "57P03"}


def connection_lost(exc: BaseException) -> bool:
    """Was ``exc`` the database connection going away (and may the statement be run again)?

    Told by the error, not by the connection afterwards: when a transaction's
    rollback fails, Django drops the connection and its ``atomic`` block opens
    a new one on the way out. The server says so with SQLSTATE class 08
    (connection exception) or 57P01–57P03 (administrator / crash shutdown,
    cannot connect now); the client's own connection errors carry no SQLSTATE.
    A lock timeout, a cancelled statement or a serialization failure carry
    theirs and are not retried here."""
    if not isinstance(exc, LOST) or connection.in_atomic_block or connection.vendor != "postgresql":
        return False  # SQLite's OperationalError is "database is locked", handled by its busy timeout
    sqlstate = getattr(exc.__cause__, "sqlstate", None) or getattr(exc, "sqlstate", None)
    if sqlstate is None:
        return True
    return sqlstate.startswith("08") or sqlstate in SHUTDOWN_STATES


def reconnecting(operation: Callable[[], T], *, what: str) -> T:
    """Run ``operation`` (statements of its own, each in its own transaction or
    autocommit); when the connection is lost, reconnect and run it again, a few
    times over about 3.5 s. ``operation`` must be safe to run twice: a commit
    whose answer was lost may have happened."""
    for delay in RETRY_DELAYS:
        try:
            return operation()
        except LOST as exc:
            if not connection_lost(exc):
                raise
            logger.warning("The database connection was lost during %s (%s); reconnecting", what, exc)
            connection.close()
            time.sleep(delay)
    return operation()  # the last try: its error is raised as it is
