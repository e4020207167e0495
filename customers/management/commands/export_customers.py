"""`manage.py export_customers SLUG [--output FILE]`: the brand's customers as JSON in the import shape."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from customers.importing import customers_export
from hub.models import Brand


class Command(BaseCommand):
    help = (
        "Write every customer of a brand as a JSON array in the Omnidesk lookup response shape plus the extra "
        "keys import_customers reads; importing the file again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The brand's slug.")
        parser.add_argument("--output", "-o", help="Write to this file instead of stdout.")

    def handle(self, *args, slug, output, **options):
        brand = Brand.objects.filter(slug=slug).first()
        if brand is None:
            raise CommandError(f"No brand with slug {slug!r}.")
        if not output:
            count = customers_export(brand=brand, out=self.stdout._out)
            self.stderr.write(f"Exported {count} customer(s) of {brand.slug}.")
            return
        target = Path(output)
        if not target.parent.is_dir():
            raise CommandError(f"{target.parent}: no such directory.")
        # Written next to the target and renamed: a reader never sees half a file.
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                count = customers_export(brand=brand, out=out)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self.stderr.write(f"Exported {count} customer(s) of {brand.slug} to {target}.")
