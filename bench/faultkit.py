"""The pieces of a fault-injection run, shared by bench/faults.py (`make faults`)
and tests/test_faults.py (the same faults at small scale).

Everything runs on this machine and talks to loopback only: a webhook
receiver that records every message id it is sent (bench/delivery_receiver.py
with a log file, so it can go down and come back without forgetting), hub
worker clusters (``manage.py qcluster`` processes, each in its own process
group), and the faults themselves: SIGKILL of a whole cluster, FLUSHDB of the
Redis broker's database, pg_terminate_backend of every connection to the hub's
database, and a jump of one cluster's clock (bench/faultclock/sitecustomize.py).

The hub is driven only through its public paths: events emitted in a
transaction (hub.events.emit), models, and qcluster processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
CLOCK_SHIM = ROOT / "bench" / "faultclock"


class Receiver:
    """bench/delivery_receiver.py on 127.0.0.1, appending every receipt to ``log``.
    ``stop()`` takes it down (connections refused); ``start()`` brings it back on the same port."""

    def __init__(self, log: Path, port: int = 0, delay: float = 0.0) -> None:
        self.log = log
        self.port = port
        self.delay = delay
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, str(ROOT / "bench" / "delivery_receiver.py"), str(self.port), "--log", str(self.log)]
        self.process = subprocess.Popen(
            [*command, "--delay", str(self.delay)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def received(self) -> dict[str, list[float]]:
        """Every message id received so far, with the time of each receipt."""
        seen: dict[str, list[float]] = {}
        if not self.log.exists():
            return seen
        for line in self.log.read_text().splitlines():
            moment, _, message_id = line.partition(" ")
            if message_id:
                seen.setdefault(message_id, []).append(float(moment))
        return seen


class Cluster:
    """One ``manage.py qcluster`` (a django-q2 cluster: sentinel, pusher, workers, monitor)."""

    def __init__(self, name: str, env: dict[str, str], log: Path, clock_file: Path | None = None) -> None:
        self.name = name
        self.env = dict(env)
        self.log = log
        self.clock_file = clock_file
        self.process: subprocess.Popen | None = None
        if clock_file is not None:
            clock_file.write_text("0")
            self.env["HUB_FAULTS_CLOCK_FILE"] = str(clock_file)
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CLOCK_SHIM), self.env.get("PYTHONPATH")]))

    def start(self) -> None:
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=ROOT,
                env=self.env,
                start_new_session=True,  # its own process group: one signal reaches every process of the cluster
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """SIGKILL to every process of the cluster at once (a host or container dying)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self.process = None

    def stop(self, grace: float = 15.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        self.kill9()

    def clock_jump(self, seconds: float) -> None:
        """Move this cluster's wall clock by ``seconds`` from the real time (0 puts it back)."""
        assert self.clock_file is not None, "start the cluster with a clock file to jump its clock"
        self.clock_file.write_text(str(seconds))


def redis_flush(url: str) -> int:
    """FLUSHDB on the broker's Redis database: every queued task is lost. Returns how many keys went."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = int(client.dbsize())
        client.flushdb()
        return keys
    finally:
        client.close()


def pg_terminate(database_url: str) -> int:
    """pg_terminate_backend for every connection to the hub's database (only that database's),
    from an administrative connection to the ``postgres`` database. Returns how many were ended."""
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    with psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        ).fetchall()
    return sum(1 for (ended,) in rows if ended)


def hub_env(*, database_url: str, redis_url: str, settings_module: str = "config.settings", **extra: str) -> dict:
    """The environment of a hub process in the production shape (PostgreSQL + Redis)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "HUB_ALLOW_PRIVATE_DESTINATIONS": "true",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


UPDATE_BODY = '{"id": "{{ customer_id }}", "name": "{{ person.first_name }} {{ person.last_name }}"}'


def crm_sync_to(*, brand, receiver_url: str, timeout_seconds: int, body: str = UPDATE_BODY):
    """A CRM sync whose Update action PUTs every customer.updated event to the receiver."""
    from hooks.outbound.models import CrmSync, CrmSyncAction

    sync = CrmSync.objects.create(brand=brand, name="Receiver CRM")
    CrmSyncAction.objects.create(
        sync=sync,
        action="update",
        enabled=True,
        method="PUT",
        url=f"{receiver_url}/people/{{{{ customer_id }}}}",
        body=body,
        timeout_seconds=timeout_seconds,
    )
    return sync


def emit_updates(*, brand_id: int, numbers: range) -> None:
    """customer.updated for customers ``numbers`` (one delivery each through the sync above).
    Call it inside the transaction that should write the outbox rows."""
    from hub.events import emit

    for n in numbers:
        customer = {"id": n, "customer_id": f"F{n:07d}", "first_name": "Fault", "last_name": "Run"}
        emit(brand_id=brand_id, event_type="customer.updated", data={"customer": customer}, customer_id=n)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> float | None:
    """Seconds until ``condition()`` held, or None when it did not within ``timeout``."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(interval)
