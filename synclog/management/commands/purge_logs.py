from django.core.management.base import BaseCommand

from synclog.services import logs_purge


class Command(BaseCommand):
    help = "Delete log rows older than SYNCLOG_RETENTION_DAYS (or --days), in small batches."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None)

    def handle(self, *args, days, **options):
        for label, count in logs_purge(older_than_days=days).items():
            self.stdout.write(f"{label}: {count} deleted")
