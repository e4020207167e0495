"""Reads of the outbound engine (the Logs tab, success rates, previews)."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from customers import documents
from customers.models import Customer

from .engine import clock, state
from .models import CrmSync, Delivery


def crm_sync_deliveries(*, sync: CrmSync) -> QuerySet[Delivery]:
    action_ids = list(sync.actions.values_list("pk", flat=True))
    return Delivery.objects.filter(source_kind="crm_action", source_id__in=action_ids, brand_id=sync.brand_id)


def success_rates(*, deliveries: QuerySet[Delivery]) -> dict[str, dict]:
    """Deskpro Logs tab: "monitor success rates". Share of attempts that got a 2xx/3xx,
    over the last 24 hours and 7 days."""
    from synclog.models import DeliveryAttempt

    now = timezone.now()
    out = {}
    for label, span in (("24h", timedelta(hours=24)), ("7d", timedelta(days=7))):
        row = DeliveryAttempt.objects.filter(delivery__in=deliveries, started_at__gte=now - span).aggregate(
            total=Count("pk"), ok=Count("pk", filter=Q(succeeded=True))
        )
        total, ok = row["total"] or 0, row["ok"] or 0
        out[label] = {"total": total, "ok": ok, "rate": None if not total else round(100 * ok / total, 1)}
    return out


def customer_snapshot(*, brand_id: int, customer_ref: str) -> dict | None:
    """The token snapshot of a customer picked by its customer ID (or internal id) in a brand."""
    customer = Customer.objects.filter(brand_id=brand_id, customer_id=customer_ref).first()
    if customer is None and customer_ref.isdigit():
        customer = Customer.objects.filter(brand_id=brand_id, pk=int(customer_ref)).first()
    if customer is None:
        return None
    return documents.snapshot(documents.load([customer.pk])[0])


def source_health(*, source_kind: str, source_ids: list[int], since_hours: int = 24) -> dict[int, dict]:
    """For a list page: per source (a CRM sync action or a rule), the newest
    delivery's outcome and the share of successful attempts in the window.
    Two grouped queries for the whole page, whatever its length."""
    from synclog.models import DeliveryAttempt

    if not source_ids:
        return {}
    since = timezone.now() - timedelta(hours=since_hours)
    health: dict[int, dict] = {pk: {"ok": 0, "total": 0, "last": None} for pk in source_ids}
    rows = (
        DeliveryAttempt.objects.filter(
            delivery__source_kind=source_kind, delivery__source_id__in=source_ids, started_at__gte=since
        )
        .values("delivery__source_id")
        .annotate(total=Count("pk"), ok=Count("pk", filter=Q(succeeded=True)))
    )
    for row in rows:
        health[row["delivery__source_id"]].update(ok=row["ok"], total=row["total"])
    newest = (
        Delivery.objects.filter(source_kind=source_kind, source_id__in=source_ids, attempts__gt=0)
        .values("source_id")
        .annotate(newest=Max("pk"))
    )
    last_ids = [row["newest"] for row in newest]
    for delivery in Delivery.objects.filter(pk__in=last_ids).only("source_id", "state", "last_status", "last_error"):
        health[delivery.source_id]["last"] = delivery
    return health


def health_merge(parts: list[dict]) -> dict:
    """One CRM sync's health from its actions' (the newest delivery of any action wins)."""
    merged: dict = {"ok": 0, "total": 0, "last": None}
    for part in parts:
        merged["ok"] += part["ok"]
        merged["total"] += part["total"]
        last = part["last"]
        if last is not None and (merged["last"] is None or last.pk > merged["last"].pk):
            merged["last"] = last
    return merged


# ---------------------------------------------------------------- /metrics (hub.metrics.OutboxCollector)


def outbox_depth() -> dict[str, int]:
    """Open deliveries by state, every open state present (index delivery_due: state first)."""
    counts: dict[str, int] = dict.fromkeys(state.OPEN_STATES, 0)
    rows = Delivery.objects.filter(state__in=state.OPEN_STATES).values_list("state").annotate(n=Count("pk"))
    counts.update(rows.order_by())
    return counts


def outbox_oldest_due_age() -> float:
    """Seconds since the oldest pending delivery became due (0 when none is): one
    MIN over the (state, next_attempt_at) index."""
    moment = clock.now()
    oldest = Delivery.objects.filter(state=state.PENDING, next_attempt_at__lte=moment).aggregate(
        oldest=Min("next_attempt_at")
    )["oldest"]
    return max((moment - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
