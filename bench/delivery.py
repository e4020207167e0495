#!/usr/bin/env python
"""Outbound delivery benchmark: django-q2 clusters on the ORM and Redis brokers, against the receiver's own capacity.

    make bench-delivery BENCH_ARGS="--deliveries 10000"
    .venv/bin/python bench/delivery.py --deliveries 10000 --clusters 1,2 --brokers orm,redis

One run, everything on this machine, traffic to 127.0.0.1 only, every phase
bounded in time (``--timeout``):

1. a fresh PostgreSQL database (``--database``, default
   hookhub_bench_delivery; dropped at the end unless ``--keep-db``), migrated;
   one brand with a CRM sync whose Update Users webhook PUTs a JSON body built
   from the customer's tokens to the receiver;
2. the receiver: bench/delivery_receiver.py (asyncio, keep-alive, notes the
   receipt time of every webhook-id);
3. **receiver capacity**: ``wrk`` POSTs the same body to the same receiver
   (``--wrk-connections``, 2 threads): the physical ceiling of the setup.
   Debian's wrk is installed with apt-get when missing and possible; otherwise
   this row is skipped with a message;
4. **baseline**: a plain ``requests.Session`` loop, ``--workers`` threads, N PUTs;
5. **burst**, for each broker of ``--brokers`` (``orm``: django-q2's ORM broker
   on PostgreSQL; ``redis``: ``--redis``, flushed before and after) and each
   cluster count of ``--clusters`` (that many ``manage.py qcluster`` processes,
   ``--workers`` each): N deliveries written in transactions of 100
   customer.updated events (hub.events.emit, as a bulk import would), either
   while the clusters run (``live``) or before they start (``backlog``: the
   drain after an outage); deliveries/s from the first to the last receipt,
   every delivery with its own claim, attempt row and state;
6. **steady**, for each broker with the largest cluster count: one delivery per
   transaction at ``--rate`` per second for ``--steady-seconds``: p50 / p99 from
   commit to receipt;
7. **emit cost** (in the first broker's run, clusters stopped): mean time of
   ``customer_update`` for a customer whose brand has three matching actions
   (three syncs) against one whose brand has none;
8. the baseline again (the machine is shared), and the load average.

With ``--guards-rounds N`` (and ``--guards limit``, ``breaker`` or both, the
default) the child measures, instead of 5-7, the cost of the
rate limiter and the circuit breaker (issue 11): N rounds, each a burst
**without** them (no limit, clusters started with HUB_CIRCUIT_BREAKER=false)
and one **with** both (``--rate-limit``, default 50 000/s: configured, never
reached; the breaker on, never tripping), in alternating order (ABBA), every
burst with freshly started clusters; the load average is noted per burst.

Each broker's phases run in a child process (``--child``), since a process's
Django settings pick one broker. Prints the figures and their ratios to the
receiver's capacity and the baseline; saves bench/results/delivery.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import faultkit  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BODY_TEMPLATE = (
    '{"first_name": "{{ person.first_name }}", "last_name": "{{ person.last_name }}", '
    '"email": "{{ person.email }}", "phone": "{{ person.phone }}", "updated_at": "{{ person.updated_at }}"}'
)
PERSON = {
    "first_name": "Maria",
    "last_name": "Jansen",
    "email": "maria@example.com",
    "phone": "+31612345678",
    "updated_at": "2026-11-22T10:00:00Z",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="django-q2 workers per cluster, and baseline threads")
    parser.add_argument("--clusters", default="1,2", help="cluster counts to measure, e.g. 1,2")
    parser.add_argument("--brokers", default="orm,redis", help="brokers to measure: orm, redis or both")
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6"))
    parser.add_argument(
        "--burst-modes",
        default="live,backlog",
        help="live: written while the clusters run (a bulk import); backlog: written first, then the clusters start",
    )
    parser.add_argument("--rate", type=float, default=200.0, help="steady phase: deliveries per second")
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    parser.add_argument("--updates", type=int, default=300, help="emit-cost phase: customer updates per side")
    parser.add_argument(
        "--wrk-connections", type=int, default=4, help="wrk connections (default: 2 clusters x 2 workers' worth)"
    )
    parser.add_argument("--wrk-seconds", type=int, default=8)
    parser.add_argument("--database", default="hookhub_bench_delivery")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--timeout", type=float, default=600.0, help="upper bound for each phase, seconds")
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        help="requests per second set on the benchmark's action (0: none); set it high to measure the limiter's cost",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="also measure CPU seconds per delivery (or request) by process: clusters, PostgreSQL backends, "
        "receiver, writer, Redis, wrk, the requests loop (from /proc)",
    )
    parser.add_argument(
        "--guards-rounds",
        type=int,
        default=0,
        help="instead of the broker/cluster matrix: this many rounds of the burst (first cluster count, each "
        "--burst-modes) without the rate limit and circuit breaker (no limit, HUB_CIRCUIT_BREAKER=false) and "
        "with both (--rate-limit, default 50000/s, and the breaker on), alternating, fresh clusters each time",
    )
    parser.add_argument(
        "--guards",
        default="limit,breaker",
        help="what the 'with' side of --guards-rounds turns on: limit, breaker or both (the 'without' side: neither)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # broker:port, run by the parent
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


def redis_flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def receiver(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        return json.loads(response.read() or b"{}") if path == "/dump" else {}


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


def cpu_snapshot(*, database: str = "", cluster_groups: tuple[int, ...] = (), receiver_parent: int = 0) -> dict:
    """CPU seconds (user + system) by pid of the processes that take part (--cpu), with their kind:
    this process (``writer``), the clusters' process groups, the PostgreSQL backends of ``database``,
    the receiver started by ``receiver_parent``, redis-server (shared with anything else using it)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid, parent, group = int(entry.name), int(fields[1]), int(fields[2])
        if pid == os.getpid():
            kind = "writer"
        elif group in cluster_groups:
            kind = "cluster"
        elif database and command.startswith("postgres: ") and f" {database} " in command:
            kind = "postgres"
        elif "delivery_receiver.py" in command and parent == receiver_parent:
            kind = "receiver"
        elif command.startswith("redis-server") or "/redis-server" in command:
            kind = "redis"
        else:
            continue
        found[pid] = (kind, (int(fields[11]) + int(fields[12])) / tick)
    return found


def cpu_spent(before: dict, after: dict, count: int) -> dict:
    """Milliseconds of CPU per delivery (or request) by kind between two snapshots (new processes from 0)."""
    spent: dict[str, float] = {}
    for pid, (kind, seconds) in after.items():
        spent[kind] = spent.get(kind, 0.0) + seconds - before.get(pid, (kind, 0.0))[1]
    per = {kind: 1000 * seconds / max(count, 1) for kind, seconds in sorted(spent.items())}
    per["total"] = sum(value for kind, value in per.items() if kind != "redis")  # redis-server is shared
    return per


def cpu_text(per: dict) -> str:
    return "CPU ms per delivery: " + ", ".join(f"{kind} {value:.2f}" for kind, value in per.items())


# ---------------------------------------------------------------- the parent


def wrk_binary() -> str | None:
    """Debian's wrk, installed with apt-get when missing and this runs as root; None when unavailable."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("   installing Debian's wrk (apt-get)", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 300}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, **quiet).returncode:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, **quiet)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, **quiet)
    return shutil.which("wrk")


def receiver_capacity(port: int, body: bytes, connections: int, seconds: int) -> float | None:
    """wrk POSTs against the receiver: requests/s, or None without wrk."""
    wrk = wrk_binary()
    if wrk is None:
        print("   wrk is not available (not root, or no apt-get): receiver capacity not measured", flush=True)
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(body.decode())}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            'wrk.headers["webhook-id"] = "wrk"\n'
        )
    cpu_before = cpu_snapshot(receiver_parent=os.getpid())
    children_before = os.times()
    try:
        out = subprocess.run(
            [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script.name, f"http://127.0.0.1:{port}/people/C1"],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found and CPU_FIGURES is not None:
        requests_done = float(found.group(1)) * seconds
        per = cpu_spent(cpu_before, cpu_snapshot(receiver_parent=os.getpid()), int(requests_done))
        done = os.times()
        wrk_cpu = done.children_user + done.children_system - children_before.children_user
        wrk_cpu -= children_before.children_system
        CPU_FIGURES["wrk"] = {"receiver": per.get("receiver", 0.0), "wrk": 1000 * wrk_cpu / requests_done}
        print(f"   CPU ms per request: receiver {per.get('receiver', 0):.3f}, wrk {CPU_FIGURES['wrk']['wrk']:.3f}")
    return float(found.group(1)) if found else None


CPU_FIGURES: dict | None = None  # the parent's --cpu figures (wrk, the requests loop)


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
    cpu_before = cpu_snapshot(receiver_parent=os.getpid()) if CPU_FIGURES is not None else {}
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    rate = n / (time.perf_counter() - start)
    if CPU_FIGURES is not None:
        per = cpu_spent(cpu_before, cpu_snapshot(receiver_parent=os.getpid()), n)
        CPU_FIGURES.setdefault("baseline", []).append({"loop": per.get("writer", 0.0), "receiver": per["receiver"]})
        print(f"   CPU ms per request: requests loop {per.get('writer', 0):.3f}, receiver {per['receiver']:.3f}")
    return rate


def hub_env(args: argparse.Namespace, broker: str) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": f"{args.pg}/{args.database}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "HUB_ALLOW_PRIVATE_DESTINATIONS": "true",
        "Q_WORKERS": str(args.workers),
        "LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    if broker == "redis":
        env["REDIS_URL"] = args.redis
    return env


def main() -> None:
    args = parse_args()
    if args.child:
        child(args)
        return
    brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    global CPU_FIGURES
    CPU_FIGURES = {} if args.cpu else None
    pg_admin(args.pg, f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
    pg_admin(args.pg, f"CREATE DATABASE {args.database}")
    rx = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "delivery_receiver.py")], stdout=subprocess.PIPE, text=True
    )
    assert rx.stdout is not None
    port = int(rx.stdout.readline())
    load = os.getloadavg()
    results: dict = {
        "deliveries": args.deliveries,
        "workers_per_cluster": args.workers,
        "load_average_start": load,
        "runs": {},
    }
    print(f"== load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; receiver on 127.0.0.1:{port}", flush=True)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=hub_env(args, "orm"),
            check=True,
        )
        body = json.dumps(PERSON).encode()
        print(f"== receiver capacity: wrk POST, 2 threads, {args.wrk_connections} connections, {args.wrk_seconds} s")
        results["receiver_capacity_rps"] = receiver_capacity(port, body, args.wrk_connections, args.wrk_seconds)
        if results["receiver_capacity_rps"]:
            print(f"   {results['receiver_capacity_rps']:.0f} req/s", flush=True)
        receiver(port, "/reset")
        print(f"== baseline: requests.Session loop, {args.workers} threads, {args.deliveries} PUTs", flush=True)
        results["baseline_rps"] = baseline(port, args.deliveries, args.workers, body)
        print(f"   {results['baseline_rps']:.0f} req/s", flush=True)
        receiver(port, "/reset")

        for broker in brokers:
            if broker == "redis":
                redis_flush(args.redis)
            out = subprocess.run(
                [sys.executable, __file__, *sys.argv[1:], "--child", f"{broker}:{port}"],
                env=hub_env(args, broker),
                stdout=subprocess.PIPE,
                text=True,
                timeout=args.timeout * 4,
                check=True,
            ).stdout
            results["runs"][broker] = json.loads(out.strip().splitlines()[-1])
            if broker == "redis":
                redis_flush(args.redis)

        print("== baseline again (load drifts on a shared machine)", flush=True)
        receiver(port, "/reset")
        results["baseline_rps_after"] = baseline(port, args.deliveries, args.workers, body)
        print(f"   {results['baseline_rps_after']:.0f} req/s", flush=True)
        results["load_average_end"] = os.getloadavg()
        if CPU_FIGURES is not None:
            results["cpu_ms"] = CPU_FIGURES
        summarize(results)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "delivery.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    finally:
        rx.terminate()
        rx.wait(timeout=10)
        if not args.keep_db:
            pg_admin(args.pg, f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")


def summarize(results: dict) -> None:
    capacity = results.get("receiver_capacity_rps")
    base = (results["baseline_rps"] + results["baseline_rps_after"]) / 2
    print("\n== summary (burst: deliveries/s first to last receipt)")
    print(f"   receiver capacity (wrk): {f'{capacity:.0f} req/s' if capacity else 'not measured'}")
    print(f"   requests loop baseline: {base:.0f} req/s (mean of before/after)")
    for broker, run in results["runs"].items():
        if run.get("guards"):
            print(f"   {broker} broker:")
            guards_summary(run["guards"])
        for key, burst in run["bursts"].items():
            clusters, mode = key.split("/")
            ratio = f"{burst['dps'] / capacity:.2f}x capacity, " if capacity else ""
            print(
                f"   {broker:<5} {clusters} cluster(s), {mode:<7}: {burst['dps']:.0f} deliveries/s = {ratio}"
                f"{burst['dps'] / base:.2f}x baseline; duplicates {burst['duplicates']}; states {burst['states']}"
            )
        steady = run.get("steady")
        if steady:
            print(
                f"   {broker:<5} steady {steady['rate']:g}/s with {steady['clusters']} cluster(s): commit→receipt "
                f"p50 {steady['p50_ms']:.0f} ms, p99 {steady['p99_ms']:.0f} ms ({steady['received']}/{steady['sent']})"
            )
        cost = run.get("emit_cost")
        if cost:
            print(
                f"   customer_update: {cost['update_ms_three_actions']:.1f} ms with three matching actions, "
                f"{cost['update_ms_no_actions']:.1f} ms with none"
            )
    end = results["load_average_end"]
    print(f"   load average at the end {end[0]:.2f} {end[1]:.2f} {end[2]:.2f}")


# ---------------------------------------------------------------- one broker, in its own process


def start_cluster(env: dict) -> subprocess.Popen:
    RESULTS.mkdir(exist_ok=True)
    with (RESULTS / "delivery-clusters.log").open("a") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_cluster(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def child(args: argparse.Namespace) -> None:
    """Bursts with each cluster count, then the steady phase, on the broker of this process's settings."""
    broker, port_text = args.child.split(":")
    port = int(port_text)
    import django

    django.setup()
    from django.db import transaction
    from django.db.models import Count

    from hooks.outbound.models import Delivery
    from hub.events import emit
    from hub.models import Brand

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    brand = Brand.objects.create(slug=f"bench-{broker}", name=f"Bench {broker}")
    sync = faultkit.crm_sync_to(
        brand=brand, receiver_url=f"http://127.0.0.1:{port}", timeout_seconds=10, body=BODY_TEMPLATE
    )
    if args.rate_limit and not args.guards_rounds:  # configured, high enough never to trip: the limiter's own cost
        sync.actions.update(rate_limit_per_second=args.rate_limit)
    numbers = iter(range(1, 10**9))

    def write(count: int) -> list[int]:
        """``count`` customer.updated events in the caller's transaction: one delivery each (outbox)."""
        made = []
        for _ in range(count):
            n = next(numbers)
            customer = {**PERSON, "id": n, "customer_id": f"C{n:07d}"}
            emit(brand_id=brand.pk, event_type="customer.updated", data={"customer": customer}, customer_id=n)
            made.append(n)
        return made

    def message_ids(customers: list[int]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(customers), 5000):
            chunk = customers[start : start + 5000]
            found.update(
                Delivery.objects.filter(brand=brand, customer_id__in=chunk).values_list("message_id", "customer_id")
            )
        return found

    from django.db import connection

    def pg_figures() -> dict:
        """Commits and rows written in this database so far, and the connections to it now."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
            commits, inserted, updated, deleted = cursor.fetchone()
            cursor.execute("SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = current_database()")
            (connections,) = cursor.fetchone()
        return {
            "commits": commits,
            "inserted": inserted,
            "updated": updated,
            "deleted": deleted,
            "connections": connections,
        }

    env = dict(os.environ)
    out: dict = {"broker": broker, "bursts": {}}
    cluster_counts = [int(c) for c in args.clusters.split(",") if c.strip()]
    modes = [m.strip() for m in args.burst_modes.split(",") if m.strip()]

    def burst(clusters: int, mode: str, env: dict, procs: list[subprocess.Popen]) -> dict:
        """One burst of ``--deliveries``; starts the clusters (into ``procs``) when none run."""
        receiver(port, "/reset")
        log(f"== {broker} broker, {clusters} cluster(s) x {args.workers} workers: {mode} burst of {args.deliveries}")
        if mode == "live" and not procs:
            procs += [start_cluster(env) for _ in range(clusters)]
            warm = []
            for _ in range(4 * clusters * args.workers):  # until every cluster answers
                with transaction.atomic():
                    warm += write(1)
            wait_received(port, set(message_ids(warm)), args.timeout)
            receiver(port, "/reset")
        elif mode == "backlog":
            for proc in procs:
                stop_cluster(proc)
            procs.clear()
        time.sleep(1.5)  # PostgreSQL publishes a backend's statistics at most once a second
        before = pg_figures()
        load = os.getloadavg()[0]
        cpu_before = cpu_snapshot(
            database=args.database, cluster_groups=tuple(proc.pid for proc in procs), receiver_parent=os.getppid()
        )
        written: list[int] = []
        started = time.perf_counter()
        for start in range(0, args.deliveries, 100):
            with transaction.atomic():
                written += write(min(100, args.deliveries - start))
        write_seconds = time.perf_counter() - started
        ids = message_ids(written)
        if not procs:
            procs += [start_cluster(env) for _ in range(clusters)]
        got = wait_received(port, set(ids), args.timeout)
        times = sorted(got[m][0] for m in ids if m in got)
        mine = Delivery.objects.filter(brand=brand, customer_id__range=(written[0], written[-1]))
        pending = mine.exclude(state="delivered")
        settle = time.monotonic() + 30  # the last batch's attempts are recorded just after its receipt
        while pending.exists() and time.monotonic() < settle:
            time.sleep(0.2)
        time.sleep(1.5)
        after = pg_figures()
        cpu = cpu_spent(  # backlog: the clusters started after the first snapshot
            cpu_before,
            cpu_snapshot(
                database=args.database, cluster_groups=tuple(proc.pid for proc in procs), receiver_parent=os.getppid()
            ),
            len(written),
        )
        per_delivery = {
            key: (after[key] - before[key]) / len(written) for key in ("commits", "inserted", "updated", "deleted")
        }
        result = {
            "per_delivery": per_delivery,
            "connections": after["connections"],
            "dps": len(times) / max(times[-1] - times[0], 1e-9) if len(times) > 1 else 0.0,
            "written_per_s": len(written) / write_seconds,
            "received": len(times),
            "duplicates": sum(got[m][1] - 1 for m in ids if m in got),
            "states": dict(mine.values_list("state").annotate(n=Count("pk"))),
            "load_average": load,
        }
        log(
            f"   {result['dps']:.0f} deliveries/s (written at {result['written_per_s']:.0f}/s); "
            f"duplicates {result['duplicates']}; states {result['states']}; per delivery: "
            + ", ".join(f"{value:.2f} {key}" for key, value in per_delivery.items())
            + f"; {result['connections']} connections to the database; load average {load:.2f}"
        )
        if args.cpu:
            result["cpu_ms_per_delivery"] = cpu
            log("   " + cpu_text(cpu))
        return result

    if args.guards_rounds:
        out["guards"] = guards(args, cluster_counts[0], modes, env, burst, sync, log)
        cluster_counts = []  # the comparison replaces the matrix, the steady phase and the emit cost
        args.updates = 0

    for clusters in cluster_counts:
        procs: list[subprocess.Popen] = []
        try:
            for mode in modes:
                out["bursts"][f"{clusters}/{mode}"] = burst(clusters, mode, env, procs)

            if clusters == max(cluster_counts):
                receiver(port, "/reset")
                total = int(args.rate * args.steady_seconds)
                log(f"== {broker} steady: {total} deliveries, one per transaction, at {args.rate:g}/s")
                commits: dict[int, float] = {}
                t0 = time.perf_counter()
                for i in range(total):
                    pause = t0 + i / args.rate - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    with transaction.atomic():
                        (n,) = write(1)
                    commits[n] = time.time()
                ids = message_ids(list(commits))
                got = wait_received(port, set(ids), args.timeout)
                latencies = [(got[m][0] - commits[n]) * 1000 for m, n in ids.items() if m in got]
                out["steady"] = {
                    "rate": args.rate,
                    "clusters": clusters,
                    "sent": total,
                    "received": len(latencies),
                    "p50_ms": statistics.median(latencies) if latencies else float("nan"),
                    "p99_ms": pct(latencies, 0.99),
                }
                log(f"   commit→receipt p50 {out['steady']['p50_ms']:.0f} ms, p99 {out['steady']['p99_ms']:.0f} ms")
        finally:
            for proc in procs:
                stop_cluster(proc)
    if args.updates and broker == args.brokers.split(",")[0].strip():
        out["emit_cost"] = emit_cost(port, args.updates, log)
    with connection.cursor() as cursor:
        sizes = {}
        for table in ("outbound_delivery", "synclog_deliveryattempt"):
            cursor.execute(f"SELECT pg_total_relation_size('{table}'), (SELECT count(*) FROM {table})")
            size, rows = cursor.fetchone()
            sizes[table] = {"bytes": size, "rows": rows, "bytes_per_row": size / max(rows, 1)}
    out["table_sizes"] = sizes
    log("   bytes per row (table + indexes): " + ", ".join(f"{t} {v['bytes_per_row']:.0f}" for t, v in sizes.items()))
    print(json.dumps(out, default=str), flush=True)


def guards(args: argparse.Namespace, clusters: int, modes: list[str], env: dict, burst, sync, log) -> list[dict]:
    """The cost of the rate limiter and the circuit breaker: ``--guards-rounds``
    rounds of a burst without both and with both, in ABBA order (drift on a
    shared machine hits both sides alike), freshly started clusters each time."""
    from hooks.outbound.models import DestinationThrottle

    guarded = {g.strip() for g in args.guards.split(",") if g.strip()}
    limit = (args.rate_limit or 50_000.0) if "limit" in guarded else None
    variants = {"without": (None, "false"), "with": (limit, "true" if "breaker" in guarded else "false")}
    rows: list[dict] = []
    for number in range(1, args.guards_rounds + 1):
        for variant in ("without", "with") if number % 2 else ("with", "without"):
            rate, breaker = variants[variant]
            sync.actions.update(rate_limit_per_second=rate)
            DestinationThrottle.objects.all().delete()
            procs: list[subprocess.Popen] = []
            try:
                for mode in modes:
                    log(
                        f"== round {number}: {variant} {args.guards} (rate limit {rate or 'none'}/s, breaker {breaker})"
                    )
                    result = burst(clusters, mode, {**env, "HUB_CIRCUIT_BREAKER": breaker}, procs)
                    limited = DestinationThrottle.objects.exists() == bool(rate)  # a row iff the limiter ran
                    rows.append(
                        {
                            "round": number,
                            "variant": variant,
                            "mode": mode,
                            "guards": args.guards,
                            "limiter_ran": limited,
                            **result,
                        }
                    )
            finally:
                for proc in procs:
                    stop_cluster(proc)
    return rows


def guards_summary(rows: list[dict]) -> None:
    for mode in dict.fromkeys(row["mode"] for row in rows):
        mine = [row for row in rows if row["mode"] == mode]
        side = {v: [row["dps"] for row in mine if row["variant"] == v] for v in ("without", "with")}
        paired = [
            w["dps"] / o["dps"]
            for w in mine
            for o in mine
            if w["variant"] == "with" and o["variant"] == "without" and w["round"] == o["round"] and o["dps"]
        ]
        loads = [row["load_average"] for row in mine]
        print(f"   {mode} bursts, without / with {rows[0]['guards']} (ABBA, {len(paired)} rounds):")
        for variant, values in side.items():
            print(
                f"     {variant:<7}: "
                + ", ".join(f"{v:.0f}" for v in values)
                + f" deliveries/s; mean {statistics.mean(values):.0f}"
            )
        print(
            f"     with / without: {statistics.mean(side['with']) / statistics.mean(side['without']):.3f} (means), "
            f"per round {', '.join(f'{r:.2f}' for r in paired)}, median {statistics.median(paired):.3f}; "
            f"limiter ran as configured: {all(r['limiter_ran'] for r in mine)}; "
            f"load average {min(loads):.2f}-{max(loads):.2f}"
        )


def emit_cost(port: int, updates: int, log) -> dict:
    """Mean customer_update time: a brand with three matching CRM actions against one with none."""
    from customers.services import customer_create, customer_update
    from hooks.outbound.models import CrmSync, CrmSyncAction
    from hub.models import Brand

    log(f"== emit cost: customer_update, {updates} per side (clusters stopped; tasks only enqueued)")
    quiet = Brand.objects.create(slug="quiet", name="Quiet")
    busy = Brand.objects.create(slug="busy", name="Busy")
    for n in range(3):
        sync = CrmSync.objects.create(brand=busy, name=f"CRM {n}")
        CrmSyncAction.objects.create(
            sync=sync, action="update", enabled=True, method="PUT", url=f"http://127.0.0.1:{port}/x", body="{}"
        )
    timings = {}
    for label, brand in (("none", quiet), ("three", busy)):
        customer = customer_create(
            brand=brand,
            first_name="A",
            last_name="B",
            addresses=[{"kind": "email", "value": f"a@{brand.slug}.example"}],
        )
        samples = []
        for i in range(updates):
            start = time.perf_counter()
            customer = customer_update(customer=customer, first_name=f"A{i}")
            samples.append((time.perf_counter() - start) * 1000)
        timings[label] = statistics.mean(samples[10:])
    log(
        f"   no matching actions {timings['none']:.2f} ms; three matching actions {timings['three']:.2f} ms "
        f"(+{timings['three'] - timings['none']:.2f} ms)"
    )
    return {"update_ms_no_actions": timings["none"], "update_ms_three_actions": timings["three"]}


if __name__ == "__main__":
    main()
