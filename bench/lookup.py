#!/usr/bin/env python
"""Lookup endpoints benchmark: the hub's Omnidesk and M8Com lookups against a
ceiling and a peer, on PostgreSQL, under gunicorn, driven by wrk.

    make bench-lookup BENCH_ARGS="--customers 100000"
    .venv/bin/python bench/lookup.py --customers 10000 --duration 10

What it does, in one run:

1. creates a fresh PostgreSQL database (``--database``, default
   hookhub_bench_lookup), migrates it, and seeds one brand with N customers in
   bulk with COPY: every customer has an e-mail, a phone number and three
   custom fields; the customers the load looks up ("hot", spread evenly over
   the table) have 40 activities of mixed types. The stored lookup answers are
   built by customers.documents.render, the code the services use;
2. serves the hub with gunicorn on 127.0.0.1 (bench/lookup_settings.py: the
   hub's settings plus two reference views, bench/lookup_peer.py);
3. drives, with wrk, for ``--duration`` seconds each (after a short warm-up):
   the **ceiling** (a minimal Django JSON view), the **peer** (a
   straightforward DRF Omnidesk lookup), and the hub's two lookups with every
   request for a different customer (80 % hits, 20 % misses) and with repeat
   lookups of a small working set; then each hub scenario again at half its
   measured peak rate (wrk's ``delay()``), for the p99;
4. prints requests/s, p50 and p99 for each and the ratios, saves them to
   bench/results/lookup-<N>.json, compares p50 with the other sizes saved
   there, and drops the database (``--keep-db`` keeps it).

With ``--redis URL`` gunicorn runs with ``REDIS_URL`` set, as in production:
the lookup cache's second level is Redis, shared by every gunicorn worker
(a worker answers from Redis what another one cached); the database is
flushed before and after, and the figures go to lookup-<N>-redis.json.
Seed once with ``--keep-db`` and run again with ``--reuse-db --redis ...`` to
compare the two cache shapes on the same data.

Traffic goes to 127.0.0.1 only, and every run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import types
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
SLUG = "bench"
HIT_BASE = 10_000_000  # hit phone numbers: +316 1xxxxxxx (customer i has +316{HIT_BASE + i:08d})
MISS_BASE = 50_000_000  # miss phone numbers: +316 5xxxxxxx, nobody has them
FIRST = ["Maria", "Adam", "Sven", "Eva", "Lars", "Anna", "Jan", "Sanne", "Noah", "Emma", "Liam", "Julia"]
LAST = ["Andersson", "Webb", "de Vries", "Jansen", "Bakker", "Visser", "Smit", "Lindqvist", "Berg", "Meijer"]
ACTIVITY_MIX = ["CALL"] * 12 + ["NOTE"] * 10 + ["TICKET"] * 6 + ["TASK"] * 4 + ["DEAL"] * 3 + ["APPOINTMENT"] * 3
ACTIVITY_MIX += ["EVENT"] * 2  # 40 per hot customer
DJANGO = "@django"  # a scenario served with HUB_LOOKUP_FAST_PATH=false (--django-port)
RATIOS = [
    ("omnidesk_distinct", "peer_distinct"),
    ("m8com_distinct", "peer_distinct"),
    ("omnidesk_distinct", "ceiling"),
    ("m8com_distinct", "ceiling"),
    ("omnidesk_repeat", "ceiling"),
    ("m8com_repeat", "ceiling"),
]


def median_run(runs: list[dict]) -> dict:
    """The run with the median throughput (its own p50/p99), plus the median p50/p99."""
    ordered = sorted(runs, key=lambda run: run["rps"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["rps"] = statistics.median(run["rps"] for run in runs)
    chosen["p50_ms"] = statistics.median(run["p50_ms"] for run in runs)
    chosen["p99_ms"] = statistics.median(run["p99_ms"] for run in runs)
    chosen["p50_us"] = statistics.median(run["p50_us"] for run in runs)
    chosen["rounds_rps"] = [run["rps"] for run in runs]
    return chosen


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000, help="customers to seed (10k, 100k, 1M)")
    parser.add_argument("--hot", type=int, default=50_000, help="customers the load looks up (capped at N)")
    parser.add_argument("--working-set", type=int, default=300, help="numbers in the repeat-lookup working set")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--database", default="hookhub_bench_lookup")
    parser.add_argument("--reuse-db", action="store_true", help="skip seeding; use the database as it is")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every scenario (medians)")
    parser.add_argument("--only", default="", help="comma-separated scenario names to run")
    parser.add_argument(
        "--redis", default="", help="REDIS_URL for gunicorn: the lookup cache shared by all workers (flushed)"
    )
    parser.add_argument(
        "--django-port",
        type=int,
        default=0,
        help="also serve the hub on this port with HUB_LOOKUP_FAST_PATH=false and measure each lookup scenario "
        "through it too (<name>@django, same rounds): the lookup fast path against Django's middleware stack",
    )
    return parser.parse_args()


# ---------------------------------------------------------------- setup


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("Installing Debian's wrk ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    path = shutil.which("wrk")
    if not path:
        sys.exit("wrk is required: apt-get install wrk")
    return path


def database_recreate(pg: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def database_drop(pg: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


def phone(i: int, base: int = HIT_BASE) -> str:
    return f"+316{base + i:08d}"


# ---------------------------------------------------------------- seeding


def seed(n: int, hot: int, url: str) -> dict:
    """N customers by COPY; the answers rendered by customers.documents.render."""
    import psycopg
    from django.core.management import call_command
    from django.core.management.color import no_style
    from django.db import connection

    from customers import documents
    from customers.models import Activity, Address, Customer, CustomField
    from customers.normalize import digits_reversed
    from hub.models import Brand
    from hub.services import brand_create, credential_issue

    call_command("migrate", verbosity=0)
    brand = brand_create(slug=SLUG, name="Bench", default_region="NL", time_zone="Europe/Amsterdam")
    Brand.objects.filter(pk=brand.pk).update(
        create_activity_urls=[
            {"name": "New note", "url": "https://crm.example.com/customers/{{ customer.customer_id }}/notes/new"},
            {"name": "New ticket", "url": "https://crm.example.com/tickets/new?customer={{ customer.customer_id }}"},
        ],
        more_info_url_template="https://crm.example.com/customers/{{ customer.customer_id }}",
    )
    keys = {
        "omnidesk": credential_issue(brand=brand, integration="omnidesk")[1],
        "m8com": credential_issue(brand=brand, integration="m8com")[1],
    }
    stride = max(1, n // hot)
    # What customers.documents reads of the brand: its time zone and matching policy.
    brand_ns = types.SimpleNamespace(
        time_zone=brand.time_zone,
        phone_address_types=brand.phone_address_types,
        suffix_match_digits=brand.suffix_match_digits,
        own_lines=brand.own_lines,
    )
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def fields(model):
        return [f for f in model._meta.concrete_fields]

    tables = {model: fields(model) for model in (Customer, Address, CustomField, Activity)}
    activity_defaults = {f.attname: f.get_default() for f in tables[Activity]}
    ids = {"address": 0, "field": 0, "activity": 0}

    def build(i: int):
        pk = i + 1
        c = types.SimpleNamespace(
            id=pk,
            pk=pk,
            brand_id=brand.pk,
            brand=brand_ns,
            customer_id=f"B{i:07d}",
            first_name=FIRST[i % len(FIRST)],
            last_name=LAST[(i // len(FIRST)) % len(LAST)],
            display_name="",
            company_name=f"Company {i % 5000}",
            job_title="Buyer" if i % 3 else "",
            summary="",
            time_zone="",
            avatar_url="",
            cover_photo_url="",
            more_info_url="",
            last_contact_at=None,
            created_at=now,
            updated_at=now,
        )
        c.name = f"{c.first_name} {c.last_name}"
        addresses = []
        for kind, value, normalized in (
            ("email", f"c{i}@example.org", f"c{i}@example.org"),
            ("telephone", phone(i), phone(i)),
            *((("twitter", f"@user{i}", f"user{i}"),) if i % 10 == 0 else ()),
        ):
            ids["address"] += 1
            addresses.append(
                types.SimpleNamespace(
                    id=ids["address"],
                    brand_id=brand.pk,
                    customer_id=pk,
                    kind=kind,
                    value=value,
                    normalized=normalized,
                    digits_reversed=digits_reversed(kind, normalized),
                    comment="Work" if kind == "email" else "",
                    position=len(addresses),
                )
            )
        custom = []
        for key, value in (
            ("customerType", "unlimited" if i % 2 else "basic"),
            ("customerSince", "2019-12-24"),
            ("tier", str(i % 4)),
        ):
            ids["field"] += 1
            custom.append(
                types.SimpleNamespace(id=ids["field"], customer_id=pk, position=len(custom), key=key, value=value)
            )
        activities = []
        if i % stride == 0 and i // stride < hot:
            for k, kind in enumerate(ACTIVITY_MIX):
                ids["activity"] += 1
                at = now - timedelta(hours=k * 7 + 1)
                a = types.SimpleNamespace(**activity_defaults)
                a.id = a.pk = ids["activity"]
                a.customer_id = pk
                a.kind = kind
                a.occurred_at = at
                a.created_at = at
                a.external_id = f"ext-{pk}-{k}"
                a.source = "bench"
                a.header = f"{kind.title()} {k}"
                a.body = f"Activity {k} for customer {pk}: follow up on the order."
                a.link_url = f"https://crm.example.com/activities/{a.id}"
                if kind == "TASK":
                    a.due_date, a.status, a.assigned_user = at + timedelta(days=2), "Pending", "agent@example.com"
                elif kind == "CALL":
                    a.from_number, a.to_number = phone(i), "+31201234567"
                    a.duration_ms, a.start_time = 60_000 + k, at - timedelta(minutes=1)
                elif kind == "TICKET":
                    a.created_date, a.priority, a.pipeline, a.pipeline_stage = at, "MEDIUM", "Support", "Open"
                elif kind == "DEAL":
                    a.close_date, a.currency, a.amount = at + timedelta(days=30), "EUR", Decimal("1250.50")
                elif kind == "APPOINTMENT":
                    a.start_date, a.end_date, a.venue = (
                        at + timedelta(days=1),
                        at + timedelta(days=1, hours=1),
                        "Office",
                    )
                activities.append(a)
        activities.sort(key=lambda a: (a.occurred_at, a.id), reverse=True)
        data = documents.CustomerData(c, addresses, custom, activities)
        c.omnidesk_document, c.m8com_document = documents.render(data)
        return c, addresses, custom, activities

    started = time.perf_counter()
    chunk = 10_000
    with psycopg.connect(url) as conn:
        for begin in range(0, n, chunk):
            rows = {model: [] for model in tables}
            for i in range(begin, min(n, begin + chunk)):
                c, addresses, custom, activities = build(i)
                rows[Customer].append(c)
                rows[Address].extend(addresses)
                rows[CustomField].extend(custom)
                rows[Activity].extend(activities)
            with conn.cursor() as cursor:
                for model, objects in rows.items():
                    columns = ", ".join(f'"{f.column}"' for f in tables[model])
                    attnames = [f.attname for f in tables[model]]
                    with cursor.copy(f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN') as copy:
                        for obj in objects:
                            copy.write_row([getattr(obj, name) for name in attnames])
            conn.commit()
            done = min(n, begin + chunk)
            if done % 100_000 == 0 or done == n:
                print(f"  seeded {done:>9,} customers  {time.perf_counter() - started:6.1f} s", flush=True)
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [Customer, Address, CustomField, Activity]):
            cursor.execute(sql)
        # Settle the fresh tables before measuring: without this, autovacuum
        # (insert-triggered) and the checkpointer work through millions of new
        # rows during the first minutes of load.
        cursor.execute("VACUUM (ANALYZE)")
        cursor.execute("CHECKPOINT")
    seconds = time.perf_counter() - started
    print(
        f"Seeded {n:,} customers ({min(hot, n // stride + 1):,} hot with {len(ACTIVITY_MIX)} activities, "
        f"{ids['activity']:,} activity rows) in {seconds:.1f} s",
        flush=True,
    )
    return {"keys": keys, "stride": stride, "seed_seconds": round(seconds, 1)}


# ---------------------------------------------------------------- server


def gunicorn_start(args, url: str, log: Path, *, port: int = 0, extra_env: dict | None = None) -> subprocess.Popen:
    port = port or args.port
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "lookup_settings",
        "CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}",
    }
    env.pop("REDIS_URL", None)
    if getattr(args, "redis", ""):  # bench/lookup_chain.py has no --redis
        env["REDIS_URL"] = args.redis  # Redis cache: the lookup cache's shared level (HUB_LOOKUP_CACHE_SHARED)
    env.update(extra_env or {})
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        "sync",
        "--backlog",
        "2048",
        "--log-level",
        "warning",
    ]
    import socket

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            sys.exit(f"Port {port} is in use; pick another with --port / --django-port")
    handle = log.open("w")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"gunicorn exited ({server.returncode}); see {log}:\n{log.read_text()[-2000:]}")
        try:
            # /bench/ceiling exists only in the benchmark's URLs: it is our server answering.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/ceiling", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    sys.exit(f"gunicorn did not start; see {log}")


def fetch(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# ---------------------------------------------------------------- load

LUA = r"""
local threads = {}
local next_tid = 0
function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

local counter = 0
local hit_fmt = "%(hit)s"
local miss_fmt = "%(miss)s"
local headers = %(headers)s

request = function()
  counter = counter + 1
  local k = %(start)d + tid + (counter - 1) * %(threads)d
  local j = (k * %(step)d) %% %(pool)d
  local path
  if %(misses)s and k %% 5 == 4 then
    path = string.format(miss_fmt, %(miss_base)d + j)
  else
    path = string.format(hit_fmt, %(hit_base)d + j * %(stride)d)
  end
  return wrk.format("GET", path, headers)
end

%(delay)s

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\":%%d,\"duration_us\":%%d,\"status_errors\":%%d,\"socket_errors\":%%d," ..
    "\"p50_us\":%%d,\"p90_us\":%%d,\"p99_us\":%%d,\"max_us\":%%d,\"mean_us\":%%.1f}\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def coprime_step(pool: int) -> int:
    import math

    step = 7919
    while math.gcd(step, pool) != 1:
        step += 2
    return step


def run_wrk(
    wrk: str,
    args,
    *,
    hit: str,
    miss: str | None = None,
    headers: dict | None = None,
    pool: int = 1,
    stride: int = 1,
    start: int = 0,
    duration: int,
    delay_ms: float | None = None,
    connections: int | None = None,
    threads: int | None = None,
    port: int = 0,
) -> dict:
    connections = connections or args.connections
    threads = threads or args.threads
    lua_headers = "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in (headers or {}).items()) + "}"
    script = LUA % {
        "hit": hit.replace("%", "%%").replace("{n}", "%08d"),
        "miss": (miss or hit).replace("%", "%%").replace("{n}", "%08d"),
        "headers": lua_headers,
        "start": start,
        "threads": threads,
        "step": coprime_step(pool),
        "pool": pool,
        "misses": "true" if miss else "false",
        "miss_base": MISS_BASE,
        "hit_base": HIT_BASE,
        "stride": stride,
        "delay": f"function delay() return {delay_ms:.3f} end" if delay_ms is not None else "",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "wrk-lookup.lua"
    path.write_text(script)
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(path),
        f"http://127.0.0.1:{port or args.port}",
    ]
    output = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60).stdout
    line = next((x for x in output.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        sys.exit(f"wrk failed:\n{output}")
    result = json.loads(line[len("WRKJSON ") :])
    result["rps"] = round(result["requests"] / (result["duration_us"] / 1e6), 1)
    result["p50_ms"] = round(result["p50_us"] / 1000, 2)
    result["p99_ms"] = round(result["p99_us"] / 1000, 2)
    result["mean_ms"] = round(result["mean_us"] / 1000, 2)
    return result


# ---------------------------------------------------------------- main


def main() -> None:
    args = parse_args()
    wrk = ensure_wrk()
    n = args.customers
    hot = max(1, min(args.hot, n))
    url = f"{args.pg}/{args.database}"
    cache = f"per-worker LRU + Redis shared ({args.redis})" if args.redis else "per-worker LRU only"
    print(
        f"Lookup benchmark: {n:,} customers on PostgreSQL ({args.database}), gunicorn {args.workers} sync workers, "
        f"wrk -t{args.threads} -c{args.connections}, {args.duration}s per run; cache: {cache}",
        flush=True,
    )
    if args.redis:
        redis_flush(args.redis)
    if not args.reuse_db:
        database_recreate(args.pg, args.database)
    django_setup(url)
    meta_path = RESULTS / f"lookup-{n}-seed.json"
    if args.reuse_db and meta_path.exists():
        meta = json.loads(meta_path.read_text())
    else:
        from hub import generations

        # A new database starts its generations again: values left from the last one
        # (HUB_GENERATION_FILE, or Redis) would keep its lookups off the caches.
        generations.board().reset()
        meta = seed(n, hot, url)
        RESULTS.mkdir(parents=True, exist_ok=True)
        meta_path.write_text(json.dumps(meta))
    keys, stride = meta["keys"], meta["stride"]
    hot = min(hot, (n - 1) // stride + 1)
    log = RESULTS / f"gunicorn-lookup-{n}.log"
    server = gunicorn_start(args, url, log)
    # The same code with the lookup fast path off: the lookups through Django's middleware stack and URL resolver.
    django_server = (
        gunicorn_start(
            args,
            url,
            RESULTS / f"gunicorn-lookup-{n}-django.log",
            port=args.django_port,
            extra_env={"HUB_LOOKUP_FAST_PATH": "false"},
        )
        if args.django_port
        else None
    )
    results: dict = {
        "customers": n,
        "hot": hot,
        "seed_seconds": meta["seed_seconds"],
        "redis": bool(args.redis),
        "runs": {},
    }
    try:
        omnidesk = f"/hooks/omnidesk/{SLUG}/customerlookup?key={keys['omnidesk']}&channelAddressType=phoneNumber&address=%2B316{{n}}&ticketID=77"
        peer = f"/bench/peer/omnidesk/{SLUG}/customerlookup?key={keys['omnidesk']}&channelAddressType=phoneNumber&address=%2B316{{n}}"
        m8com = f"/hooks/m8com/{SLUG}/lookup?fromNumber=%2B316{{n}}&toNumber=%2B31201234567"
        bearer = {"Authorization": f"Bearer {keys['m8com']}"}

        # Sanity: the hub and the peer give the same answer; hits hit, misses miss.
        sample = (omnidesk.replace("{n}", f"{HIT_BASE:08d}"), peer.replace("{n}", f"{HIT_BASE:08d}"))
        status_hub, body_hub = fetch(args.port, sample[0])
        status_peer, body_peer = fetch(args.port, sample[1])
        assert status_hub == status_peer == 200, (status_hub, status_peer, body_hub[:300], body_peer[:300])
        assert json.loads(body_hub) == json.loads(body_peer), "the peer's answer differs from the hub's"
        assert len(json.loads(body_hub)) == 1 and len(json.loads(body_hub)[0]["timeline"]) == 20
        status, body = fetch(args.port, m8com.replace("{n}", f"{HIT_BASE:08d}"), bearer)
        expected = sum(min(10, ACTIVITY_MIX.count(kind)) for kind in set(ACTIVITY_MIX) - {"EVENT"})
        assert status == 200 and len(json.loads(body)["activities"]) == expected, (status, body[:300])
        status, body = fetch(args.port, m8com.replace("{n}", f"{MISS_BASE:08d}"), bearer)
        assert status == 404, status
        print(
            f"Sanity: hub and peer answers identical; M8Com contact has {expected} activities (<= 10 per type)",
            flush=True,
        )

        # Numbers already asked for, per endpoint (their answers are cached under
        # different keys, so each endpoint walks the hot pool on its own).
        consumed: dict[str, int] = {}
        only = {name for name in args.only.split(",") if name}
        plan = [
            ("ceiling", {"hit": "/bench/ceiling"}, False),
            # The peer has no cache: it walks the hot pool from the start every round, no advantage.
            ("peer_distinct", {"hit": peer, "miss": peer, "pool": hot}, False),
            ("omnidesk_distinct", {"hit": omnidesk, "miss": omnidesk}, True),
            ("m8com_distinct", {"hit": m8com, "miss": m8com, "headers": bearer}, True),
            ("omnidesk_repeat", {"hit": omnidesk, "miss": omnidesk}, False),
            ("m8com_repeat", {"hit": m8com, "miss": m8com, "headers": bearer}, False),
        ]
        plan = [step for step in plan if not only or step[0] in only]
        if django_server is not None:
            # Each lookup scenario again right after itself, served with the fast path off.
            plan = [
                variant
                for step in plan
                for variant in (
                    [step, (step[0] + DJANGO, {**step[1], "port": args.django_port}, step[2])]
                    if step[0].startswith(("omnidesk_", "m8com_"))
                    else [step]
                )
            ]

        def measure(name: str, kwargs: dict, distinct: bool, **extra) -> dict:
            kwargs = {"pool": hot if distinct else args.working_set, **kwargs, **extra}
            endpoint = name.split("_")[0]
            start = consumed.get(endpoint, 0)
            if args.warmup:
                warm = run_wrk(wrk, args, stride=stride, start=start, duration=args.warmup, **kwargs)
                if distinct:
                    start += warm["requests"] + args.connections * 4
            result = run_wrk(wrk, args, stride=stride, start=start, duration=args.duration, **kwargs)
            if distinct:
                start += result["requests"] + args.connections * 4
                consumed[endpoint] = start
                result["wrapped"] = start > hot
            print(
                f"  {name:<24} {result['rps']:>8.0f} req/s   p50 {result['p50_ms']:7.2f} ms   "
                f"p99 {result['p99_ms']:7.2f} ms   non-2xx {result['status_errors']:>6}   "
                f"socket errors {result['socket_errors']}{'   (pool wrapped: some repeats)' if result.get('wrapped') else ''}",
                flush=True,
            )
            return result

        # Rounds interleave the scenarios, so a change in the machine's other
        # load hits all of them alike; figures are medians over the rounds.
        rounds: dict[str, list[dict]] = {name: [] for name, _, _ in plan}
        results["load"] = [os.getloadavg()]
        for number in range(1, args.rounds + 1):
            load = os.getloadavg()
            print(
                f"Round {number}/{args.rounds}, peak throughput (closed loop), load average {load[0]:.1f}:",
                flush=True,
            )
            for name, kwargs, distinct in plan:
                rounds[name].append(measure(name, kwargs, distinct))
        results["rounds"] = rounds
        for name, runs in rounds.items():
            results["runs"][name] = median_run(runs)
        pairs = RATIOS + [(name + DJANGO, "ceiling") for name, _, _ in plan if name + DJANGO in rounds]
        pairs += [(name, name + DJANGO) for name, _, _ in plan if name + DJANGO in rounds]
        results["ratios"] = {
            f"{a}/{b}": statistics.median(x["rps"] / y["rps"] for x, y in zip(rounds[a], rounds[b], strict=True))
            for a, b in pairs
            if a in rounds and b in rounds
        }

        results["load"].append(os.getloadavg())
        print("Latency at half the measured peak (open loop, wrk delay()):", flush=True)
        for name, kwargs, distinct in plan:
            if name in ("ceiling", "peer_distinct") or name.endswith(DJANGO):
                continue
            peak = results["runs"][name]
            target = peak["rps"] / 2
            delay_ms = max(0.0, args.connections * 1000 / target - peak["mean_ms"] / 2)
            result = measure(f"{name}@half", kwargs, distinct, delay_ms=delay_ms)
            result["target_rps"] = round(target, 1)
            results["runs"][f"{name}@half"] = result

        # Service time at a fixed light load, the same at every size: the
        # figure to compare across 10k / 100k / 1M customers.
        light = [
            ("omnidesk_latency", {"hit": omnidesk, "miss": omnidesk}),
            ("m8com_latency", {"hit": m8com, "miss": m8com, "headers": bearer}),
        ]
        if any(not only or name in only for name, _ in light):
            print("Service time at a fixed light load (2 connections, 10 ms pause each, every customer different):")
        for name, kwargs in light:
            if only and name not in only:
                continue
            result = measure(name, kwargs, True, delay_ms=10.0, connections=2, threads=1)
            results["runs"][name] = result
        results["load"].append(os.getloadavg())
    finally:
        for running in (server, django_server):
            if running is None:
                continue
            running.terminate()
            try:
                running.wait(timeout=15)
            except subprocess.TimeoutExpired:
                running.kill()
        if args.redis:
            redis_flush(args.redis)
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            database_drop(args.pg, args.database)

    report(results)


def report(results: dict) -> None:
    runs = results["runs"]

    # Issue 3's peer target; issue 12's ceiling targets (distinct >= 0.5x, repeat >= 0.85x).
    targets = {"peer_distinct": ">= 3x", "ceiling": ">= 0.5x"}
    print("\nMedians over the rounds:")
    for name, run in runs.items():
        if not name.endswith("@half"):
            print(f"  {name:<24} {run['rps']:>8.0f} req/s   p50 {run['p50_ms']:7.2f} ms   p99 {run['p99_ms']:7.2f} ms")
    print("Ratios (requests/s, median of the per-round ratios):")
    for label, value in results.get("ratios", {}).items():
        a, b = label.split("/")
        repeat = a.removesuffix(DJANGO).endswith("_repeat")
        target = ">= 0.85x" if repeat and b == "ceiling" else targets.get(b, "fast path / Django")
        print(f"  {label:<36} {value:>6.2f}x   (target {target})")
    print("p99 at half peak (target < 20 ms):")
    for name, run in runs.items():
        if name.endswith("@half"):
            print(
                f"  {name:<28} {run['rps']:>7.0f} req/s (target {run['target_rps']:.0f})   p99 {run['p99_ms']:.2f} ms"
            )
    markdown(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    saved = RESULTS / f"lookup-{results['customers']}{'-redis' if results.get('redis') else ''}.json"
    if saved.exists():  # a partial run (--only) adds to the saved figures
        previous = json.loads(saved.read_text())
        previous.setdefault("runs", {}).update(results["runs"])
        previous.setdefault("ratios", {}).update(results.get("ratios", {}))
        results = {**previous, "runs": previous["runs"], "ratios": previous["ratios"]}
    saved.write_text(json.dumps(results, indent=2))
    others = sorted(RESULTS.glob("lookup-*.json"))
    sizes = {}
    for path in others:
        stem = path.stem.removeprefix("lookup-")
        if stem.isdigit():
            sizes[int(stem)] = json.loads(path.read_text())["runs"]
    if len(sizes) > 1:
        print("p50 by size (saved runs in bench/results/):")
        smallest = min(sizes)
        for size in sorted(sizes):
            parts = []
            for name in ("omnidesk_latency", "m8com_latency", "omnidesk_distinct", "m8com_distinct"):
                if name in sizes[size] and name in sizes[smallest]:
                    p50 = sizes[size][name]["p50_us"]
                    parts.append(
                        f"{name} p50 {p50 / 1000:.2f} ms ({p50 / sizes[smallest][name]['p50_us']:.2f}x of {smallest:,})"
                    )
            print(f"  {size:>9,}: " + "   ".join(parts))


def markdown(results: dict) -> None:
    """The rows of docs/benchmarks.md's lookup tables, ready to paste (same columns)."""
    runs, ratios, n = results["runs"], results.get("ratios", {}), results["customers"]
    loads = results.get("load") or []
    peak_names = ["ceiling", "peer_distinct", "omnidesk_distinct", "m8com_distinct", "omnidesk_repeat", "m8com_repeat"]

    def peak(name: str) -> str:
        run = runs.get(name)
        return f"{run['rps']:.0f} ({run['p50_ms']:.1f} / {run['p99_ms']:.1f})" if run else "–"

    def ratio(label: str) -> str:
        return f"{ratios[label]:.2f}x" if label in ratios else "–"

    def half(name: str) -> str:
        run = runs.get(f"{name}@half")
        return f"{run['p99_ms']:.1f} ms @ {run['rps']:.0f}" if run else "–"

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = " → ".join(f"{one[0]:.1f}" for one in loads) if loads else "?"
    cache = ", lookup cache shared through Redis" if results.get("redis") else ""
    print(f"\nFor docs/benchmarks.md ({when}, load average {load}{cache}):")
    print(f"| {n:,} | " + " | ".join(peak(name) for name in peak_names) + " |")
    print(f"| {n:,} | " + " | ".join(ratio(f"{a}/{b}") for a, b in RATIOS) + " |")
    print(
        f"| {n:,} | "
        + " | ".join(half(name) for name in ("omnidesk_distinct", "m8com_distinct", "omnidesk_repeat", "m8com_repeat"))
        + " |"
    )


if __name__ == "__main__":
    main()
