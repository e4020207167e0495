#!/usr/bin/env python
"""Lookup chain benchmark: the Omnidesk lookup with one upstream lookup source
(a local fake CRM answering in 50 ms), on PostgreSQL, under gunicorn, driven by wrk.

    make bench-lookup-chain BENCH_ARGS="--customers 100000 --hot 25000"
    .venv/bin/python bench/lookup_chain.py --customers 10000 --duration 5

It reuses bench/lookup.py (seeding with COPY, gunicorn, wrk, medians) and adds
the fake CRM (a threaded HTTP server on 127.0.0.1: a contact for +3171...
numbers after 50 ms, "not found" for others, no answer at all for +3131...)
and one source for the brand (cache_seconds 3600, timeout_ms 3000 above the
brand's lookup_budget_ms 2000). Scenarios, in interleaved rounds (medians):

1. ``known``: every request a different customer the hub knows, with the source
   enabled and without it (same run, alternating): within 5 %;
2. ``upstream_first``: every request a different number the hub does not know
   and the CRM does: requests/s, p50, p99 at peak, and the service time at a
   light load next to the known caller's (about 50 ms plus today's cost);
3. ``upstream_repeat``: a small working set of upstream-answered numbers,
   warmed first, against the same round's ``ceiling``: at least 0.5x (next to
   ``known_repeat``, today's repeat lookups of customers the hub knows);
4. ``hanging``: the CRM never answers; few connections, bounded time: p99
   within lookup_budget_ms + 50 ms.

Results go to bench/results/lookup-chain-<N>.json; the database is dropped at
the end (``--keep-db`` keeps it). Traffic stays on 127.0.0.1; every run is
bounded in time.
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
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lookup as base  # noqa: E402 - bench/lookup.py, next to this file

RESULTS = base.RESULTS
CRM_DELAY_S = 0.05
CRM_KNOWS = "+3171"  # numbers the CRM answers (the hub has none of them)
CRM_HANGS = "+3131"  # numbers the CRM never answers
BUDGET_MS = 2000
TIMEOUT_MS = 3000
MAPPING = {
    "record": "$.results[0]",
    "customer_id": "$.id",
    "first_name": "$.properties.firstname",
    "last_name": "$.properties.lastname",
    "email": "$.properties.email",
    "phone": "$.properties.phone",
    "company": "$.properties.company",
    "job_title": "$.properties.jobtitle",
    "custom_fields": {"tier": "$.properties.tier"},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000, help="customers to seed")
    parser.add_argument("--hot", type=int, default=50_000, help="known customers the load looks up")
    parser.add_argument("--working-set", type=int, default=200, help="numbers in the repeat working set")
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up before each run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians)")
    parser.add_argument(
        "--hang-connections", type=int, default=4, help="at most --workers: more would queue behind the hanging ones"
    )
    parser.add_argument("--hang-duration", type=int, default=12)
    parser.add_argument("--port", type=int, default=18775)
    parser.add_argument("--crm-port", type=int, default=18776)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--database", default="hookhub_chainbench_lookup")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    parser.add_argument(
        "--known-only",
        action="store_true",
        help="only scenario 1 (the known caller with and without the source), e.g. with more --rounds",
    )
    return parser.parse_args()


# ---------------------------------------------------------------- the fake CRM


class CrmHandler(BaseHTTPRequestHandler):
    """GET /contacts/search?phone=+3171...: a contact after 50 ms; +3131...: no answer."""

    stop = threading.Event()
    calls = 0  # requests received, read by the benchmark (which lookups went upstream)
    calls_lock = threading.Lock()

    def do_GET(self) -> None:
        with self.calls_lock:
            CrmHandler.calls += 1
        number = parse_qs(urlsplit(self.path).query).get("phone", [""])[0]
        if number.startswith(CRM_HANGS):
            self.stop.wait(timeout=TIMEOUT_MS / 1000 + 5)  # the hub gives up first
            return
        time.sleep(CRM_DELAY_S)
        results = []
        if number.startswith(CRM_KNOWS):
            tail = number[-6:]
            results.append(
                {
                    "id": f"crm-{tail}",
                    "properties": {
                        "firstname": "Ada",
                        "lastname": f"Upstream {tail}",
                        "email": f"u{tail}@example.org",
                        "phone": number,
                        "company": "Analytical Engines BV",
                        "jobtitle": "Engineer",
                        "tier": "gold",
                    },
                }
            )
        body = json.dumps({"results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


class CrmServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def crm_start(port: int) -> CrmServer:
    server = CrmServer(("127.0.0.1", port), CrmHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------- setup


def source_create(crm_port: int):
    from hooks.sources.models import LookupSource
    from hub.models import Brand

    brand = Brand.objects.get(slug=base.SLUG)
    brand.lookup_budget_ms = BUDGET_MS
    brand.save(update_fields=["lookup_budget_ms"])
    return LookupSource.objects.create(
        brand=brand,
        name="Fake CRM",
        enabled=False,
        url=f"http://127.0.0.1:{crm_port}/contacts/search?phone={{{{ phone }}}}",
        mapping=MAPPING,
        timeout_ms=TIMEOUT_MS,
        cache_seconds=3600,
        negative_cache_seconds=3600,
    )


def source_enable(source, enabled: bool) -> None:
    """Saved through the model: the services' signals bump the brand's generation."""
    source.enabled = enabled
    source.save()


def timed_fetch(port: int, path: str) -> tuple[int, list, float]:
    started = time.perf_counter()
    status, body = base.fetch(port, path)
    return status, json.loads(body), (time.perf_counter() - started) * 1000


# ---------------------------------------------------------------- main


def main() -> None:
    args = parse_args()
    wrk = base.ensure_wrk()
    n = args.customers
    hot = max(1, min(args.hot, n))
    url = f"{args.pg}/{args.database}"
    os.environ["HUB_ALLOW_PRIVATE_DESTINATIONS"] = "1"  # the fake CRM is on 127.0.0.1
    print(
        f"Lookup chain benchmark: {n:,} customers on PostgreSQL ({args.database}), gunicorn {args.workers} sync "
        f"workers, wrk -t{args.threads} -c{args.connections}, {args.duration}s per run, fake CRM "
        f"{CRM_DELAY_S * 1000:.0f} ms",
        flush=True,
    )
    base.database_recreate(args.pg, args.database)
    base.django_setup(url)
    meta = base.seed(n, hot, url)
    keys, stride = meta["keys"], meta["stride"]
    hot = min(hot, (n - 1) // stride + 1)
    source = source_create(args.crm_port)
    crm = crm_start(args.crm_port)
    RESULTS.mkdir(parents=True, exist_ok=True)
    server = base.gunicorn_start(args, url, RESULTS / f"gunicorn-lookup-chain-{n}.log")
    results: dict = {"customers": n, "hot": hot, "seed_seconds": meta["seed_seconds"], "runs": {}, "load": []}
    try:
        results.update(scenarios(args, wrk, source, keys=keys, stride=stride, hot=hot))
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        CrmHandler.stop.set()
        crm.shutdown()
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            base.database_drop(args.pg, args.database)
    report(results)


def scenarios(args, wrk: str, source, *, keys: dict, stride: int, hot: int) -> dict:
    lookup = f"/hooks/omnidesk/{base.SLUG}/customerlookup?key={keys['omnidesk']}&channelAddressType=phoneNumber&address=%2B{{prefix}}{{n}}&ticketID=77"
    known = lookup.replace("{prefix}", "316")
    upstream = lookup.replace("{prefix}", CRM_KNOWS[1:-1])  # +317 + 1xxxxxxx: +3171xxxxxxx
    hanging = lookup.replace("{prefix}", CRM_HANGS[1:-1])
    number = f"{base.HIT_BASE:08d}"
    loads: list = [os.getloadavg()]

    # Sanity: the known caller answers from the store either way; the CRM's
    # numbers only with the source; the hanging number within the budget.
    status, body, _ = timed_fetch(args.port, known.replace("{n}", number))
    assert status == 200 and len(body) == 1 and body[0]["timeline"], (status, body)

    runs: dict[str, list[dict]] = {}
    start = {"known": 0, "upstream": 1, "hanging": 0}  # upstream 0 is the working set's first number

    def measure(name: str, *, template: str, pool: int, walk: str | None, step_stride: int = 1, **extra) -> dict:
        kwargs = {"hit": template, "pool": pool, "stride": step_stride, **extra}
        begin = start[walk] if walk else 0
        if args.warmup and "connections" not in extra:
            warm = base.run_wrk(wrk, args, start=begin, duration=args.warmup, **kwargs)
            begin += warm["requests"] + args.connections * 4
        duration = extra.pop("duration", None) or args.duration
        kwargs.pop("duration", None)
        calls = CrmHandler.calls
        result = base.run_wrk(wrk, args, start=begin, duration=duration, **kwargs)
        result["crm_calls"] = CrmHandler.calls - calls
        if walk:
            start[walk] = begin + result["requests"] + args.connections * 4
            result["wrapped"] = start[walk] > pool
        print(
            f"  {name:<26} {result['rps']:>8.0f} req/s   p50 {result['p50_ms']:8.2f} ms   "
            f"p99 {result['p99_ms']:8.2f} ms   max {result['max_us'] / 1000:8.2f} ms   "
            f"non-2xx {result['status_errors']:>3}   socket errors {result['socket_errors']}   "
            f"CRM calls {result['crm_calls']:>5}"
            f"{'   (pool wrapped)' if result.get('wrapped') else ''}",
            flush=True,
        )
        runs.setdefault(name, []).append(result)
        return result

    distinct = {"pool": 5_000_000}  # coprime steps over 5M numbers: never the same twice in a run

    # 1. The known caller with and without the source, alternating which goes first.
    print("1. A caller the hub knows, with the source and without (every request a different customer):")
    for number_ in range(1, args.rounds + 1):
        load = os.getloadavg()
        loads.append(load)
        print(f"Round {number_}/{args.rounds}, load average {load[0]:.1f}:", flush=True)
        order = [False, True] if number_ % 2 else [True, False]
        for enabled in order:
            source_enable(source, enabled)
            name = "known_with_source" if enabled else "known_without_source"
            measure(name, template=known, pool=hot, walk="known", step_stride=stride)
    if args.known_only:
        loads.append(os.getloadavg())
        return summary(runs, loads)
    source_enable(source, True)  # from here on; every save changes the source's revision (its cache)
    status, body, took = timed_fetch(args.port, upstream.replace("{n}", number))
    assert status == 200 and len(body) == 1 and body[0]["customerID"] == "crm-000000", (status, body)
    status, empty, _ = timed_fetch(args.port, upstream.replace("{n}", f"{base.MISS_BASE:08d}"))
    assert status == 200 and empty == [], (status, empty)
    print(f"Sanity: the CRM's number answered upstream in {took:.0f} ms, others not found", flush=True)

    # 2 and 3, interleaved with the ceiling.
    print("2./3. First lookups answered upstream, repeat lookups from the cache, the ceiling, the hub's own repeats:")
    # Every gunicorn worker keeps its own cache (local memory, no REDIS_URL): warm
    # until a pass over the working set asks the CRM nothing (at most 8 passes).
    for _ in range(8):
        calls = CrmHandler.calls
        warm = base.run_wrk(wrk, args, hit=upstream, pool=args.working_set, duration=4)
        print(f"  (cache warm-up: {warm['requests']} requests, {CrmHandler.calls - calls} CRM calls)", flush=True)
        if CrmHandler.calls == calls:
            break
    for number_ in range(1, args.rounds + 1):
        load = os.getloadavg()
        loads.append(load)
        print(f"Round {number_}/{args.rounds}, load average {load[0]:.1f}:", flush=True)
        measure("ceiling", template="/bench/ceiling", pool=1, walk=None)
        measure("upstream_first", template=upstream, walk="upstream", **distinct)
        measure("upstream_repeat", template=upstream, pool=args.working_set, walk=None)
        measure("known_repeat", template=known, pool=args.working_set, walk=None, step_stride=stride)

    print("Service time at a light load (2 connections, 10 ms pause, every request a different number):")
    light = {"delay_ms": 10.0, "connections": 2, "threads": 1}
    measure("known_light", template=known, pool=hot, walk="known", step_stride=stride, **light)
    measure("upstream_first_light", template=upstream, walk="upstream", **light, **distinct)

    # 4. The hanging source: each request waits out the budget (~2 s).
    print(f"4. A source that hangs ({args.hang_connections} connections, {args.hang_duration} s):")
    measure(
        "hanging",
        template=hanging,
        walk="hanging",
        connections=args.hang_connections,
        threads=1,
        duration=args.hang_duration,
        **distinct,
    )
    loads.append(os.getloadavg())
    return summary(runs, loads)


RATIOS = (
    ("known_with_source", "known_without_source"),
    ("upstream_repeat", "ceiling"),
    ("upstream_first", "ceiling"),
    ("known_repeat", "ceiling"),
    ("upstream_repeat", "known_repeat"),
)


def summary(runs: dict[str, list[dict]], loads: list) -> dict:
    """Medians per scenario; per ratio the median of the per-round ratios (and, for the
    known caller, the ratio of the mean throughputs beside it)."""
    medians = {name: base.median_run(rounds) for name, rounds in runs.items()}
    ratios = {
        f"{a}/{b}": statistics.median(x["rps"] / y["rps"] for x, y in zip(runs[a], runs[b], strict=True))
        for a, b in RATIOS
        if a in runs and b in runs
    }
    with_source, without = runs["known_with_source"], runs["known_without_source"]
    ratios["known_with_source/known_without_source (means)"] = statistics.mean(
        x["rps"] for x in with_source
    ) / statistics.mean(x["rps"] for x in without)
    return {"runs": medians, "rounds": runs, "ratios": ratios, "load": loads}


def report(results: dict) -> None:
    runs, ratios = results["runs"], results["ratios"]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = " → ".join(f"{one[0]:.1f}" for one in results["load"])
    print(f"\nMedians over the rounds ({when}, load average {load}):")
    for name, run in runs.items():
        print(
            f"  {name:<26} {run['rps']:>8.0f} req/s   p50 {run['p50_ms']:8.2f} ms   p99 {run['p99_ms']:8.2f} ms   "
            f"requests {run['requests']}"
        )
    print("Ratios (requests/s, median of the per-round ratios):")
    for label, value in ratios.items():
        print(f"  {label:<40} {value:6.3f}x")
    print("Targets:")
    known = ratios["known_with_source/known_without_source"]
    print(
        f"  known caller, with / without source   {known:6.3f}x   (target >= 0.95x) {'met' if known >= 0.95 else 'NOT met'}"
    )
    if "hanging" not in runs:  # --known-only
        return
    hang = runs["hanging"]
    budget_ok = hang["p99_ms"] <= BUDGET_MS + 50
    light_extra = runs["upstream_first_light"]["p50_ms"] - runs["known_light"]["p50_ms"]
    repeat = ratios["upstream_repeat/ceiling"]
    print(
        f"  upstream repeat / ceiling             {repeat:6.3f}x   (target >= 0.5x)  {'met' if repeat >= 0.5 else 'NOT met'}"
    )
    print(
        f"  first lookup upstream, light p50 - known light p50 = {light_extra:.1f} ms "
        f"(expected about {CRM_DELAY_S * 1000:.0f} ms)"
    )
    print(
        f"  hanging source p99 {hang['p99_ms']:.1f} ms, max {hang['max_us'] / 1000:.1f} ms "
        f"(target <= {BUDGET_MS + 50} ms) {'met' if budget_ok else 'NOT met'}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    saved = RESULTS / f"lookup-chain-{results['customers']}.json"
    saved.write_text(json.dumps(results, indent=2))
    print(f"Saved {saved.relative_to(base.ROOT)}")


if __name__ == "__main__":
    main()
