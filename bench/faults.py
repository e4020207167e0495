#!/usr/bin/env python
"""Fault injection: a burst of deliveries through the production shape, with five faults in one run.

    make faults
    make faults FAULTS_ARGS="--deliveries 10000 --rate 200"
    .venv/bin/python bench/faults.py --help

PostgreSQL (a fresh database, dropped at the end) + Redis as the broker (a
database of its own, default 6, flushed before and after) + ``--clusters``
``manage.py qcluster`` processes, and a local receiver on 127.0.0.1 that records
every message id it is sent. While ``--deliveries`` deliveries are written at
``--rate`` per second (customer.updated events emitted in transactions of
``--batch``, as a bulk import would), the run injects, ``--gap`` seconds apart:

1. ``kill -9`` of a whole cluster (its process group), restarted after ``--restart-after`` s;
2. ``FLUSHDB`` of the broker's Redis database: every queued task is lost;
3. ``pg_terminate_backend`` of every connection to the hub's database (this run's too);
4. the receiver down for ``--receiver-down`` s (connections refused), then back on the same port;
5. the last cluster's wall clock (``django.utils.timezone.now``) jumps ``--clock-jump`` s ahead,
   and steps back after ``--gap`` s (bench/faultclock: libfaketime is not available here).

Then it waits (at most ``--recovery-timeout`` s) until every delivery is received
and prints: deliveries lost (must be 0), duplicates (same message id) against
what was in flight at the faults, the time from each fault to recovery, and
throughput. Retries are short for the run (``--retry-interval``). Exit status 1
when anything was lost or the duplicates exceed their bound. docs/reliability.md
explains the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import faultkit  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument(
        "--rate", type=float, default=90.0, help="deliveries written per second (the burst outlasts the faults)"
    )
    parser.add_argument("--batch", type=int, default=10, help="events per transaction")
    parser.add_argument("--clusters", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="django-q2 workers per cluster (Q_WORKERS)")
    parser.add_argument("--database", default=os.environ.get("FAULTS_DATABASE", "hookhub_faults"))
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--redis", default=os.environ.get("FAULTS_REDIS_URL", "redis://127.0.0.1:6379/6"))
    parser.add_argument("--first-fault", type=float, default=6.0, help="seconds into the burst")
    parser.add_argument("--gap", type=float, default=8.0, help="seconds between faults")
    parser.add_argument("--restart-after", type=float, default=3.0)
    parser.add_argument("--receiver-down", type=float, default=6.0)
    parser.add_argument("--clock-jump", type=float, default=600.0, help="seconds the last cluster's clock jumps ahead")
    parser.add_argument("--retry-interval", type=int, default=3, help="HUB_RETRY_INTERVAL_SECONDS for the run")
    parser.add_argument("--lease", type=int, default=int(os.environ.get("HUB_DELIVERY_LEASE_SECONDS", "40")))
    parser.add_argument("--timeout-seconds", type=int, default=5, help="the webhook's own HTTP timeout")
    parser.add_argument(
        "--recovery-timeout",
        type=float,
        default=float(os.environ.get("HUB_FAULTS_RECOVERY_SECONDS", "300")),
        help="upper bound for the drain after the burst, seconds",
    )
    parser.add_argument(
        "--slow-after", type=float, default=2.0, help="a delivery received later than this after its commit was delayed"
    )
    parser.add_argument("--keep-db", action="store_true")
    return parser.parse_args()


def pg_admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url + "/postgres", autocommit=True) as conn:
        conn.execute(sql)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Producer(threading.Thread):
    """Writes the burst: ``batch`` events per transaction at ``rate`` per second, retrying a
    transaction that a terminated connection broke (the change is then made again)."""

    def __init__(self, brand_id: int, total: int, rate: float, batch: int) -> None:
        super().__init__(daemon=True)
        self.brand_id, self.total, self.rate, self.batch = brand_id, total, rate, batch
        self.committed: dict[int, float] = {}  # customer number -> commit time
        self.retried = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        from django.db import InterfaceError, OperationalError, connection, transaction

        start = time.perf_counter()
        try:
            for first in range(0, self.total, self.batch):
                pause = start + first / self.rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                numbers = range(first + 1, min(first + self.batch, self.total) + 1)
                for _ in range(20):
                    try:
                        with transaction.atomic():
                            faultkit.emit_updates(brand_id=self.brand_id, numbers=numbers)
                        break
                    except (OperationalError, InterfaceError):
                        self.retried += 1
                        connection.close()
                        time.sleep(0.2)
                else:
                    raise RuntimeError(f"could not commit events {numbers.start}..{numbers.stop - 1}")
                moment = time.time()
                for n in numbers:
                    self.committed[n] = moment
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc
        finally:
            connection.close()


def in_flight() -> set[int]:
    """The deliveries claimed (in flight) right now."""
    from django.db import connection

    from hooks.outbound.models import Delivery

    try:
        return set(Delivery.objects.filter(state="in_flight").values_list("pk", flat=True))
    except Exception:  # noqa: BLE001 - right after pg_terminate_backend
        connection.close()
        return set(Delivery.objects.filter(state="in_flight").values_list("pk", flat=True))


def hold(seconds: float, entry: dict) -> None:
    """Wait while a fault lasts, adding every delivery seen in flight meanwhile to its
    duplicate bound (a receiver killed mid-request or a clock ahead can repeat any of them)."""
    stop = time.monotonic() + seconds
    seen = set(entry.pop("_in_flight_ids"))
    while time.monotonic() < stop:
        seen |= in_flight()
        time.sleep(0.25)
    entry["in_flight"] = len(seen)


def main() -> int:
    args = parse_args()
    database_url = f"{args.pg}/{args.database}"
    workdir = RESULTS / f"faults-{time.strftime('%Y%m%dT%H%M%S')}"
    workdir.mkdir(parents=True, exist_ok=True)
    env = faultkit.hub_env(
        database_url=database_url,
        redis_url=args.redis,
        Q_WORKERS=str(args.workers),
        HUB_RETRY_INTERVAL_SECONDS=str(args.retry_interval),
        HUB_DELIVERY_LEASE_SECONDS=str(args.lease),
    )
    os.environ.update(
        {k: v for k, v in env.items() if k.startswith(("HUB_", "DJANGO_", "DATABASE_", "REDIS_", "LOG_"))}
    )
    faultkit.redis_flush(args.redis)
    pg_admin(args.pg, f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
    pg_admin(args.pg, f"CREATE DATABASE {args.database}")
    receiver = faultkit.Receiver(workdir / "received.log")
    clusters: list[faultkit.Cluster] = []
    report: dict = {"args": vars(args), "faults": []}
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        from django.db.models import Count

        from hooks.outbound.models import Delivery
        from hub.models import Brand

        receiver.start()
        brand = Brand.objects.create(slug="faults", name="Faults")
        faultkit.crm_sync_to(brand=brand, receiver_url=receiver.url, timeout_seconds=args.timeout_seconds)
        for index in range(args.clusters):
            name = chr(ord("a") + index)
            clock = workdir / f"clock-{name}" if index == args.clusters - 1 else None
            clusters.append(faultkit.Cluster(name, env, workdir / f"cluster-{name}.log", clock_file=clock))
            clusters[-1].start()

        load = os.getloadavg()
        print(
            f"== {args.deliveries} deliveries at {args.rate:g}/s, {args.clusters} clusters x {args.workers} workers, "
            f"PostgreSQL {args.database}, Redis {args.redis}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
            flush=True,
        )
        producer = Producer(brand.pk, args.deliveries, args.rate, args.batch)
        t0 = time.time()
        producer.start()

        def at(offset: float) -> None:
            pause = t0 + offset - time.time()
            if pause > 0:
                time.sleep(pause)

        def fault(name: str, detail: str) -> dict:
            ids = in_flight()
            entry = {"fault": name, "at": time.time(), "in_flight": len(ids), "_in_flight_ids": ids, "detail": detail}
            report["faults"].append(entry)
            print(f"  t={entry['at'] - t0:6.1f}s  {name}: {detail} ({len(ids)} in flight)", flush=True)
            return entry

        offset = args.first_fault
        at(offset)
        victim = clusters[0]
        entry = fault("kill -9", f"cluster {victim.name} (its whole process group)")
        victim.kill9()
        entry.pop("_in_flight_ids")  # what it held is all it can repeat
        time.sleep(args.restart_after)
        victim.start()
        entry["restarted_after"] = args.restart_after

        offset += args.gap
        at(offset)
        entry = fault("FLUSHDB", f"Redis {args.redis}")
        entry.pop("_in_flight_ids")
        entry["keys_dropped"] = faultkit.redis_flush(args.redis)

        offset += args.gap
        at(offset)
        entry = fault("pg_terminate_backend", f"every connection to {args.database}")
        entry.pop("_in_flight_ids")
        entry["connections_ended"] = faultkit.pg_terminate(database_url)

        offset += args.gap
        at(offset)
        entry = fault("receiver down", f"{args.receiver_down:g} s, connections refused")
        receiver.stop()
        hold(args.receiver_down, entry)
        receiver.start()

        offset += args.gap + args.receiver_down
        at(offset)
        jumped = clusters[-1]
        entry = fault("clock jump", f"cluster {jumped.name}'s clock +{args.clock_jump:g} s, back after {args.gap:g} s")
        jumped.clock_jump(args.clock_jump)
        hold(args.gap, entry)
        jumped.clock_jump(0)

        producer.join(timeout=args.deliveries / args.rate + args.recovery_timeout)
        if producer.error is not None:
            raise producer.error
        burst_end = time.time()
        print(
            f"== burst written in {burst_end - t0:.1f} s ({producer.retried} transactions retried); draining",
            flush=True,
        )
        from django.db import connection

        connection.close()

        def drained() -> bool:
            expected = set(Delivery.objects.values_list("message_id", flat=True))
            return expected <= set(receiver.received()) and not Delivery.objects.exclude(state="delivered").exists()

        waited = faultkit.wait_until(drained, args.recovery_timeout, interval=1.0)
        report["drain_seconds"] = waited

        # ------------------------------------------------------------ figures
        received = receiver.received()
        rows = list(Delivery.objects.values_list("customer_id", "message_id", "state"))
        by_message = {message_id: number for number, message_id, _state in rows}
        states = dict(Delivery.objects.values_list("state").annotate(n=Count("pk")))
        lost = sorted(m for m in by_message if m not in received)
        unknown = [m for m in received if m not in by_message]
        accepted_missing = sorted(set(producer.committed) - set(by_message.values()))
        duplicates = sum(len(times) - 1 for m, times in received.items() if m in by_message)
        bound = sum(f["in_flight"] for f in report["faults"])
        first_receipt = {m: min(times) for m, times in received.items() if m in by_message}
        commit_of = {m: producer.committed.get(n) for m, n in by_message.items()}
        faults = report["faults"]
        fault_times = [entry["at"] for entry in faults]

        def culprit(start: float, end: float) -> int | None:
            """The fault a delay or a repeat between ``start`` and ``end`` belongs to: the first
            fault in that interval (a later one found the delivery already held up), or, when
            none fell in it, the last fault before it (the hub was still recovering)."""
            inside = [i for i, moment in enumerate(fault_times) if start <= moment <= end]
            if inside:
                return inside[0]
            before = [i for i, moment in enumerate(fault_times) if moment <= start]
            return before[-1] if before else None

        delayed_by: dict[int, list[str]] = {i: [] for i in range(len(faults))}
        for m, c in commit_of.items():
            received_at = first_receipt.get(m)
            if c is None or received_at is None or received_at - c <= args.slow_after:
                continue
            index = culprit(c, received_at)
            if index is not None:
                delayed_by[index].append(m)
        repeats_by: dict[int, int] = dict.fromkeys(range(len(faults)), 0)
        for m, times_of in received.items():
            if m not in by_message:
                continue
            ordered = sorted(times_of)
            for repeat in ordered[1:]:
                index = culprit(ordered[0], repeat)
                if index is not None:
                    repeats_by[index] += 1
        for index, entry in enumerate(faults):
            # Delayed: received more than --slow-after seconds after its commit, counted against
            # the first fault between its commit and its receipt (see culprit).
            moment = entry["at"]
            later = [t for t in first_receipt.values() if t > moment]
            entry["duplicates"] = repeats_by[index]
            entry["delayed"] = len(delayed_by[index])
            entry["first_receipt_after_s"] = (min(later) - moment) if later else None
            done = [first_receipt[m] for m in delayed_by[index]]
            entry["recovered_after_s"] = max(done) - moment if done else 0.0
        # A django-q2 schedule run by a cluster whose clock was ahead keeps that clock's next run.
        from django.utils import timezone
        from django_q.models import Schedule

        next_runs = Schedule.objects.filter(func="hooks.outbound.tasks.sweep").values_list("next_run", flat=True)
        report["sweep_schedule_next_run_in_s"] = [(moment - timezone.now()).total_seconds() for moment in next_runs]
        times = sorted(first_receipt.values())
        latencies = [
            (first_receipt[m] - c) * 1000 for m, c in commit_of.items() if c is not None and m in first_receipt
        ]
        report.update(
            {
                "deliveries": len(by_message),
                "states": states,
                "lost": len(lost),
                "accepted_but_missing": len(accepted_missing),
                "duplicates": duplicates,
                "duplicate_bound_in_flight": bound,
                "unknown_ids_received": len(unknown),
                "throughput_dps": len(times) / max(times[-1] - times[0], 1e-9) if len(times) > 1 else 0.0,
                "commit_to_receipt_p50_ms": statistics.median(latencies) if latencies else None,
                "commit_to_receipt_p99_ms": pct(latencies, 0.99) if latencies else None,
                "load_average": os.getloadavg(),
            }
        )
        print(
            f"== faults (recovered: until the last delivery it delayed by more than {args.slow_after:g} s was received;"
            " a delay or repeat belongs to the first fault between the commit or first receipt and the receipt)"
        )
        for entry in report["faults"]:
            recovered = entry["recovered_after_s"]
            resumed = entry["first_receipt_after_s"]
            print(
                f"  {entry['fault']:<22} in flight {entry['in_flight']:>4}  delayed {entry['delayed']:>5}  "
                f"duplicates {entry['duplicates']:>4}  "
                f"first receipt after {resumed if resumed is None else f'{resumed:.1f} s'}  "
                f"recovered after {'NOT RECOVERED' if recovered is None else f'{recovered:.1f} s'}"
            )
        print(f"== deliveries {report['deliveries']} ({states}); committed by the producer {len(producer.committed)}")
        print(f"   lost: {report['lost']} (accepted but no outbox row: {report['accepted_but_missing']})")
        print(f"   duplicates: {duplicates} (bound: {bound} in flight at the faults, or while they lasted)")
        print(
            f"   throughput {report['throughput_dps']:.0f} deliveries/s first to last receipt; commit→receipt "
            f"p50 {report['commit_to_receipt_p50_ms'] or float('nan'):.0f} ms, "
            f"p99 {report['commit_to_receipt_p99_ms'] or float('nan'):.0f} ms"
        )
        print(
            "   the sweep schedule's next run is in "
            + ", ".join(f"{seconds:.0f} s" for seconds in report["sweep_schedule_next_run_in_s"])
        )
        print(f"   drain after the burst: {'timed out' if waited is None else f'{waited:.1f} s'}; logs in {workdir}")
        (workdir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        (RESULTS / "faults.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        ok = report["lost"] == 0 and report["accepted_but_missing"] == 0 and duplicates <= bound
        print("== PASS" if ok else "== FAIL", flush=True)
        return 0 if ok else 1
    finally:
        for cluster in clusters:
            cluster.kill9()
        receiver.stop()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001
            pass
        faultkit.redis_flush(args.redis)
        if not args.keep_db:
            pg_admin(args.pg, f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")


if __name__ == "__main__":
    sys.exit(main())
