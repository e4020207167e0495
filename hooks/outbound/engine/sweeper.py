"""The sweeper: a thread in each ``qcluster`` process that asks, every
HUB_SWEEP_INTERVAL_SECONDS, whether any delivery is due (a retry whose time
came, a lease that expired after a worker died, a task the broker lost) and
then asks for a task (run.deliveries_wake). The database stays the source of
truth; the query is one indexed EXISTS, and a task is enqueued only when none
is already waiting to start, so several clusters polling never pile up tasks.
The minute schedule (tasks.sweep) stays as a safety net. It also keeps its
process's reading of the database's clock fresh (engine.clock), and its
connection is health-checked before each round (qcluster turns on
CONN_HEALTH_CHECKS for the cluster's processes), so a connection the database
ended costs it nothing.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections, connection

from hub import metrics

from . import clock, run

logger = logging.getLogger(__name__)


def interval_seconds() -> float:
    return float(getattr(settings, "HUB_SWEEP_INTERVAL_SECONDS", 1))


class Sweeper(threading.Thread):
    def __init__(self, *, interval: float) -> None:
        super().__init__(name="hookhub-delivery-sweeper", daemon=True)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        failures = 0
        while not self.stopped.wait(min(self.interval * (1 + failures), 30)):
            try:
                close_old_connections()
                clock.sync_if_due()
                run.deliveries_wake()
                metrics.worker_heartbeat()
                failures = 0
            except Exception:  # noqa: BLE001 - a database or broker outage: try again later
                failures += 1
                logger.exception("The delivery sweeper failed (%d in a row); retrying", failures)
                connection.close()
        metrics.worker_heartbeat_end()
        connection.close()

    def stop(self) -> None:
        self.stopped.set()


def sweeper_start() -> Sweeper | None:
    """Start the sweeper thread (none when HUB_SWEEP_INTERVAL_SECONDS is 0)."""
    interval = interval_seconds()
    if interval <= 0:
        return None
    sweeper = Sweeper(interval=interval)
    sweeper.start()
    return sweeper
