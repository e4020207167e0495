"""python manage.py deliveries_recover BRAND --since ISO_TIME [--sync NAME | --rule NAME] [--state failed]

Re-queues every matching delivery as a "Recover since" job (docs/outbound-webhooks.md, Recovery).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse

from hooks.outbound.models import RecoveryJob
from hooks.outbound.recovery import RecoveryError, recovery_job_create, recovery_job_run, recovery_matching
from hub.models import Brand

BAR_WIDTH = 30


def parse_since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise CommandError(f"--since must be an ISO 8601 time, e.g. 2026-11-30T10:00:00Z ({exc}).") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def bar(job: RecoveryJob) -> str:
    filled = BAR_WIDTH * job.done // job.total if job.total else BAR_WIDTH
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {job.done}/{job.total}"


class Command(BaseCommand):
    help = "Re-queue a brand's failed deliveries created since a time (a background job with progress)."

    def add_arguments(self, parser):
        parser.add_argument("brand", help="The brand's slug.")
        parser.add_argument("--since", required=True, help="ISO 8601 time; deliveries created at or after it.")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--sync", default="", help="Only this CRM sync (its name).")
        which.add_argument("--rule", default="", help="Only this dispatcher rule (its name).")
        parser.add_argument("--state", default="failed", choices=["failed"], help="Which deliveries (failed).")
        parser.add_argument(
            "--foreground",
            action="store_true",
            help="Run the job in this process instead of a qcluster worker (when no cluster is running).",
        )
        parser.add_argument("--wait-seconds", type=float, default=600, help="How long to follow the job's progress.")

    def handle(self, *args, brand, since, sync, rule, state, foreground, wait_seconds, **options):
        found = Brand.objects.filter(slug=brand).first()
        if found is None:
            raise CommandError(f"No brand with slug {brand!r}.")
        moment = parse_since(since)
        try:
            ids = list(
                recovery_matching(brand_id=found.pk, since=moment, sync=sync, rule=rule, states=(state,)).values_list(
                    "pk", flat=True
                )
            )
        except RecoveryError as exc:
            raise CommandError(str(exc)) from exc
        what = (
            f"{state} since {moment.isoformat()}"
            + (f", sync {sync}" if sync else "")
            + (f", rule {rule}" if rule else "")
        )
        if not ids:
            self.stdout.write(f"No {what} deliveries of {found.slug}: nothing to re-queue.")
            return
        with transaction.atomic():
            job = recovery_job_create(
                brand_id=found.pk, delivery_ids=ids, description=what, created_by="command", enqueue=not foreground
            )
        self.stdout.write(f"Recovery job {job.pk}: {job.total} deliveries ({what}).")
        self.stdout.write(f"Progress in the admin: {reverse('admin:outbound_recoveryjob_change', args=[job.pk])}")
        if foreground:
            job = recovery_job_run(job_id=job.pk, progress=lambda current: self._show(current))
        else:
            job = self._follow(job, wait_seconds)
        self.stdout.write("")
        if job.done < job.total:
            self.stdout.write(f"Still running ({job.done}/{job.total}); follow it in the admin.")
            return
        self.stdout.write(self.style.SUCCESS(f"Re-queued {job.requeued} of {job.total} deliveries."))

    def _show(self, job: RecoveryJob) -> None:
        self.stdout.write("\r" + bar(job), ending="")
        self.stdout.flush()

    def _follow(self, job: RecoveryJob, wait_seconds: float) -> RecoveryJob:
        stop = time.monotonic() + wait_seconds
        while time.monotonic() < stop:
            job.refresh_from_db()
            self._show(job)
            if job.finished_at is not None:
                break
            time.sleep(0.5)
        return job
