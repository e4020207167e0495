"""Reads of the outbound engine (the Logs tab, success rates, previews)."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from customers import documents
from customers.models import Customer

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
