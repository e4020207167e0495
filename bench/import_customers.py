"""Benchmark: `import_customers` of N customers (default 100k) into a fresh SQLite database.

Prints the import time and customers/s beside two baselines measured in the same
run, on the same database:

* naive:  the per-row service loop (``customer_create`` for each customer, one
  transaction each) on a sample, extrapolated to N;
* floor:  a raw ``bulk_create`` of bare Customer rows (no addresses, fields,
  timeline, lookup documents or events) — what the database alone costs.

Then re-imports the same file (every row unchanged: the upsert's no-op path),
and exports it.

    .venv/bin/python bench/import_customers.py            # 100k customers
    .venv/bin/python bench/import_customers.py -n 20000 --sample 1000

Runs entirely on a temporary SQLite file; no network.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def generate(n: int, *, seed: int = 7, prefix: str = "C") -> list[dict]:
    """N customers in the Omnidesk lookup shape: e-mail, one or two phones (mixed spellings),
    a social handle, two custom fields and one timeline entry each."""
    rnd = random.Random(seed)
    first = ["Maria", "Thomas", "Anna", "Oliver", "Sanne", "Lars", "Eva", "Noah", "Emma", "Daan"]
    last = ["Lukkien", "de Vries", "Andersson", "Smith", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Mulder"]
    items = []
    for i in range(n):
        mobile = 10_000_000 + i
        phones = [
            {"address": f"06 {mobile // 10_000:04d} {mobile % 10_000:04d}", "type": "telephone", "comment": "Mobile"}
        ]
        if i % 3 == 0:
            phones.append(
                {"address": f"+31 20 {1_000_000 + i % 8_999_999:07d}", "type": "telephone", "comment": "Work"}
            )
        fn, ln = rnd.choice(first), rnd.choice(last)
        items.append(
            {
                "addresses": [
                    {"address": f"{fn.lower()}.{i}@example.org", "type": "email"},
                    *phones,
                    {"address": f"@{fn.lower()}_{i}", "type": "twitter"},
                ],
                "customerFirstname": fn,
                "customerID": f"{prefix}{i:08d}",
                "customerLastname": ln,
                "customFields": [{"customerType": rnd.choice(["basic", "unlimited"])}, {"customerSince": "2019-12-24"}],
                "timeline": [
                    {
                        "externalID": f"evt-{i}",
                        "lastUpdate": "2021-12-21 15:00:11",
                        "type": "event",
                        "message": "Marketing mail regarding price reduction",
                        "source": "hubspot",
                        "url": f"https://hubspot.example.com/link{i}",
                    }
                ],
                "companyName": f"{ln} BV" if i % 4 == 0 else "",
            }
        )
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="customers to import (default 100000)")
    parser.add_argument("--sample", type=int, default=2000, help="customers in the naive per-row baseline")
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--max-seconds", type=float, default=600, help="give up on the naive baseline after this")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="hookhub-bench-import-"))
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    import orjson
    from django.core.management import call_command
    from django.db import transaction

    from customers.importing import customers_export, customers_import, import_file_read
    from customers.models import Activity, Address, Customer
    from customers.services import customer_create
    from hub.services import brand_create

    call_command("migrate", verbosity=0)
    brand = brand_create(slug="bench", name="Bench")
    naive_brand = brand_create(slug="naive", name="Naive")
    floor_brand = brand_create(slug="floor", name="Floor")

    path = workdir / "customers.json"
    started = time.perf_counter()
    path.write_bytes(orjson.dumps(generate(args.n)))
    print(
        f"generated {args.n:,} customers ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s"
    )
    print(f"database: {os.environ['DATABASE_URL']}  chunk size {args.chunk_size}")

    # Baseline 1: the per-row service loop on a sample, extrapolated.
    sample = generate(args.sample, seed=11, prefix="N")
    started = time.perf_counter()
    done = 0
    for item in sample:
        customer_create(
            brand=naive_brand,
            customer_id=item["customerID"],
            first_name=item["customerFirstname"],
            last_name=item["customerLastname"],
            company_name=item["companyName"],
            addresses=item["addresses"],
            custom_fields=item["customFields"],
            activities=[
                {
                    "kind": "EVENT",
                    "occurred_at": "2021-12-21T14:00:11Z",
                    "external_id": t["externalID"],
                    "source": t["source"],
                    "body": t["message"],
                    "link_url": t["url"],
                }
                for t in item["timeline"]
            ],
        )
        done += 1
        if time.perf_counter() - started > args.max_seconds:
            break
    naive_rate = done / (time.perf_counter() - started)

    # Baseline 2: bare rows through bulk_create, the database's own floor. Measured
    # before and again after the imports: the machine's other load moves it.
    def floor(brand, prefix: str) -> float:
        started = time.perf_counter()
        with transaction.atomic():
            Customer.objects.bulk_create(
                (
                    Customer(brand=brand, customer_id=f"{prefix}{i:08d}", first_name="F", last_name="L")
                    for i in range(args.n)
                ),
                batch_size=args.chunk_size,
            )
        return time.perf_counter() - started

    load_before = os.getloadavg()
    floor_seconds = floor(floor_brand, "F")

    # The import itself: read + validate + normalize + bulk write + documents + events.
    started = time.perf_counter()
    result = customers_import(brand=brand, rows=import_file_read(path), chunk_size=args.chunk_size)
    import_seconds = time.perf_counter() - started
    assert result.created == args.n and not result.rejected, result
    assert Customer.objects.filter(brand=brand).count() == args.n
    addresses = Address.objects.filter(brand=brand).count()
    activities = Activity.objects.filter(customer__brand=brand).count()

    # The same import with the event bus emptied: what the import itself costs, apart
    # from the subscribers (outbound CRM sync, rules) that each event reaches.
    from hub import events

    quiet_brand = brand_create(slug="quiet", name="Quiet")
    saved = {key: list(value) for key, value in events._subscribers.items()}
    subscribers = sum(len(value) for value in saved.values())
    events._subscribers.clear()
    try:
        started = time.perf_counter()
        quiet = customers_import(brand=quiet_brand, rows=import_file_read(path), chunk_size=args.chunk_size)
        quiet_seconds = time.perf_counter() - started
    finally:
        events._subscribers.update(saved)
    assert quiet.created == args.n, quiet

    started = time.perf_counter()
    again = customers_import(brand=brand, rows=import_file_read(path), chunk_size=args.chunk_size)
    reimport_seconds = time.perf_counter() - started
    assert again.unchanged == args.n, again

    started = time.perf_counter()
    out = io.StringIO()
    exported = customers_export(brand=brand, out=out)
    export_seconds = time.perf_counter() - started
    assert exported == args.n

    floor_after_seconds = floor(brand_create(slug="floor-after", name="Floor after"), "G")
    load_after = os.getloadavg()

    rate = args.n / import_seconds
    floor_mean = (floor_seconds + floor_after_seconds) / 2
    print()
    print(
        f"load average {load_before[0]:.1f} / {load_before[1]:.1f} / {load_before[2]:.1f} at the start, "
        f"{load_after[0]:.1f} / {load_after[1]:.1f} / {load_after[2]:.1f} at the end (1 / 5 / 15 min)"
    )
    print(
        f"import_customers  {args.n:>9,} customers  {import_seconds:7.1f} s  {rate:>9,.0f} customers/s"
        f"  ({addresses:,} addresses, {activities:,} timeline entries, lookup documents, events)"
    )
    print(
        f"  same, no subscribers {args.n:>9,} customers  {quiet_seconds:7.1f} s  {args.n / quiet_seconds:>9,.0f} customers/s"
        f"  (the {subscribers} installed event subscriber(s) detached: the import's own cost)"
    )
    print(
        f"baseline naive    {done:>9,} sampled    {args.n / naive_rate:7.1f} s  {naive_rate:>9,.0f} customers/s"
        f"  (customer_create per row, extrapolated to {args.n:,})  -> import is {rate / naive_rate:.1f}x faster"
    )
    print(
        f"baseline floor    {args.n:>9,} bare rows  {floor_seconds:7.1f} s  {args.n / floor_seconds:>9,.0f} customers/s"
        f"  (bulk_create of Customer rows only; again after the imports: {floor_after_seconds:.1f} s)"
    )
    print(
        f"import / floor (mean of the two floors, {floor_mean:.1f} s): {import_seconds / floor_mean:.1f}x with the "
        f"subscribers, {quiet_seconds / floor_mean:.1f}x without; re-import {reimport_seconds / floor_mean:.1f}x"
    )
    print(
        f"re-import         {args.n:>9,} unchanged  {reimport_seconds:7.1f} s  {args.n / reimport_seconds:>9,.0f} customers/s"
    )
    print(
        f"export            {args.n:>9,} customers  {export_seconds:7.1f} s  {args.n / export_seconds:>9,.0f} customers/s"
    )
    for leftover in workdir.iterdir():
        leftover.unlink()
    workdir.rmdir()


if __name__ == "__main__":
    main()
