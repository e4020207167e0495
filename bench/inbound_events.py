"""Benchmark: inbound events (M8Com call logs, service hooks) and dispatcher rules.

Prints, each beside a baseline measured in the same run on the same database:

* call-log POSTs per second end to end (auth, validation, raw event stored,
  customer matched, CALL activity, lookup documents rebuilt, call.logged
  emitted, request logged) — baseline: ``activity_record`` alone for the same
  calls (the timeline write every design has to pay);
* retried (duplicate) POSTs per second — baseline: the first POSTs above;
* the same call-log POSTs with 20 enabled rules on call.logged (5 of which
  match and write a delivery) — baseline: the run with no rules;
* condition evaluations per second for a 10-test rule — baseline: an empty
  condition tree.

    .venv/bin/python bench/inbound_events.py             # 2000 calls
    .venv/bin/python bench/inbound_events.py -n 500

In-process (Django's test client against the WSGI handler) on a temporary
SQLite file, or on DATABASE_URL when --database-url is given; no network.
Every loop is bounded in count and in time (--max-seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="call logs per measured run (default 2000)")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    parser.add_argument("--max-seconds", type=float, default=120, help="stop any one loop after this")
    parser.add_argument("--database-url", default="", help="e.g. postgres://postgres@127.0.0.1:5432/hookhub_bench")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="hookhub-bench-inbound-"))
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["SYNCLOG_FLUSH_INTERVAL"] = "0.5"
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from customers.models import Customer
    from customers.services import activity_record, customer_create
    from hooks.inbound.models import InboundEvent
    from hooks.outbound.models import Delivery
    from hooks.rules.conditions import conditions_clean, evaluate
    from hooks.rules.services import rule_create
    from hub.services import brand_create, credential_issue

    call_command("migrate", verbosity=0)
    brands = {name: brand_create(slug=name, name=name.title()) for name in ("plain", "rules", "baseline")}
    keys = {name: credential_issue(brand=brand, integration="m8com")[1] for name, brand in brands.items()}
    for brand in brands.values():
        for i in range(args.customers):
            customer_create(
                brand=brand,
                customer_id=f"C{i:06d}",
                first_name="Bench",
                last_name=f"Customer {i}",
                addresses=[{"kind": "telephone", "value": f"+3161{i:07d}"}],
                custom_fields=[{"customerType": "unlimited" if i % 2 else "basic"}],
            )
    print(f"database: {os.environ['DATABASE_URL']}  {args.customers:,} customers per brand")

    def payload(i: int) -> dict:
        return {
            "fromNumber": "+46701234567",
            "toNumber": f"+3161{i % args.customers:07d}",
            "duration": 1000 * (i % 300),
            "startTime": 1_763_800_000_000 + i * 1000,
            "callType": "Inbound",
            "body": "Call from user: agent@example.com (+46 70 123 45 67)\nCall type: Inbound",
            "userId": "u-1",
        }

    client = Client()

    from datetime import UTC, datetime

    def post_calls(brand: str, start: int, count: int) -> tuple[int, float]:
        headers = {"Authorization": f"Bearer {keys[brand]}"}
        started = time.perf_counter()
        done = 0
        for i in range(start, start + count):
            response = client.post(
                f"/hooks/m8com/{brand}/calllog", data=json.dumps(payload(i)), content_type="application/json",
                headers=headers,
            )
            assert response.status_code == 200, response.content
            done += 1
            if time.perf_counter() - started > args.max_seconds:
                break
        return done, time.perf_counter() - started

    baseline_customers = {c.customer_id: c for c in Customer.objects.filter(brand=brands["baseline"])}

    def timeline_writes(start: int, count: int) -> tuple[int, float]:
        """Baseline: the timeline write alone, through the customers service."""
        started = time.perf_counter()
        done = 0
        for i in range(start, start + count):
            data = payload(i)
            activity_record(
                customer=baseline_customers[f"C{i % args.customers:06d}"],
                kind="CALL",
                occurred_at=datetime.fromtimestamp(data["startTime"] / 1000, tz=UTC),
                source="m8com",
                external_id=f"bench-{i}",
                from_number=data["fromNumber"],
                to_number=data["toNumber"],
                duration_ms=data["duration"],
                body=data["body"],
            )
            done += 1
            if time.perf_counter() - started > args.max_seconds:
                break
        return done, time.perf_counter() - started

    for r in range(20):
        matching = r < 5
        rule_create(
            brand=brands["rules"],
            name=f"Rule {r}",
            enabled=True,
            order=r,
            event_types=["call.logged"],
            conditions={
                "all": [
                    "call.duration >= 0" if matching else "call.duration < 0",
                    'customer.customFields.customerType in ["basic", "unlimited"]',
                    {"field": "call.body", "op": "regex", "value": "(?m)^Call type: (Inbound|Outbound)$"},
                ]
            },
            url="https://receiver.example/{{ customer.customer_id }}",
            body='{"duration": {{ call.duration }}, "name": "{{ customer.name }}"}',
        )

    # Interleaved rounds: the machine's load drifts, so every measurement takes
    # its share of each round instead of running one after the other.
    totals = {name: [0, 0.0] for name in ("base", "plain", "dup", "rules")}
    rounds = max(1, min(args.rounds, args.n))
    per_round = args.n // rounds
    for r in range(rounds):
        start = r * per_round
        for name, run in (
            ("base", lambda s: timeline_writes(s, per_round)),
            ("plain", lambda s: post_calls("plain", s, per_round)),
            ("dup", lambda s: post_calls("plain", s, per_round)),
            ("rules", lambda s: post_calls("rules", s, per_round)),
        ):
            done, seconds = run(start)
            totals[name][0] += done
            totals[name][1] += seconds
    (base_done, base_seconds), (plain_done, plain_seconds), (dup_done, dup_seconds), (rules_done, rules_seconds) = (
        totals[name] for name in ("base", "plain", "dup", "rules")
    )
    assert InboundEvent.objects.filter(brand=brands["plain"]).count() == plain_done
    deliveries = Delivery.objects.filter(brand=brands["rules"]).count()
    assert deliveries == rules_done * 5, deliveries

    # Condition evaluation alone.
    heavy = conditions_clean(
        {
            "all": [
                "call.duration > 60000",
                'call.callType == "Inbound"',
                {"field": "call.body", "op": "regex", "value": "(?m)^Call type: Inbound$"},
                'customer.customFields.customerType == "unlimited"',
                'event.queue in ["Sales", "Support", "Billing"]',
                {"any": ['customer.email exists', 'customer.phone contains "+31"']},
                {"not": 'event.queue == "Spam"'},
                "event.timeInQueue <= 600",
                'customer.name contains "Bench"',
            ]
        }
    )
    context = {
        "event": {"queue": "Sales", "timeInQueue": 134},
        "customer": {"name": "Bench Customer", "phone": "+31612345678", "custom_fields": {"customerType": "unlimited"}},
        "call": {"duration": 95000, "callType": "Inbound", "body": "Call from: x\nCall type: Inbound"},
    }
    evaluations = min(args.n * 50, 200_000)

    def timed_evaluations(tree) -> float:
        started = time.perf_counter()
        for _ in range(evaluations):
            evaluate(tree, context)
            if time.perf_counter() - started > args.max_seconds:
                raise SystemExit("evaluation loop over time")
        return evaluations / (time.perf_counter() - started)

    empty_rate = timed_evaluations(conditions_clean(None))
    heavy_rate = timed_evaluations(heavy)

    def line(label, done, seconds, note=""):
        rate = done / seconds
        print(f"{label:<34} {done:>7,} in {seconds:6.2f} s  {rate:>8,.0f}/s  {1000 * seconds / done:6.2f} ms each  {note}")
        return rate

    print()
    base_rate = line("baseline activity_record only", base_done, base_seconds, "(timeline write + documents)")
    plain_rate = line("call-log POST end to end", plain_done, plain_seconds, f"-> {plain_rate_ratio(base_done / base_seconds, plain_done / plain_seconds)}")
    line("retried call-log POST (duplicate)", dup_done, dup_seconds, f"-> {dup_done / dup_seconds / plain_rate:.1f}x the first POSTs")
    rules_rate = line("call-log POST, 20 rules (5 match)", rules_done, rules_seconds,
                      f"-> {rules_rate_ratio(plain_rate, rules_done / rules_seconds)}; {deliveries:,} deliveries written")
    print(f"{'condition evaluation, empty tree':<34} {evaluations:>7,}  {empty_rate:>16,.0f}/s  (baseline)")
    print(f"{'condition evaluation, 10 tests':<34} {evaluations:>7,}  {heavy_rate:>16,.0f}/s  "
          f"({1e6 / heavy_rate:.1f} µs each, incl. one regex)")
    del base_rate, rules_rate
    if not args.database_url:
        for leftover in workdir.iterdir():
            leftover.unlink()
        workdir.rmdir()


def plain_rate_ratio(base: float, measured: float) -> str:
    return f"{base / measured:.1f}x the cost of the timeline write alone"


def rules_rate_ratio(plain: float, measured: float) -> str:
    return f"{(1 / measured - 1 / plain) * 1000:+.2f} ms per POST for the rules"


if __name__ == "__main__":
    main()
