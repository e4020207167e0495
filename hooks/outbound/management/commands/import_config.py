"""python manage.py import_config FILE [--brand SLUG] — docs/config-as-code.md."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from hooks.outbound.configio import ConfigError, config_import


class Command(BaseCommand):
    help = "Read a brand's outbound configuration from JSON. An invalid file is refused whole, with the reasons."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--brand", help="Import into this brand instead of the one named in the file.")

    def handle(self, *args, file, brand=None, **options):
        try:
            with open(file, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise CommandError(f"{file} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from exc
        try:
            changed = config_import(data=data, brand_slug=brand)
        except ConfigError as exc:
            raise CommandError(
                "The file was refused; nothing was changed:\n" + "\n".join(f"  - {e}" for e in exc.errors)
            ) from exc
        self.stdout.write(f"Imported {file}: {changed} objects created or changed.")
