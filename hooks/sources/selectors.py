"""Reads: a brand's enabled sources (kept per process under the brand's cache
generation, so a lookup the hub answers, or a repeated miss, costs no query for
them) and the per-source call counts the admin shows."""

from __future__ import annotations

import threading
from datetime import timedelta

from django.db.models import Avg, Count, Max, Q
from django.utils import timezone

from .chain import SourceSpec
from .models import CallOutcome, LookupSource, SourceCall

_specs: dict[int, tuple[int, list[SourceSpec]]] = {}
_specs_lock = threading.Lock()


def sources_for_brand(*, brand) -> list[SourceSpec]:
    """The brand's enabled sources in order. Every change to a source bumps the
    brand's generation (services), so the copy kept here is never stale."""
    seen = _specs.get(brand.pk)
    if seen is not None and seen[0] == brand.generation:
        return seen[1]
    specs = [
        SourceSpec.of(source)
        for source in LookupSource.objects.filter(brand_id=brand.pk, enabled=True).order_by("order", "name", "pk")
    ]
    with _specs_lock:
        if len(_specs) > 10_000:
            _specs.clear()
        _specs[brand.pk] = (brand.generation, specs)
    return specs


def source_stats(*, source_ids: list[int], days: int = 7) -> dict[int, dict]:
    """Per source, over the last ``days``: calls, hits, misses, timeouts, errors, latency."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        SourceCall.objects.filter(source_id__in=source_ids, started_at__gte=since)
        .values("source_id")
        .annotate(
            calls=Count("pk"),
            hits=Count("pk", filter=Q(outcome=CallOutcome.HIT)),
            misses=Count("pk", filter=Q(outcome=CallOutcome.MISS)),
            timeouts=Count("pk", filter=Q(outcome=CallOutcome.TIMEOUT)),
            errors=Count("pk", filter=Q(outcome=CallOutcome.ERROR)),
            avg_ms=Avg("duration_ms"),
            max_ms=Max("duration_ms"),
            last=Max("started_at"),
        )
        .order_by()
    )
    return {row["source_id"]: dict(row) for row in rows}
