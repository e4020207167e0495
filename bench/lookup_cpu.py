#!/usr/bin/env python
"""CPU per lookup, in-process: where a lookup's time goes, without the network.

Calls the hub's WSGI application (config.wsgi) directly (as gunicorn's sync
worker does, same settings and middleware as bench/lookup.py) against a database seeded by
bench/lookup.py, and prints the process CPU per request (``time.process_time``,
all threads of this process: the request log writer included) and the wall
time, for:

* the ceiling view (bench/lookup_peer.py ``ceiling``);
* each lookup answered from the cache (the same request again and again);
* each lookup not answered from the cache (every request a different hot
  customer, the in-process cache turned off);
* each of these again through Django's middleware stack and URL resolver
  (``<scenario>@django``: a plain WSGIHandler, as before the lookup fast path,
  hooks.inbound.fastpath), so one run compares the two;
* ``omnidesk_known`` / ``m8com_known``: every request a different customer the
  hub knows, not cached, and ``…_known+source``: the same with a lookup source
  enabled for the brand (issue 12: the chain costs nothing when the hub
  answers; the source points at a closed loopback port and must get no call).

The PostgreSQL backend's CPU for this connection is read from /proc (the
server must run on this machine; 10 ms clock ticks, so use enough requests).
The request log's own backend (synclog.writer's COPY) is not in it.

    .venv/bin/python bench/lookup.py --customers 100000 --database hookhub_perf_lookup --keep-db --only ceiling --rounds 1
    .venv/bin/python bench/lookup_cpu.py --customers 100000 --database hookhub_perf_lookup
    .venv/bin/python bench/lookup_cpu.py ... --profile omnidesk_cached   # cProfile of one scenario

Bounded: ``--requests`` per scenario (default 2000), in ``--rounds`` interleaved
rounds (medians printed). No network besides the local database.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from lookup import HIT_BASE, MISS_BASE, RESULTS, SLUG  # noqa: E402

DJANGO = "@django"  # a scenario's requests through Django's middleware stack, not the lookup fast path
SOURCE = "+source"  # a known-caller scenario with a lookup source enabled for the brand


def known_source():
    """The brand's lookup source for the ``+source`` scenarios (made once, disabled between them): a
    closed port on loopback, so a call would fail fast and be logged (SourceCall), never hang."""
    from hooks.sources.models import LookupSource
    from hub.models import Brand

    source, _ = LookupSource.objects.get_or_create(
        brand=Brand.objects.get(slug=SLUG),
        name="bench known-caller source",
        defaults={
            "enabled": False,
            "url": "http://127.0.0.1:9/contacts/search?phone={{ phone }}",
            "mapping": {"customer_id": "$.id", "first_name": "$.first_name"},
            "timeout_ms": 500,
        },
    )
    return source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000, help="the size bench/lookup.py seeded")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--database", default="hookhub_bench_lookup")
    parser.add_argument("--requests", type=int, default=2000, help="requests per scenario and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", default="", help="cProfile this scenario once and print the top functions")
    parser.add_argument("--only", default="", help="comma-separated scenarios (default: all)")
    parser.add_argument(
        "--no-request-log",
        action="store_true",
        help="measurement only: drop the request log rows (synclog.writer.record) to see what logging costs",
    )
    args = parser.parse_args()

    meta = json.loads((RESULTS / f"lookup-{args.customers}-seed.json").read_text())
    keys, stride = meta["keys"], meta["stride"]
    os.environ["DATABASE_URL"] = f"{args.pg}/{args.database}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "lookup_settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("SYNCLOG_FLUSH_INTERVAL", "0.5")
    os.environ.setdefault("CONN_MAX_AGE", "600")
    from django.core.handlers.wsgi import WSGIHandler

    from config.wsgi import application as app  # what gunicorn serves: the lookup fast path included

    django_app = WSGIHandler()  # the same requests through Django's middleware stack and URL resolver
    if args.no_request_log:
        from synclog import writer

        writer.record = lambda row, **kwargs: None
    from hooks.inbound.lookup_cache import lookup_cache
    from hooks.sources.models import SourceCall

    hot = max(1, (args.customers - 1) // stride + 1)
    omnidesk = f"/hooks/omnidesk/{SLUG}/customerlookup"
    m8com = f"/hooks/m8com/{SLUG}/lookup"
    bearer = f"Bearer {keys['m8com']}"

    def omnidesk_query(i: int) -> str:
        number = MISS_BASE + i if i % 5 == 4 else HIT_BASE + (i % hot) * stride
        return f"key={keys['omnidesk']}&channelAddressType=phoneNumber&address=%2B316{number:08d}&ticketID=77"

    def m8com_query(i: int) -> str:
        number = MISS_BASE + i if i % 5 == 4 else HIT_BASE + (i % hot) * stride
        return f"fromNumber=%2B316{number:08d}&toNumber=%2B31201234567"

    def known(i: int) -> str:
        return f"%2B316{HIT_BASE + (i % hot) * stride:08d}"

    source = known_source()

    from tests.wsgi_client import wsgi_environ

    def environ(path: str, query: str, authorization: str = "") -> dict:
        return wsgi_environ("GET", path, query, {"Authorization": authorization} if authorization else {})

    statuses: dict[int, int] = {}

    def start_response(status: str, headers: list) -> None:
        code = int(status[:3])
        statuses[code] = statuses.get(code, 0) + 1

    def call(env: dict, handler=app) -> None:
        body = handler(env, start_response)
        for _ in body:
            pass
        body.close()

    offset = [0]

    def scenario(name: str):
        """A list of environs for one round (``<name>@django``: the same requests, through Django)."""
        name = name.removesuffix(DJANGO)
        n = args.requests
        if name == "ceiling":
            return [environ("/bench/ceiling", "") for _ in range(n)], True
        if name == "omnidesk_cached":
            return [environ(omnidesk, omnidesk_query(0)) for _ in range(n)], True
        if name == "m8com_cached":
            return [environ(m8com, m8com_query(0), bearer) for _ in range(n)], True
        start = offset[0]
        offset[0] += n
        if name == "omnidesk_uncached":
            return [environ(omnidesk, omnidesk_query(start + i)) for i in range(n)], False
        if name == "m8com_uncached":
            return [environ(m8com, m8com_query(start + i), bearer) for i in range(n)], False
        name = name.removesuffix(SOURCE)
        if name == "omnidesk_known":
            query = "key={key}&channelAddressType=phoneNumber&address={number}&ticketID=77"
            return [
                environ(omnidesk, query.format(key=keys["omnidesk"], number=known(start + i))) for i in range(n)
            ], False
        if name == "m8com_known":
            query = "fromNumber={number}&toNumber=%2B31201234567"
            return [environ(m8com, query.format(number=known(start + i)), bearer) for i in range(n)], False
        raise SystemExit(f"unknown scenario {name}")

    names = ["ceiling", "omnidesk_cached", "omnidesk_uncached", "m8com_cached", "m8com_uncached"]
    names += [name + DJANGO for name in names[1:]]
    names += [name + variant for name in ("omnidesk_known", "m8com_known") for variant in ("", SOURCE)]
    if args.only:
        names = ["ceiling", *(name for name in args.only.split(",") if name in names and name != "ceiling")]

    from django.db import connection

    def server_cpu() -> float:
        """CPU seconds of this connection's PostgreSQL backend so far (local server: /proc)."""
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pid = cursor.fetchone()[0]
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def run(name: str) -> tuple[float, float, float]:
        envs, cache = scenario(name)
        handler = django_app if name.endswith(DJANGO) else app
        if source.enabled != name.endswith(SOURCE):
            source.enabled = name.endswith(SOURCE)
            source.save()  # through the model: the brand's generation moves on, as in the admin
        size = lookup_cache.size
        lookup_cache.size = size if cache else 0
        try:
            for env in envs[:50]:  # warm: connection, caches, first-use imports
                call(env, handler)
            server = server_cpu()
            cpu, wall = time.process_time(), time.perf_counter()
            for env in envs:
                call(env, handler)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            server = server_cpu() - server
        finally:
            lookup_cache.size = size
        return cpu / len(envs) * 1e6, wall / len(envs) * 1e6, server / len(envs) * 1e6

    def work_per_request(name: str) -> tuple[float, float]:
        """SQL statements and Python function calls (cProfile's count) per request: deterministic, unlike time."""
        import cProfile
        import pstats

        from django.test.utils import CaptureQueriesContext

        envs, cache = scenario(name)
        run_envs, measured = envs[:50], envs[50:350]
        handler = django_app if name.endswith(DJANGO) else app
        if source.enabled != name.endswith(SOURCE):
            source.enabled = name.endswith(SOURCE)
            source.save()
        size = lookup_cache.size
        lookup_cache.size = size if cache else 0
        try:
            for env in run_envs:
                call(env, handler)
            profiler = cProfile.Profile()
            with CaptureQueriesContext(connection) as queries:
                profiler.enable()
                for env in measured:
                    call(env, handler)
                profiler.disable()
        finally:
            lookup_cache.size = size
        stats = pstats.Stats(profiler)
        return len(queries.captured_queries) / len(measured), stats.total_calls / len(measured)  # type: ignore[attr-defined]

    if args.profile:
        import cProfile
        import pstats

        run(args.profile)
        envs, cache = scenario(args.profile)
        handler = django_app if args.profile.endswith(DJANGO) else app
        size = lookup_cache.size
        lookup_cache.size = size if cache else 0
        profiler = cProfile.Profile()
        profiler.enable()
        for env in envs:
            call(env, handler)
        profiler.disable()
        lookup_cache.size = size
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return

    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in names}
    for number in range(args.rounds):
        # Every other round in reverse (the ceiling first): a drift during a round hits both sides of a pair alike.
        for name in names if number % 2 == 0 else [names[0], *reversed(names[1:])]:
            results[name].append(run(name))
    calls = SourceCall.objects.filter(source=source).count()
    assert calls == 0, f"the lookup source was called {calls} times for callers the hub knows"
    load = os.getloadavg()
    print(
        f"CPU per request, in-process, {args.customers:,} customers, {args.requests} requests x {args.rounds} rounds "
        f"(medians; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}); statuses {dict(sorted(statuses.items()))}"
        + ("; request log rows DROPPED" if args.no_request_log else "")
    )
    ceiling_cpu = statistics.median(cpu for cpu, _, _ in results["ceiling"])
    for name in names:
        cpu = statistics.median(c for c, _, _ in results[name])
        wall = statistics.median(w for _, w, _ in results[name])
        server = statistics.median(s for _, _, s in results[name])
        print(
            f"  {name:<20} CPU {cpu:6.0f} us + PostgreSQL backend {server:5.0f} us   wall {wall:6.0f} us   "
            f"(process CPU {cpu / ceiling_cpu:3.1f}x the ceiling's)"
        )
    work = {name: work_per_request(name) for name in names if name.removesuffix(SOURCE).endswith("_known")}
    for name in ("omnidesk_known", "m8com_known"):
        if name in work and name + SOURCE in work:
            (queries, calls_a), (queries_b, calls_b) = work[name], work[name + SOURCE]
            print(
                f"  {name}: work per request, without / with the source (300 requests each, after 50): "
                f"{queries:.2f} / {queries_b:.2f} SQL statements, {calls_a:.1f} / {calls_b:.1f} Python function calls"
            )
        if name in results and name + SOURCE in results:
            ratios = [
                (c + sc) / (b + sb)
                for (c, _, sc), (b, _, sb) in zip(results[name + SOURCE], results[name], strict=True)
            ]
            print(
                f"  {name}: with the source / without, process + backend CPU per request: "
                f"{statistics.median(ratios):.3f}x (per round {', '.join(f'{r:.3f}' for r in ratios)}); "
                f"the source was called {calls} times"
            )


if __name__ == "__main__":
    main()
