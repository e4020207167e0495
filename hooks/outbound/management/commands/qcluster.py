"""``manage.py qcluster``: django-q2's cluster with the delivery engine's
graceful stop and sweeper (hooks/outbound/engine/stopping.py, sweeper.py).

Django takes a command from the first app in INSTALLED_APPS that has it, so
``hooks.outbound`` is listed before ``django_q``. Arguments are django-q2's.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from django.conf import settings
from django.db import connections
from django_q.cluster import Cluster
from django_q.management.commands.qcluster import Command as Q2Command

from hooks.outbound.engine import stopping, sweeper

EXIT_MARGIN_SECONDS = 2  # after the workers' grace: the Sentinel saves results and exits


class Command(Q2Command):
    help = "Starts a django-q2 cluster that stops gracefully on SIGTERM and sweeps due deliveries every second."

    def handle(self, *args: object, **options: object) -> None:
        settings.SECRET_KEY  # noqa: B018 - as django-q2: refuse to start without the signing key
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = str(options["cluster_name"])
        stopping.cluster_prepare()  # before the cluster forks: every worker inherits the flag
        _health_checks_on()
        cluster = Cluster()
        running: list[sweeper.Sweeper] = []

        def on_stop(signum: int, frame: object) -> None:
            stopping.cluster_stop()
            for thread in running:
                thread.stop()
            if not any(t.name == "hookhub-stop-deadline" for t in threading.enumerate()):
                threading.Thread(
                    target=_exit_by_deadline, args=(cluster,), name="hookhub-stop-deadline", daemon=True
                ).start()
            cluster.sig_handler(signum, frame)

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        cluster.start()
        started = sweeper.sweeper_start()  # after the fork: threads and connections stay in this process
        if started is not None:
            running.append(started)
        if options.get("run_once", False):
            on_stop(signal.SIGTERM, None)
            return
        while cluster.sentinel is not None and cluster.sentinel.is_alive():
            time.sleep(0.5)


def _health_checks_on() -> None:
    """Django's CONN_HEALTH_CHECKS for this cluster's processes only (workers,
    monitor, sweeper): a reused connection is checked (one ``SELECT 1``) before
    each task and each sweeper round, so one the database ended
    (pg_terminate_backend, a restart) is replaced instead of failing the next
    task. Web processes keep the setting as configured: there it would add a
    round trip to every lookup (engine.reconnect)."""
    for alias in connections:
        connections[alias].settings_dict["CONN_HEALTH_CHECKS"] = True
    connections.close_all()  # the next connection of each process and thread reads the setting


def _exit_by_deadline(cluster: Cluster) -> None:
    """Whatever happens in the cluster, this process is gone shortly after the workers' grace."""
    time.sleep(stopping.grace_seconds() + EXIT_MARGIN_SECONDS)
    sentinel = cluster.sentinel
    if sentinel is not None and sentinel.pid and sentinel.is_alive():
        os.kill(sentinel.pid, signal.SIGKILL)
    os._exit(1)
