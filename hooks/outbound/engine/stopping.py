"""The graceful stop of a delivery worker.

django-q2 1.11.1 stops a cluster like this: the ``qcluster`` process handles
SIGTERM/SIGINT by setting the Sentinel's stop event; the Sentinel stops its
pusher, puts one "STOP" per worker behind the tasks already in the workers'
queue (up to ``queue_limit``) and waits for every worker to get there. A worker
runs its current task to the end (our delivery task: up to a 45 s budget) and
then every queued task. The Sentinel's own SIGTERM disposition is the default
(it dies at once when the whole process group is signalled), and its workers
inherit that, so a group-wide SIGTERM killed workers mid-request and orphaned
the survivors.

What Hookhub adds (``hooks/outbound/management/commands/qcluster.py`` and
:func:`worker_prepare`, run in every worker through django-q2's ``post_spawn``):

* one cluster-wide stop flag in shared memory, made by the qcluster process
  before it forks the cluster and set by its SIGTERM/SIGINT handler; every
  worker inherits it. It is a lock-free value, not a ``multiprocessing.Event``:
  setting an Event waits for every process sleeping on it, and one that died
  meanwhile (a group-wide SIGTERM) would block the stop forever;
* in each worker, SIGTERM sets a local flag instead of killing it; an idle
  worker exits at once, a busy one when its task returns;
* the delivery task checks the flag before each delivery: it finishes the
  request in progress, records it, gives the rest of its batch back (pending,
  lease cleared) and enqueues a task for it; queued tasks hand their ids on
  without sending;
* a hard limit: HUB_WORKER_STOP_GRACE_SECONDS after the stop began, a worker
  still busy (a request longer than that) exits anyway; the lease brings its
  delivery back, sent again with the same message id.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

_cluster_stop: Any = None  # a shared c_bool made by the qcluster process, inherited by the cluster it forks
_signalled = False  # this process received SIGTERM itself
_busy = False  # this worker is running one of the engine's tasks


def grace_seconds() -> float:
    return float(getattr(settings, "HUB_WORKER_STOP_GRACE_SECONDS", 7))


def cluster_prepare() -> None:
    """In the qcluster process, before the cluster forks: the shared stop flag."""
    global _cluster_stop
    _cluster_stop = multiprocessing.get_context("fork").RawValue(ctypes.c_bool, False)


def cluster_stop() -> None:
    """In the qcluster process, on SIGTERM/SIGINT: every worker of the cluster stops."""
    if _cluster_stop is not None:
        _cluster_stop.value = True


def requested() -> bool:
    """True once this worker or its cluster is asked to stop."""
    return _signalled or (_cluster_stop is not None and bool(_cluster_stop.value))


def worker_prepare(**kwargs: object) -> None:
    """django-q2 ``post_spawn`` receiver (runs in each worker process)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    threading.Thread(target=_exit_after_grace, name="hookhub-stop-watchdog", daemon=True).start()


def _on_sigterm(signum: int, frame: object) -> None:
    global _signalled
    _signalled = True
    if not _busy:
        raise SystemExit(0)  # idle (waiting for a task): nothing to finish


def _exit_after_grace() -> None:
    while not requested():
        time.sleep(0.25)
    time.sleep(grace_seconds())
    logger.warning("Worker %s still busy %s s after the stop began; exiting anyway", os.getpid(), grace_seconds())
    os._exit(1)


@contextmanager
def engine_task() -> Iterator[None]:
    """Wraps an engine task in a worker: a SIGTERM during it waits for its end,
    then the worker exits (its Sentinel may be gone, so no STOP would come)."""
    global _busy
    _busy = True
    try:
        yield
    finally:
        _busy = False
        if _signalled:
            raise SystemExit(0)
