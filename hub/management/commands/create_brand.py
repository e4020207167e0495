from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from hub.services import brand_create


class Command(BaseCommand):
    help = "Create a brand (tenant)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--region", default="NL", help="Default phone region, e.g. NL, SE, US.")
        parser.add_argument("--time-zone", default="Europe/Amsterdam")

    def handle(self, *args, slug, name, region, time_zone, **options):
        try:
            brand = brand_create(slug=slug, name=name, default_region=region, time_zone=time_zone)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        self.stdout.write(f"Created brand {brand.slug} ({brand.name}).")
