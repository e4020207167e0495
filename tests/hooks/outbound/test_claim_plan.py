"""A claim reads about a batch of rows however large the backlog, with the
statistics a burst leaves behind (hooks.outbound.engine.claim and the partial
index ``delivery_open``): measured from PostgreSQL's own executed plan. Before
the index, the planner believed "no pending rows" and every claim read and
sorted the whole due backlog (13–16 ms a claim at 2 000, growing with it)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from hooks.outbound.engine import claim, clock
from hooks.outbound.models import Delivery, DestinationHealth, HealthState

pytestmark = pytest.mark.django_db

BACKLOG = 3000


def _rows(brand, count: int, state: str, *, start: int = 0) -> list[Delivery]:
    now = timezone.now()
    return [
        Delivery(
            brand=brand,
            source_kind="crm_action",
            source_id=1 + n % 2,
            source_name="CRM",
            event_type="customer.updated",
            order_key=f"crmsync:1:{n % 700}" if n % 3 else "",
            message_id=f"msg_plan_{state}_{n}",
            state=state,
            next_attempt_at=now - timedelta(seconds=1),
            deadline=now + timedelta(hours=1),
        )
        for n in range(start, start + count)
    ]


def _read_from_outer_table(plan: dict) -> int:
    """Rows the plan read from the claim's own (unaliased) delivery table: returned plus filtered out."""
    read = 0
    if plan.get("Relation Name") == Delivery._meta.db_table and plan.get("Alias") == Delivery._meta.db_table:
        loops = plan.get("Actual Loops", 1)
        read += (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * loops
    return read + sum(_read_from_outer_table(child) for child in plan.get("Plans", []))


@pytest.mark.parametrize("breaker_failing", [False, True])
def test_a_claim_reads_about_a_batch_whatever_the_backlog(brand, breaker_failing):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's planner and EXPLAIN ANALYZE; SQLite (the embedded mode) has neither")
    Delivery.objects.bulk_create(_rows(brand, 500, "delivered"))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Delivery._meta.db_table}")  # a quiet hub's statistics: no pending rows
    Delivery.objects.bulk_create(_rows(brand, BACKLOG, "pending", start=500))  # then a burst
    if breaker_failing:  # destination 2 is failing: its oldest open delivery is the probe, the rest are held
        DestinationHealth.objects.create(
            brand=brand,
            source_kind="crm_action",
            source_id=2,
            state=HealthState.FAILING,
            consecutive_failures=3,
            first_failure_at=timezone.now(),
            probe_at=timezone.now() - timedelta(seconds=1),
        )

    with transaction.atomic(), connection.cursor() as cursor:
        claim.relaxed_commit(walk=True)  # as deliveries_claim does
        queryset = claim.claimable(clock.now()).order_by("pk").select_for_update(skip_locked=True, of=("self",))
        sql, params = queryset[: claim.BATCH_SIZE].query.sql_with_params()
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        (plan,) = cursor.fetchone()[0]
    with transaction.atomic():
        claimed = claim.deliveries_claim()

    read = _read_from_outer_table(plan["Plan"])
    assert plan["Plan"]["Actual Rows"] == claim.BATCH_SIZE
    assert read <= 3 * claim.BATCH_SIZE, (read, plan)
    assert len(claimed) == claim.BATCH_SIZE
    assert [d.pk for d in claimed] == sorted(d.pk for d in claimed)
    # Order keys and the breaker still hold: no claimed delivery has an earlier open one with its key,
    # and of the failing destination only its oldest open delivery (the probe) is taken.
    keys = [d.order_key for d in claimed if d.order_key]
    assert len(keys) == len(set(keys))
    for delivery in claimed:
        if delivery.order_key:
            assert not Delivery.objects.filter(
                order_key=delivery.order_key, pk__lt=delivery.pk, state__in=["pending", "paused"]
            ).exists()
    failing = [d for d in claimed if d.source_id == 2]
    if breaker_failing:
        probe = Delivery.objects.filter(source_id=2).exclude(state="delivered").order_by("pk").first()
        assert [d.pk for d in failing] == [probe.pk]
    else:
        assert len(failing) == claim.BATCH_SIZE // 2
