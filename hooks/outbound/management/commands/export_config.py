"""python manage.py export_config SLUG [--output FILE] — docs/config-as-code.md."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from hooks.outbound.configio import config_export, secret_references
from hub.models import Brand


class Command(BaseCommand):
    help = "Write a brand's outbound configuration (CRM syncs, rules) as JSON; secrets as environment references."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--output", "-o", help="Write to this file instead of standard output.")

    def handle(self, *args, slug, output=None, **options):
        brand = Brand.objects.filter(slug=slug).first()
        if brand is None:
            raise CommandError(f"No brand with slug {slug!r}.")
        data = config_export(brand=brand)
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        if output:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            self.stdout.write(text, ending="")
        names = secret_references(data)
        if names:
            self.stderr.write("Secrets are not exported. Set these environment variables before importing:")
            for name in names:
                self.stderr.write(f"  {name}")
