"""The admin side of hooks.outbound.recovery: the recovery jobs with their
progress, "Recover since…" on CRM syncs and rules, "Recover" and "Replay" on
the delivery list."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import transaction
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from hub.tenancy import BrandScopedAdmin

from .models import RecoveryJob
from .recovery import recovery_job_create, recovery_matching


@admin.register(RecoveryJob)
class RecoveryJobAdmin(BrandScopedAdmin):
    """Read-only: what each recovery or replay job re-queues and how far it got."""

    list_display = ["created_at", "brand", "description", "replay", "progress", "requeued", "created_by"]
    list_filter = ["brand", "replay"]
    fields = ["brand", "description", "replay", "progress", "total", "done", "requeued", "created_by"]
    readonly_fields = ["brand", "description", "replay", "progress", "total", "done", "requeued", "created_by"]

    @admin.display(description="progress")
    def progress(self, obj):
        percent = 100 * obj.done // obj.total if obj.total else 100
        state = "finished" if obj.finished_at else "running"
        return format_html(
            '<progress max="100" value="{}"></progress> {} / {} ({})', percent, obj.done, obj.total, state
        )

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def jobs_message(request, jobs: list[RecoveryJob], *, verb: str) -> None:
    """One message linking to each job's progress page."""
    if not jobs:
        messages.info(request, f"Nothing to {verb}: no matching deliveries.")
        return
    links = format_html_join(
        ", ",
        '<a href="{}">job {} ({} deliveries)</a>',
        ((reverse("admin:outbound_recoveryjob_change", args=[job.pk]), job.pk, job.total) for job in jobs),
    )
    messages.success(request, format_html("{} started in the background: {}.", verb.capitalize(), links))


def deliveries_job(request, queryset, *, replay: bool) -> None:
    """Recover (failed) or replay (failed or delivered) the selected deliveries, one job per brand."""
    states = ("failed", "delivered") if replay else ("failed",)
    by_brand: dict[int, list[int]] = {}
    for pk, brand_id in queryset.filter(state__in=states).values_list("pk", "brand_id"):
        by_brand.setdefault(brand_id, []).append(pk)
    verb = "replay" if replay else "recovery"
    with transaction.atomic():
        jobs = [
            recovery_job_create(
                brand_id=brand_id,
                delivery_ids=ids,
                description=f"{verb} of {len(ids)} selected deliveries",
                created_by=request.user.get_username(),
                replay=replay,
            )
            for brand_id, ids in by_brand.items()
        ]
    jobs_message(request, jobs, verb=verb)


class SinceForm(forms.Form):
    since = forms.DateTimeField(
        label="since",
        help_text="Failed deliveries created at or after this time are re-queued, e.g. 2026-11-30 10:00 "
        "(the server's time zone).",
    )


def recover_since_action(*, source_kind: str):
    """The "Recover failed deliveries since…" action of the CRM sync (``crm_action``) or rule list."""

    @admin.action(description="Recover failed deliveries since…", permissions=["change"])
    def recover_since(modeladmin, request, queryset):
        form = SinceForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            since = form.cleaned_data["since"]
            jobs = []
            with transaction.atomic():
                for obj in queryset:
                    ids = [obj.pk] if source_kind == "rule" else list(obj.actions.values_list("pk", flat=True))
                    found = list(
                        recovery_matching(
                            brand_id=obj.brand_id, since=since, source_kind=source_kind, source_ids=ids
                        ).values_list("pk", flat=True)
                    )
                    if found:
                        jobs.append(
                            recovery_job_create(
                                brand_id=obj.brand_id,
                                delivery_ids=found,
                                description=f"failed since {since:%Y-%m-%d %H:%M}, {obj}",
                                created_by=request.user.get_username(),
                            )
                        )
            jobs_message(request, jobs, verb="recovery")
            return None
        if form.initial.get("since") is None:
            form.initial["since"] = timezone.localtime().replace(microsecond=0, second=0)
        return TemplateResponse(
            request,
            "admin/outbound/recover_since.html",
            {
                **modeladmin.admin_site.each_context(request),
                "title": "Recover failed deliveries since…",
                "opts": modeladmin.model._meta,
                "form": form,
                "objects": list(queryset),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    return recover_since
