#!/usr/bin/env python
"""Where a worker's CPU goes per delivery: the engine's task body in-process under cProfile.

    .venv/bin/python bench/delivery_cpu.py --deliveries 3000

A fresh PostgreSQL database (``--database``, dropped at the end), one brand
with a CRM sync whose Update Users webhook PUTs a JSON body to
bench/delivery_receiver.py on 127.0.0.1, ``--deliveries`` outbox rows written
first (a backlog), then ``run.deliveries_run()`` in this process (what a
django-q2 worker runs, without the broker and the cluster's processes) until
nothing is due. Prints the process CPU time per delivery and its split by
what the engine does (the HTTP request, rendering, claiming, recording,
the rest), from cProfile's cumulative times scaled to the CPU time (cProfile
measures wall time; the machine is shared). A plain ``requests.Session``
loop against the same receiver, in the same process, is the reference for
the HTTP request. docs/benchmarks.md ("Where the CPU goes") has the figures.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import faultkit  # noqa: E402

BODY = '{"first_name": "{{ person.first_name }}", "last_name": "{{ person.last_name }}", "id": "{{ customer_id }}"}'
PARTS = {  # (module path fragment, function name): what the engine does
    "the HTTP request (requests + urllib3 + the SSRF guard)": ("hooks/outbound/transport.py", "send"),
    "rendering the request (templates, masking)": ("hooks/outbound/rendering.py", "render_request"),
    "claiming (SELECT ... FOR UPDATE SKIP LOCKED + UPDATE)": ("hooks/outbound/engine/claim.py", "deliveries_claim"),
    "recording (attempt rows, states, health)": ("hooks/outbound/engine/attempt.py", "deliveries_record"),
    "CRM prefetch / prepare (remote ids)": ("hooks/outbound/engine/run.py", "_prefetch"),
    "traffic gate (Retry-After pauses)": ("hooks/outbound/engine/traffic.py", "gate"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--database", default="hookhub_bench_cpu")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument(
        "--guards-rounds",
        type=int,
        default=0,
        help="instead of the profile: N rounds of the drain with neither guard, the rate limit, the breaker "
        "and both (rotating order), CPU and wall per delivery for each",
    )
    args = parser.parse_args()
    import psycopg

    def admin(sql: str) -> None:
        with psycopg.connect(args.pg + "/postgres", autocommit=True) as conn:
            conn.execute(sql)

    admin(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
    admin(f"CREATE DATABASE {args.database}")
    env = faultkit.hub_env(database_url=f"{args.pg}/{args.database}", redis_url="")
    env.pop("REDIS_URL")
    os.environ.update({k: v for k, v in env.items() if k.startswith(("HUB_", "DJANGO_", "DATABASE_", "LOG_"))})
    os.environ.pop("REDIS_URL", None)
    receiver = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "delivery_receiver.py")], stdout=subprocess.PIPE, text=True
    )
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline())
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        import django

        django.setup()
        import requests
        from django.db import transaction

        from hooks.outbound.engine import run
        from hooks.outbound.models import Delivery
        from hub.models import Brand

        brand = Brand.objects.create(slug="cpu", name="CPU")
        sync = faultkit.crm_sync_to(brand=brand, receiver_url=f"http://127.0.0.1:{port}", timeout_seconds=10, body=BODY)
        numbers = iter(range(1, 10**9))

        def backlog() -> None:
            for start in range(0, args.deliveries, 100):
                with transaction.atomic():
                    count = min(100, args.deliveries - start)
                    faultkit.emit_updates(brand_id=brand.pk, numbers=[next(numbers) for _ in range(count)])

        def drain() -> int:
            done = 0
            while True:
                sent = run.deliveries_run()
                done += sent
                if not sent:
                    return done

        load = os.getloadavg()
        print(f"== {args.deliveries} deliveries a round; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        if args.guards_rounds:
            guards(args, sync=sync, backlog=backlog, drain=drain)
            return

        session = requests.Session()
        cpu, wall = time.process_time(), time.perf_counter()
        for n in range(args.deliveries):
            session.put(
                f"http://127.0.0.1:{port}/people/{n}",
                data=b'{"first_name": "Fault", "last_name": "Run", "id": "1"}',
                headers={"Content-Type": "application/json", "webhook-id": f"loop-{n}"},
                timeout=10,
            )
        loop_cpu = (time.process_time() - cpu) / args.deliveries * 1000
        loop_wall = (time.perf_counter() - wall) / args.deliveries * 1000
        print(f"   requests.Session loop: {loop_cpu:.3f} ms CPU, {loop_wall:.3f} ms wall per request")

        backlog()
        cpu, wall = time.process_time(), time.perf_counter()
        done = drain()
        engine_cpu = (time.process_time() - cpu) / max(done, 1) * 1000
        engine_wall = (time.perf_counter() - wall) / max(done, 1) * 1000
        delivered = Delivery.objects.filter(state="delivered").count()
        print(
            f"   engine (deliveries_run in-process, one worker): {done} attempted, {delivered} delivered; "
            f"{engine_cpu:.3f} ms CPU, {engine_wall:.3f} ms wall per delivery"
        )
        backlog()
        profile = cProfile.Profile(time.process_time)  # CPU time, not wall: the machine is shared
        profile.enable()
        drain()
        profile.disable()
        stats = pstats.Stats(profile)
        (ROOT / "bench" / "results").mkdir(exist_ok=True)
        profile.dump_stats(ROOT / "bench" / "results" / "delivery_cpu.prof")  # for pstats: callers, callees
        total = sum(entry[3] for key, entry in stats.stats.items() if key[2] == "deliveries_run")  # type: ignore[attr-defined]
        print("   split of deliveries_run's CPU time (a second round under cProfile with a CPU timer):")
        for label, (path, name) in PARTS.items():
            share = sum(
                entry[3]
                for key, entry in stats.stats.items()  # type: ignore[attr-defined]
                if key[0].endswith(path) and key[2] == name
            )
            print(f"     {share / total:6.1%}  {label}")
        print(f"   (the loop's request alone: {loop_cpu / engine_cpu:.0%} of the engine's CPU per delivery)")
        print("   the functions that spend the most CPU themselves (tottime):")
        ranked = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
        for (path, line, name), entry in ranked[:12]:
            print(f"     {entry[2] / total:6.1%}  {name} ({'/'.join(path.split('/')[-2:])}:{line})")
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
        from django.db import connections

        connections.close_all()
        admin(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")


GUARDS = {"neither": (None, False), "limit": (50_000.0, False), "breaker": (None, True), "both": (50_000.0, True)}


def guards(args: argparse.Namespace, *, sync, backlog, drain) -> None:
    """One worker in-process, the same backlog drained with each combination of
    the guards (a rate limit far above the pace, the circuit breaker), the order
    rotating every round: CPU and wall time per delivery, and the database
    statements per delivery (pg_stat_database's commits)."""
    from statistics import median

    from django.conf import settings
    from django.db import connection

    from hooks.outbound.models import DestinationThrottle

    def commits() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")
            cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            return cursor.fetchone()[0]

    names = list(GUARDS)
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in names}
    for number in range(args.guards_rounds):
        order = names[number % len(names) :] + names[: number % len(names)]
        for name in order:
            rate, breaker = GUARDS[name]
            sync.actions.update(rate_limit_per_second=rate)
            DestinationThrottle.objects.all().delete()
            settings.HUB_CIRCUIT_BREAKER = breaker
            backlog()
            before = commits()
            cpu, wall = time.process_time(), time.perf_counter()
            done = drain()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            made = commits() - before - 1
            figures[name].append((cpu / done * 1000, wall / done * 1000, made / done))
            print(
                f"   round {number + 1} {name:8} {cpu / done * 1000:.3f} ms CPU, {wall / done * 1000:.3f} ms wall, "
                f"{made / done:.2f} commits per delivery",
                flush=True,
            )
    base_cpu = median(f[0] for f in figures["neither"])
    base_wall = median(f[1] for f in figures["neither"])
    print(f"   medians over {args.guards_rounds} rounds (one worker, {args.deliveries} deliveries a round):")
    for name in names:
        cpu = median(f[0] for f in figures[name])
        wall = median(f[1] for f in figures[name])
        made = median(f[2] for f in figures[name])
        print(
            f"     {name:8} {cpu:.3f} ms CPU ({cpu / base_cpu:.3f}x), {wall:.3f} ms wall ({wall / base_wall:.3f}x), "
            f"{made:.2f} commits per delivery"
        )


if __name__ == "__main__":
    main()
