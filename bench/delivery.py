#!/usr/bin/env python
"""Outbound delivery benchmark: real django-q2 workers against a plain requests loop.

    make bench-delivery BENCH_ARGS="--deliveries 10000"
    .venv/bin/python bench/delivery.py --deliveries 10000 --workers 2

One run, everything on this machine, traffic to 127.0.0.1 only, every phase
bounded in time (``--timeout``):

1. a fresh PostgreSQL database (``--database``, default
   hookhub_bench_delivery; dropped at the end unless ``--keep-db``), migrated;
   one brand with a CRM sync whose Update Users webhook PUTs a JSON body built
   from the customer's tokens to the receiver;
2. the receiver: bench/delivery_receiver.py (asyncio, keep-alive, notes the
   receipt time of every webhook-id);
3. **baseline**: a plain ``requests.Session`` loop, one session per thread,
   ``--workers`` threads, N PUTs of the same size to the same receiver;
4. **burst**: N deliveries written through ``delivery_create`` (100 per
   transaction, as a bulk import would), then ``manage.py qcluster`` with
   ``--workers`` workers starts and drains them: deliveries/s from the first
   to the last receipt, every delivery with its own claim, attempt row and state;
5. **steady**: with the workers running, one delivery per transaction (as a
   customer update) at ``--rate`` per second for ``--steady-seconds``:
   p50 / p99 from commit to receipt;
6. **emit cost**: mean time of ``customer_update`` for a customer whose brand
   has three matching actions (three syncs) against one whose brand has none.

Prints the figures and the ratio to the baseline, saves bench/results/delivery.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="django-q2 workers and baseline threads")
    parser.add_argument("--rate", type=float, default=50.0, help="steady phase: deliveries per second")
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    parser.add_argument("--updates", type=int, default=300, help="emit-cost phase: customer updates per side")
    parser.add_argument("--database", default="hookhub_bench_delivery")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        help="requests per second set on the benchmark's action (0: none); set it high to measure the limiter's cost",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="upper bound for each phase, seconds")
    return parser.parse_args()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def pg_admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url + "/postgres", autocommit=True) as conn:
        conn.execute(sql)


def start_receiver() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "delivery_receiver.py")], stdout=subprocess.PIPE, text=True
    )
    port = int(proc.stdout.readline())
    return proc, port


def receiver(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        return json.loads(response.read() or b"{}") if path == "/dump" else {}


def baseline(port: int, n: int, threads: int, body: bytes) -> float:
    import requests

    per_thread = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]

    def run(index: int, count: int) -> None:
        session = requests.Session()
        for i in range(count):
            session.put(
                f"http://127.0.0.1:{port}/people/C{i}",
                data=body,
                headers={"Content-Type": "application/json", "webhook-id": f"base-{index}-{i}"},
                timeout=10,
            )

    workers = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(per_thread)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return n / (time.perf_counter() - start)


def start_cluster(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_cluster(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_received(port: int, ids: set[str], timeout: float) -> dict:
    stop = time.monotonic() + timeout
    while time.monotonic() < stop:
        got = receiver(port, "/dump")
        if ids <= set(got):
            return got
        time.sleep(0.5)
    got = receiver(port, "/dump")
    print(f"  ! timed out: {len(ids & set(got))}/{len(ids)} received", flush=True)
    return got


def main() -> None:
    args = parse_args()
    db_url = f"{args.pg}/{args.database}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "HUB_ALLOW_PRIVATE_DESTINATIONS": "true",
        "Q_WORKERS": str(args.workers),
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(
        {k: env[k] for k in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "HUB_ALLOW_PRIVATE_DESTINATIONS", "LOG_LEVEL")}
    )
    pg_admin(args.pg, f"DROP DATABASE IF EXISTS {args.database}")
    pg_admin(args.pg, f"CREATE DATABASE {args.database}")
    rx, port = start_receiver()
    cluster = None
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        from django.db import transaction
        from django.db.models import Count

        from customers.services import customer_create, customer_update
        from hooks.outbound import crm
        from hooks.outbound.engine import outbox
        from hooks.outbound.models import CrmSync, CrmSyncAction, Delivery
        from hub.models import Brand

        brand = Brand.objects.create(slug="bench", name="Bench")
        sync = CrmSync.objects.create(brand=brand, name="Bench CRM")
        body_template = (
            '{"first_name": "{{ person.first_name }}", "last_name": "{{ person.last_name }}", '
            '"email": "{{ person.email }}", "phone": "{{ person.phone }}", "updated_at": "{{ person.updated_at }}"}'
        )
        action = CrmSyncAction.objects.create(
            sync=sync,
            action="update",
            enabled=True,
            method="PUT",
            url=f"http://127.0.0.1:{port}/people/{{{{ customer_id }}}}",
            body=body_template,
            timeout_seconds=10,
            rate_limit_per_second=args.rate_limit or None,
        )
        person = {
            "first_name": "Maria",
            "last_name": "Jansen",
            "email": "maria@example.com",
            "phone": "+31612345678",
            "updated_at": "2026-11-22T10:00:00Z",
        }
        sample_body = json.dumps(person).encode()

        def make(i: int):
            context = crm.crm_context(
                event_type="customer.updated", customer={**person, "id": i, "customer_id": f"C{i:07d}"}
            )
            return outbox.delivery_create(
                brand_id=brand.pk,
                source_kind="crm_action",
                source_id=action.pk,
                source_name="Bench CRM — Update Users",
                event_type="customer.updated",
                context=context,
                customer_id=i,
                order_key=crm.crm_order_key(sync.pk, i),
            )

        results: dict = {
            "deliveries": args.deliveries,
            "workers": args.workers,
            "rate_limit_per_second": args.rate_limit or None,
        }
        print(f"== baseline: requests.Session loop, {args.workers} threads, {args.deliveries} PUTs", flush=True)
        results["baseline_rps"] = baseline(port, args.deliveries, args.workers, sample_body)
        print(f"   {results['baseline_rps']:.0f} req/s", flush=True)
        receiver(port, "/reset")

        print(
            f"== burst: {args.deliveries} deliveries written (100 per transaction), then {args.workers} workers drain them",
            flush=True,
        )
        commits: dict[str, float] = {}
        for start in range(0, args.deliveries, 100):
            with transaction.atomic():
                made = [make(i) for i in range(start, min(start + 100, args.deliveries))]
            moment = time.time()
            for d in made:
                commits[d.message_id] = moment
        cluster = start_cluster(env)
        got = wait_received(port, set(commits), args.timeout)
        times = sorted(got[m][0] for m in commits if m in got)
        results["burst_dps"] = len(times) / max(times[-1] - times[0], 1e-9)
        results["burst_ratio"] = results["burst_dps"] / results["baseline_rps"]
        results["burst_duplicates"] = sum(got[m][1] - 1 for m in commits if m in got)
        settle = time.monotonic() + 30  # the last batch's attempts are recorded just after its receipt
        while Delivery.objects.exclude(state="delivered").exists() and time.monotonic() < settle:
            time.sleep(0.2)
        states = dict(Delivery.objects.values_list("state").annotate(n=Count("pk")))
        results["burst_states"] = states
        print(
            f"   {results['burst_dps']:.0f} deliveries/s = {results['burst_ratio']:.2f}x baseline; states {states}",
            flush=True,
        )
        receiver(port, "/reset")

        total = int(args.rate * args.steady_seconds)
        print(f"== steady: {total} deliveries, one per transaction, at {args.rate:g}/s", flush=True)
        commits = {}
        t0 = time.perf_counter()
        for i in range(total):
            target = t0 + i / args.rate
            pause = target - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            with transaction.atomic():
                d = make(1_000_000 + i)
            commits[d.message_id] = time.time()
        got = wait_received(port, set(commits), args.timeout)
        latencies = [(got[m][0] - commits[m]) * 1000 for m in commits if m in got]
        results["steady_rate"] = args.rate
        results["steady_p50_ms"] = statistics.median(latencies)
        results["steady_p99_ms"] = pct(latencies, 0.99)
        print(
            f"   commit→receipt p50 {results['steady_p50_ms']:.0f} ms, p99 {results['steady_p99_ms']:.0f} ms",
            flush=True,
        )
        stop_cluster(cluster)
        cluster = None

        # The machine is shared: the baseline again after the hub phases, and the ratio to the mean of both.
        receiver(port, "/reset")
        print("== baseline again (load drifts on a shared machine)", flush=True)
        results["baseline_rps_after"] = baseline(port, args.deliveries, args.workers, sample_body)
        mean = (results["baseline_rps"] + results["baseline_rps_after"]) / 2
        results["burst_ratio_to_mean_baseline"] = results["burst_dps"] / mean
        print(
            f"   {results['baseline_rps_after']:.0f} req/s; burst {results['burst_dps']:.0f} deliveries/s = "
            f"{results['burst_ratio_to_mean_baseline']:.2f}x the mean baseline ({mean:.0f} req/s)",
            flush=True,
        )

        print(
            f"== emit cost: customer_update, {args.updates} per side (workers stopped; tasks only enqueued)", flush=True
        )
        quiet = Brand.objects.create(slug="quiet", name="Quiet")
        busy = Brand.objects.create(slug="busy", name="Busy")
        for n in range(3):
            s = CrmSync.objects.create(brand=busy, name=f"CRM {n}")
            CrmSyncAction.objects.create(
                sync=s, action="update", enabled=True, method="PUT", url=f"http://127.0.0.1:{port}/x", body="{}"
            )
        timings = {}
        for label, b in (("none", quiet), ("three", busy)):
            customer = customer_create(
                brand=b, first_name="A", last_name="B", addresses=[{"kind": "email", "value": f"a@{b.slug}.example"}]
            )
            samples = []
            for i in range(args.updates):
                start = time.perf_counter()
                customer = customer_update(customer=customer, first_name=f"A{i}")
                samples.append((time.perf_counter() - start) * 1000)
            timings[label] = statistics.mean(samples[10:])
        results["update_ms_no_actions"] = timings["none"]
        results["update_ms_three_actions"] = timings["three"]
        print(
            f"   no matching actions {timings['none']:.2f} ms; three matching actions {timings['three']:.2f} ms "
            f"(+{timings['three'] - timings['none']:.2f} ms)",
            flush=True,
        )

        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "delivery.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(json.dumps(results, indent=2, default=str))
    finally:
        if cluster is not None:
            stop_cluster(cluster)
        rx.terminate()
        rx.wait(timeout=10)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001
            pass
        if not args.keep_db:
            pg_admin(args.pg, f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")


if __name__ == "__main__":
    main()
