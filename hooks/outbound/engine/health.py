"""Destination health: one row per destination (a CRM sync action or a rule,
the engine's ``source_kind`` + ``source_id``), graduated alerts, auto-disable
with paused deliveries, and the circuit breaker (docs/outbound-webhooks.md,
"Health").

* :func:`health_record` is called by the engine in the transaction that records
  a batch's attempts: a failure makes the destination *failing* (consecutive
  failures, first failure time), a success makes it *healthy* again.
* While failing, the circuit breaker (:func:`breaker_allows`, part of the claim
  query) lets only the destination's oldest open delivery be claimed, and not
  before ``probe_at`` (the probe's retry time): one probe at a time. When the
  probe succeeds, the destination is healthy and the rest flow at once, in order.
* Alerts go to the brand's admins once per step: 50/70/90/100 % of
  HUB_HEALTH_ALERT_THRESHOLD consecutive failures, and failing for
  HUB_HEALTH_ALERT_AFTER_SECONDS; by e-mail and by the brand's operational
  webhook (its own source kind, never health-tracked, so it cannot alert about
  itself). A recovery after an alert sends ``destination.recovered``.
* After HUB_HEALTH_DISABLE_AFTER_SECONDS of continuous failure the destination
  is disabled (its ``enabled`` switch is turned off) and its pending deliveries
  are paused; :func:`destination_reenable` (the admin action, or switching it on
  in its form) moves them back to pending with a fresh retry window.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.mail import send_mail
from django.db import models, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.urls import reverse

from hub.redaction import mask

from .. import registry
from ..models import Delivery, DestinationHealth, HealthState, OperationalWebhook
from ..transport import signing_secret_new
from . import clock, outbox, state

logger = logging.getLogger(__name__)

OPS_KIND = "ops_webhook"
TRACKED_KINDS = ("crm_action", "rule")  # the operational webhook is never tracked: no alert about itself
ALERT_STEPS = (0.5, 0.7, 0.9, 1.0)
FAILING, DISABLED, RECOVERED = "destination.failing", "destination.disabled", "destination.recovered"


def alert_threshold() -> int:
    return max(1, int(getattr(settings, "HUB_HEALTH_ALERT_THRESHOLD", 100)))


def alert_after_seconds() -> int:
    return int(getattr(settings, "HUB_HEALTH_ALERT_AFTER_SECONDS", 24 * 3600))


def disable_after_seconds() -> int:
    """0 turns auto-disable off."""
    return int(getattr(settings, "HUB_HEALTH_DISABLE_AFTER_SECONDS", 5 * 24 * 3600))


# ------------------------------------------------------------------ the breaker (claim query)


def breaker_enabled() -> bool:
    """HUB_CIRCUIT_BREAKER (default on). Off: a failing destination gets every
    due delivery on its retry schedule, as before issue 11 (health, alerts and
    auto-disable still work); the claim query then has no breaker filter."""
    return bool(getattr(settings, "HUB_CIRCUIT_BREAKER", True))


def breaker_allows(moment: datetime) -> Any:
    """A filter for the claim query: a delivery is held when its destination is
    disabled, or failing and either its probe time has not come or an older
    open delivery of the destination exists (that one is the probe). One
    indexed NOT EXISTS on the health row: a destination without a row, or with
    a healthy row, passes at the first test. With the breaker off: no filter
    (a disabled destination's deliveries are paused, and new ones are not made).

    Written as SQL, not as nested ``Exists(OuterRef(OuterRef(...)))``: building
    that expression cost the claim about 3 ms of Python per batch (measured
    with bench/delivery_cpu.py --guards-rounds), the breaker's whole cost when
    nothing is failing."""
    if not breaker_enabled():
        return Q()
    connection = transaction.get_connection()
    moment_value = connection.ops.adapt_datetimefield_value(moment)
    return RawSQL(_BREAKER_SQL, [moment_value], output_field=models.BooleanField())  # noqa: S611 - constant SQL


HELD_STATES = (HealthState.FAILING, HealthState.DISABLED)
# The outer query's table is Delivery's own (claim.claimable filters it without joins or an alias).
_D, _H = Delivery._meta.db_table, DestinationHealth._meta.db_table
_BREAKER_SQL = f"""NOT EXISTS (
    SELECT 1 FROM {_H} h
    WHERE h.source_kind = {_D}.source_kind AND h.source_id = {_D}.source_id
      AND h.state IN ('{HealthState.FAILING.value}', '{HealthState.DISABLED.value}')
      AND (h.state = '{HealthState.DISABLED.value}' OR h.probe_at > %s OR EXISTS (
          SELECT 1 FROM {_D} e
          WHERE e.source_kind = h.source_kind AND e.source_id = h.source_id
            AND e.id < {_D}.id AND e.state IN ('{state.PENDING.value}', '{state.IN_FLIGHT.value}'))))"""  # noqa: S608 - names and values from the models


def breaker_trips(result: Any) -> bool:  # an attempt.SendResult (attempt imports this module)
    """Within a claimed batch: after this failure, the rest of the batch for
    the same destination is given back unsent (the breaker then holds it)."""
    outcome = result.outcome
    return (
        breaker_enabled()
        and result.delivery.source_kind in TRACKED_KINDS
        and not result.obsolete
        and outcome is not None
        and not outcome.succeeded
    )


# ------------------------------------------------------------------ recording


@dataclass
class _Seen:
    delivery: Delivery
    failures: int = 0
    succeeded: bool = False  # the batch's last word for this destination was a success
    error: str = ""
    retry_at: datetime | None = None


def health_record(*, results: list[Any], moment: datetime) -> None:  # attempt.SendResult
    """Update the destinations' health from a recorded batch (inside the
    recording transaction). One SELECT per batch; a batch of successes for
    destinations that never failed writes nothing."""
    seen: dict[tuple[str, int], _Seen] = {}
    for result in results:
        delivery = result.delivery
        if delivery.source_kind not in TRACKED_KINDS or result.obsolete or result.outcome is None:
            continue
        entry = seen.setdefault((delivery.source_kind, delivery.source_id), _Seen(delivery))
        entry.delivery = delivery
        if result.outcome.succeeded:
            entry.failures, entry.succeeded, entry.error = 0, True, ""
        else:
            entry.failures += 1
            entry.succeeded = False
            entry.error = delivery.last_error
            entry.retry_at = delivery.next_attempt_at or moment + timedelta(seconds=settings.HUB_RETRY_INTERVAL_SECONDS)
    if not seen:
        return
    rows = _rows_locked(list(seen))
    missing = [key for key, entry in seen.items() if key not in rows and not entry.succeeded]
    if missing:
        # First failure: two workers may record one at the same moment; the
        # unique constraint decides, the loser reads the winner's row (locked).
        DestinationHealth.objects.bulk_create(
            [
                DestinationHealth(brand_id=seen[key].delivery.brand_id, source_kind=key[0], source_id=key[1])
                for key in missing
            ],
            ignore_conflicts=True,
        )
        rows.update(_rows_locked(missing))
    for key, entry in seen.items():
        row = rows.get(key)
        if entry.succeeded:
            if row is not None and row.state == HealthState.FAILING:
                _recover(row, entry, moment)
            continue
        assert row is not None  # created above
        _fail(row, entry, moment)


def _rows_locked(keys: list[tuple[str, int]]) -> dict[tuple[str, int], DestinationHealth]:
    query = Q()
    for kind, source_id in keys:
        query |= Q(source_kind=kind, source_id=source_id)
    return {
        (row.source_kind, row.source_id): row
        for row in DestinationHealth.objects.select_for_update(of=("self",)).filter(query).select_related("brand")
    }


def _recover(row: DestinationHealth, entry: _Seen, moment: datetime) -> None:
    alerted = row.alert_step > 0 or row.alerted_duration
    if alerted:
        _alert(row, RECOVERED, moment)
    row.state = HealthState.HEALTHY
    row.consecutive_failures = 0
    row.first_failure_at = row.probe_at = None
    row.alert_step, row.alerted_duration = 0, False
    row.name = entry.delivery.source_name
    row.save()


def _fail(row: DestinationHealth, entry: _Seen, moment: datetime) -> None:
    row.name = entry.delivery.source_name
    row.consecutive_failures += entry.failures
    row.first_failure_at = row.first_failure_at or moment
    row.last_failure_at = moment
    row.last_error = entry.error[:2000]
    row.probe_at = entry.retry_at
    if row.state != HealthState.DISABLED:
        row.state = HealthState.FAILING
    row.save()
    if row.state == HealthState.DISABLED:
        return
    failing_for = (moment - row.first_failure_at).total_seconds()
    if disable_after_seconds() and failing_for >= disable_after_seconds():
        since = f"{row.first_failure_at:%Y-%m-%d %H:%M} UTC"
        reason = f"Failed continuously for {_duration(failing_for)} (since {since}): {row.last_error[:300]}"
        _disable(row, moment, reason=reason)
        return
    step = sum(1 for fraction in ALERT_STEPS if row.consecutive_failures >= math.ceil(fraction * alert_threshold()))
    long_failing = alert_after_seconds() > 0 and failing_for >= alert_after_seconds()
    if step > row.alert_step or (long_failing and not row.alerted_duration):
        row.alert_step = max(step, row.alert_step)
        row.alerted_duration = row.alerted_duration or long_failing
        row.save(update_fields=["alert_step", "alerted_duration"])
        _alert(row, FAILING, moment)


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{int(seconds // 60)} minutes"


# ------------------------------------------------------------------ disable and re-enable


def _config_model(kind: str) -> Any:
    # By label: the rules app uses this one, never the other way round.
    return apps.get_model({"crm_action": "outbound.CrmSyncAction", "rule": "rules.EventRule"}[kind])


def _disable(row: DestinationHealth, moment: datetime, *, reason: str) -> None:
    row.state = HealthState.DISABLED
    row.disabled_at = moment
    row.disabled_reason = reason[:2000]
    row.save()
    # .update(): no history entry and no save signal (the re-enable hook) for the engine's own switch-off.
    _config_model(row.source_kind).objects.filter(pk=row.source_id).update(enabled=False)
    paused = state.deliveries_transition(
        ids=_destination_deliveries(row).filter(state=state.PENDING).values_list("pk", flat=True),
        source=[state.PENDING],
        target=state.PAUSED,
    )
    logger.warning(
        "Destination %s (%s %s) disabled, %d deliveries paused: %s",
        row.name,
        row.source_kind,
        row.source_id,
        paused,
        reason,
    )
    _alert(row, DISABLED, moment)


def _destination_deliveries(row: DestinationHealth) -> models.QuerySet[Delivery]:
    return Delivery.objects.filter(source_kind=row.source_kind, source_id=row.source_id)


def destination_reenable(*, source_kind: str, source_id: int) -> int:
    """Switch a disabled destination back on: healthy, its ``enabled`` switch on,
    its paused deliveries pending again in their order, with a fresh retry
    window (the time spent paused never counts against the 24 h window).
    Returns how many deliveries were resumed."""
    moment = clock.now()
    with transaction.atomic():
        row = DestinationHealth.objects.select_for_update().filter(source_kind=source_kind, source_id=source_id).first()
        _config_model(source_kind).objects.filter(pk=source_id).update(enabled=True)
        if row is None or row.state != HealthState.DISABLED:
            return 0
        row.state = HealthState.HEALTHY
        row.consecutive_failures = 0
        row.first_failure_at = row.probe_at = row.disabled_at = None
        row.alert_step, row.alerted_duration = 0, False
        row.disabled_reason = ""
        row.save()
        ids = list(_destination_deliveries(row).filter(state=state.PAUSED).values_list("pk", flat=True))
        resumed = state.deliveries_transition(
            ids=ids,
            source=[state.PAUSED],
            target=state.PENDING,
            next_attempt_at=moment,
            deadline=moment + timedelta(seconds=settings.HUB_RETRY_WINDOW_SECONDS),
            lease_expires_at=None,
        )
        transaction.on_commit(lambda: outbox.deliveries_enqueue(ids=ids, force=True))
    return resumed


def on_config_saved(sender: type, instance: Any, **kwargs: Any) -> None:
    """post_save of a sync action or rule: switching a disabled destination on
    in its form (or config-as-code) re-enables it like the admin action."""
    if not getattr(instance, "enabled", False):
        return
    kind = "rule" if sender.__name__ == "EventRule" else "crm_action"
    if DestinationHealth.objects.filter(source_kind=kind, source_id=instance.pk, state=HealthState.DISABLED).exists():
        destination_reenable(source_kind=kind, source_id=instance.pk)


# ------------------------------------------------------------------ alerts


def destination_admin_url(*, source_kind: str, source_id: int) -> str:
    base = settings.HUB_ADMIN_BASE_URL.rstrip("/")
    if source_kind == "rule":
        return base + reverse("admin:rules_eventrule_change", args=[source_id])
    from ..models import CrmSyncAction

    sync_id = CrmSyncAction.objects.filter(pk=source_id).values_list("sync_id", flat=True).first()
    return base + (reverse("admin:outbound_crmsync_change", args=[sync_id]) if sync_id else "/admin/")


def alert_payload(*, row: DestinationHealth, event_type: str, moment: datetime) -> dict[str, Any]:
    """The operational webhook's JSON (Standard Webhooks: type, timestamp, data); the e-mail says the same."""
    return {
        "type": event_type,
        "timestamp": moment.isoformat(),
        "data": {
            "brand": row.brand.slug,
            "destination": {
                "name": row.name,
                "kind": "crm_sync_action" if row.source_kind == "crm_action" else "rule",
                "id": row.source_id,
                "admin_url": destination_admin_url(source_kind=row.source_kind, source_id=row.source_id),
            },
            "state": row.state,
            "consecutive_failures": row.consecutive_failures,
            "first_failure_at": row.first_failure_at.isoformat() if row.first_failure_at else None,
            "last_error": mask(row.last_error[:500]),
            "disabled_reason": mask(row.disabled_reason[:500]),
            "alert_threshold": alert_threshold(),
        },
    }


def _alert(row: DestinationHealth, event_type: str, moment: datetime) -> None:
    """Tell the brand's admins (e-mail after commit) and its operational webhook
    (an outbox row in this transaction, sent by the engine)."""
    payload = alert_payload(row=row, event_type=event_type, moment=moment)
    hook = OperationalWebhook.objects.filter(brand_id=row.brand_id, enabled=True).first()
    if hook is not None:
        outbox.delivery_create(
            brand_id=row.brand_id,
            source_kind=OPS_KIND,
            source_id=hook.pk,
            source_name=f"Operational webhook: {row.name}"[:300],
            event_type=event_type,
            context={"payload": json.dumps(payload, sort_keys=True)},
        )
    transaction.on_commit(lambda: _mail(row.brand_id, payload), robust=True)


def brand_admin_emails(*, brand_id: int) -> list[str]:
    from hub.models import Membership, Role

    return sorted(
        set(
            Membership.objects.filter(brand_id=brand_id, role=Role.ADMIN, user__is_active=True)
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    )


def _mail(brand_id: int, payload: dict[str, Any]) -> None:
    recipients = brand_admin_emails(brand_id=brand_id)
    if not recipients:
        return
    data, destination = payload["data"], payload["data"]["destination"]
    headline = {
        FAILING: f"is failing ({data['consecutive_failures']} failures in a row)",
        DISABLED: "was disabled after failing for too long",
        RECOVERED: "has recovered",
    }[payload["type"]]
    lines = [
        f"{destination['name']} {headline}.",
        "",
        f"Event: {payload['type']}",
        f"Consecutive failures: {data['consecutive_failures']} (alert threshold {data['alert_threshold']})",
        f"Failing since: {data['first_failure_at'] or '-'}",
        f"Last error: {data['last_error'] or '-'}",
    ]
    if data["disabled_reason"]:
        lines.append(f"Disabled: {data['disabled_reason']}")
    lines += ["", f"Open it in the admin: {destination['admin_url']}"]
    send_mail(
        subject=f"[Hookhub] {destination['name']} {headline}"[:200],
        message="\n".join(lines),
        from_email=None,
        recipient_list=recipients,
    )


# ------------------------------------------------------------------ the operational webhook as an engine source


@dataclass
class OpsRequest:
    """The request configuration of an operational webhook delivery (what render_request reads)."""

    url: str
    signing_secret: str
    method: str = "POST"
    headers: str = ""
    body: str = "{{ payload|raw }}"
    body_format: str = "json"
    auth_type: str = "none"
    verify_ssl: bool = True
    timeout_seconds: int = 10


def operational_webhook_set(*, brand_id: int, url: str) -> str:
    """Point the brand's operational webhook at ``url`` with a new signing secret (returned once)."""
    secret = signing_secret_new()
    OperationalWebhook.objects.update_or_create(
        brand_id=brand_id, defaults={"url": url, "signing_secret": secret, "enabled": True}
    )
    return secret


def _ops_resolve(hook_id: int) -> OpsRequest | None:
    hook = OperationalWebhook.objects.filter(pk=hook_id, enabled=True).first()
    return OpsRequest(url=hook.url, signing_secret=hook.signing_secret or "") if hook else None


registry.register_source(OPS_KIND, _ops_resolve)  # type: ignore[arg-type]


# ------------------------------------------------------------------ selectors for the admin


def health_by_source(*, source_kind: str, source_ids: list[int]) -> dict[int, DestinationHealth]:
    return {
        row.source_id: row
        for row in DestinationHealth.objects.filter(source_kind=source_kind, source_id__in=source_ids)
    }


def unhealthy(*, brand_ids: list[int] | None = None) -> models.QuerySet[DestinationHealth]:
    """Failing and disabled destinations (the dashboard), worst first."""
    rows = DestinationHealth.objects.filter(state__in=HELD_STATES).select_related("brand")
    if brand_ids is not None:
        rows = rows.filter(brand_id__in=brand_ids)
    return rows.order_by("state", "first_failure_at")  # "disabled" sorts before "failing"
