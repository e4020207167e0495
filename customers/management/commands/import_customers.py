"""`manage.py import_customers SLUG FILE`: upsert customers from JSON or CSV (issue 2, docs/customers.md)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from customers.importing import CHUNK_SIZE, ImportFileError, customers_import, import_file_read
from hub.models import Brand

# Exit status when the file was read but some rows were rejected (the others are stored).
EXIT_ROWS_REJECTED = 2


class ProgressBar:
    """A one-line bar redrawn in place; only used when stdout is a terminal."""

    width = 30

    def __init__(self, out):
        self.out = out
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        filled = self.width * done // total if total else self.width
        rate = done / max(time.monotonic() - self.started, 1e-6)
        bar = "#" * filled + "-" * (self.width - filled)
        self.out.write(f"\r[{bar}] {done}/{total} ({rate:,.0f}/s)", ending="")
        self.out.flush()
        if done >= total:
            self.out.write("")


class Command(BaseCommand):
    help = (
        "Import customers into a brand from a JSON file (an array in the Omnidesk lookup response shape) "
        "or a CSV file, upserting by customer id. Rejected rows are reported with their line / index and "
        f"reason; the exit status is {EXIT_ROWS_REJECTED} when any row was rejected."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The brand's slug.")
        parser.add_argument("file", help="A .json or .csv file.")
        parser.add_argument("--format", choices=["json", "csv"], help="Override the format guessed from the file.")
        parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE, help="Customers per transaction.")

    def handle(self, *args, slug, file, format, chunk_size, **options):
        brand = Brand.objects.filter(slug=slug).first()
        if brand is None:
            raise CommandError(f"No brand with slug {slug!r}.")
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1.")
        try:
            rows = import_file_read(file, fmt=format)
        except ImportFileError as exc:
            raise CommandError(f"{exc} Nothing was imported.") from exc
        progress = ProgressBar(self.stdout) if self.stdout.isatty() and rows else None
        started = time.monotonic()
        result = customers_import(brand=brand, rows=rows, chunk_size=chunk_size, progress=progress)
        elapsed = time.monotonic() - started
        for rejected in result.rejected:
            self.stderr.write(f"Rejected {rejected}")
        self.stdout.write(f"{brand.slug}: {result} ({elapsed:.1f} s)")
        if result.rejected:
            raise CommandError(
                f"{len(result.rejected)} row(s) rejected; the other rows were imported.", returncode=EXIT_ROWS_REJECTED
            )
