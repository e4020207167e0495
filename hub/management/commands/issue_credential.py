from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from hub.models import Brand, Integration
from hub.services import credential_issue


class Command(BaseCommand):
    help = "Issue an inbound key for a brand and integration; the secret is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("kind", choices=Integration.values)
        parser.add_argument("--name", default="")
        parser.add_argument("--allow", action="append", default=[], help="Allowed client network (CIDR); repeatable.")

    def handle(self, *args, slug, kind, name, allow, **options):
        brand = Brand.objects.filter(slug=slug).first()
        if brand is None:
            raise CommandError(f"No brand with slug {slug!r}.")
        try:
            credential, secret = credential_issue(brand=brand, integration=kind, name=name, allowed_networks=allow)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        self.stderr.write(f"Issued {kind} key {credential.prefix}… for {brand.slug}. It is shown once:")
        self.stdout.write(secret)
