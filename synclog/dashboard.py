"""The per-brand log dashboard: traffic over time with success rate, slowest
endpoints, failing syncs and rules, deliveries waiting to retry.

Drawn server-side (an inline SVG built here), so it needs no JavaScript library.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.db.models import Avg, Count, Max, Q
from django.db.models.functions import TruncDay, TruncHour
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone

from hub import admin_panels, scoping
from hub.models import Brand

from .detail import changelist_url, logs_url
from .filters import inbound_ok_q
from .models import DeliveryAttempt, InboundRequest

RANGES = {
    "24h": (timedelta(hours=24), TruncHour, "%H:%M"),
    "7d": (timedelta(days=7), TruncDay, "%a %d"),
    "30d": (timedelta(days=30), TruncDay, "%d %b"),
}
CHART_WIDTH = 720
CHART_HEIGHT = 160


@dataclass
class Bucket:
    label: str
    ok: int
    failed: int

    @property
    def total(self) -> int:
        return self.ok + self.failed

    @property
    def rate(self) -> float | None:
        return None if not self.total else self.ok / self.total


def _buckets(rows, start, step, trunc_format, count) -> list[Bucket]:
    by_time = {row["bucket"]: row for row in rows}
    buckets = []
    for index in range(count):
        moment = start + step * index
        row = by_time.get(moment, {})
        buckets.append(Bucket(moment.strftime(trunc_format), row.get("ok", 0) or 0, row.get("failed", 0) or 0))
    return buckets


def chart(buckets: list[Bucket], *, title: str) -> dict:
    """Bar geometry (successes and failures stacked) plus a success-rate polyline."""
    peak = max((b.total for b in buckets), default=0) or 1
    slot = CHART_WIDTH / max(len(buckets), 1)
    bars, points = [], []
    for index, bucket in enumerate(buckets):
        x = index * slot + slot * 0.15
        ok_h = CHART_HEIGHT * bucket.ok / peak
        failed_h = CHART_HEIGHT * bucket.failed / peak
        bars.append(
            {
                "x": round(x, 1),
                "width": round(slot * 0.7, 1),
                "ok_y": round(CHART_HEIGHT - ok_h, 1),
                "ok_h": round(ok_h, 1),
                "failed_y": round(CHART_HEIGHT - ok_h - failed_h, 1),
                "failed_h": round(failed_h, 1),
                "label": bucket.label,
                "ok": bucket.ok,
                "failed": bucket.failed,
            }
        )
        if bucket.rate is not None:
            points.append(f"{round(x + slot * 0.35, 1)},{round(CHART_HEIGHT - CHART_HEIGHT * bucket.rate, 1)}")
    total = sum(b.total for b in buckets)
    ok = sum(b.ok for b in buckets)
    return {
        "title": title,
        "bars": bars,
        "rate_points": " ".join(points),
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "total": total,
        "ok": ok,
        "failed": total - ok,
        "rate": None if not total else round(100 * ok / total, 1),
        "peak": peak,
    }


def _series(queryset, time_field, ok_q, start, step, trunc, fmt, count):
    rows = (
        queryset.filter(**{f"{time_field}__gte": start})
        .annotate(bucket=trunc(time_field))
        .values("bucket")
        .annotate(ok=Count("pk", filter=ok_q), failed=Count("pk", filter=~ok_q))
    )
    return _buckets(list(rows), start, step, fmt, count)


def dashboard_data(brand: Brand, range_key: str = "7d") -> dict:
    span, trunc, fmt = RANGES.get(range_key, RANGES["7d"])
    now = timezone.now()
    if trunc is TruncHour:
        step = timedelta(hours=1)
        start = now.replace(minute=0, second=0, microsecond=0) - span + step
    else:
        step = timedelta(days=1)
        start = now.replace(hour=0, minute=0, second=0, microsecond=0) - span + step
    count = int(span / step)
    inbound = InboundRequest.objects.filter(brand=brand)
    since = timezone.localtime(start).strftime("%Y-%m-%dT%H:%M")
    # Plain dicts (the plugin types .values() rows as closed TypedDicts): links are added below.
    slowest: list[dict[str, Any]] = [
        dict(row)
        for row in inbound.filter(created_at__gte=start)
        .values("endpoint")
        .annotate(calls=Count("pk"), avg_ms=Avg("latency_ms"), max_ms=Max("latency_ms"))
        .order_by("-avg_ms")[:10]
    ]
    for row in slowest:
        row["link"] = logs_url(brand=brand.pk, direction="inbound", integration=row["endpoint"], **{"from": since})
    data = {
        "brand": brand,
        "range": range_key if range_key in RANGES else "7d",
        "ranges": list(RANGES),
        "inbound_chart": chart(
            _series(inbound, "created_at", inbound_ok_q(), start, step, trunc, fmt, count), title="Inbound calls"
        ),
        "slowest": slowest,
        "logs_link": logs_url(brand=brand.pk, **{"from": since}),
        "inbound_link": logs_url(brand=brand.pk, direction="inbound", **{"from": since}),
        "inbound_failed_link": logs_url(brand=brand.pk, direction="inbound", outcome="failed", **{"from": since}),
    }
    data.update(_outbound_data(brand, start, step, trunc, fmt, count, since))
    data.update(_lookup_sources_data(brand, start))
    return data


def _lookup_sources_data(brand, start) -> dict:
    """Calls to the brand's lookup sources (hooks.sources), when that app is installed."""
    try:
        call_model = apps.get_model("sources", "SourceCall")
    except LookupError:
        return {}
    rows: list[dict[str, Any]] = [
        dict(row)
        for row in call_model.objects.filter(brand=brand, started_at__gte=start)
        .values("source_id", "source_name")
        .annotate(
            calls=Count("pk"),
            hits=Count("pk", filter=Q(outcome="hit")),
            misses=Count("pk", filter=Q(outcome="miss")),
            timeouts=Count("pk", filter=Q(outcome="timeout")),
            errors=Count("pk", filter=Q(outcome="error")),
            avg_ms=Avg("duration_ms"),
        )
        .order_by("source_name")
    ]
    for row in rows:
        row["link"] = (
            changelist_url("sources_sourcecall", source__id__exact=row["source_id"]) if row["source_id"] else ""
        )
    return {"lookup_sources": rows}


def _outbound_data(brand, start, step, trunc, fmt, count, since) -> dict:
    """Outbound deliveries, when the delivery engine's models are installed."""
    try:
        delivery_model = apps.get_model("outbound", "Delivery")
    except LookupError:
        return {}
    attempts = DeliveryAttempt.objects.filter(brand=brand)
    waiting = delivery_model.objects.filter(brand=brand, state="pending", attempts__gt=0)
    failed = delivery_model.objects.filter(brand=brand, state="failed", created_at__gte=start)
    # Plain dicts, as in dashboard_data: links are added below.
    failing: list[dict[str, Any]] = [
        dict(row)
        for row in failed.values("source_kind", "source_id", "source_name")
        .annotate(failed=Count("pk"))
        .order_by("-failed", "source_name")[:10]
    ]
    # Links into the delivery list use its declared filters only (hooks.outbound.admin.DeliveryAdmin).
    for row in failing:
        row["link"] = changelist_url(
            "outbound_delivery",
            brand__id__exact=brand.pk,
            state__exact="failed",
            source=f"{row['source_kind']}:{row['source_id']}",
            **{"from": since},
        )
        row["attempts_link"] = logs_url(
            brand=brand.pk,
            direction="outbound",
            source=f"{row['source_kind']}:{row['source_id']}",
            outcome="failed",
            **{"from": since},
        )
    slowest: list[dict[str, Any]] = [
        dict(row)
        for row in attempts.filter(started_at__gte=start)
        .values("delivery__source_kind", "delivery__source_id", "delivery__source_name")
        .annotate(calls=Count("pk"), avg_ms=Avg("duration_ms"), max_ms=Max("duration_ms"))
        .order_by("-avg_ms")[:10]
    ]
    for row in slowest:
        row["name"] = row["delivery__source_name"]
        row["link"] = logs_url(
            brand=brand.pk,
            direction="outbound",
            source=f"{row['delivery__source_kind']}:{row['delivery__source_id']}",
            **{"from": since},
        )
    return {
        **{key: value for section in admin_panels.dashboard_sections for key, value in section(brand).items()},
        "outbound_chart": chart(
            _series(attempts, "started_at", Q(succeeded=True), start, step, trunc, fmt, count),
            title="Outbound delivery attempts",
        ),
        "failing": failing,
        "slowest_outbound": slowest,
        "waiting_count": waiting.count(),
        "waiting_link": changelist_url(
            "outbound_delivery", brand__id__exact=brand.pk, state__exact="pending", tried="yes"
        ),
        "failed_count": failed.count(),
        "failed_link": changelist_url(
            "outbound_delivery", brand__id__exact=brand.pk, state__exact="failed", **{"from": since}
        ),
        "attempts_link": logs_url(brand=brand.pk, direction="outbound", **{"from": since}),
        "attempts_failed_link": logs_url(brand=brand.pk, direction="outbound", outcome="failed", **{"from": since}),
    }


def dashboard_view(request, slug: str | None = None):
    brands = scoping.brands(user=request.user, action=scoping.VIEW)
    if slug is None:
        brand = brands.first()
        if brand is None:
            raise Http404("You belong to no brand yet.")
    else:
        brand = get_object_or_404(brands, slug=slug)
    context = {
        **admin.site.each_context(request),
        **dashboard_data(brand, request.GET.get("range", "7d")),
        "title": f"Dashboard — {brand.name}",
        "brands": brands,
    }
    return TemplateResponse(request, "admin/synclog/dashboard.html", context)
