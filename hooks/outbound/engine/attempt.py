"""One attempt: render and send a claimed delivery (no database writes), then
record the attempts and the new states of a batch in one short transaction.

The retry schedule is the EddyDesk contract's: every HUB_RETRY_INTERVAL_SECONDS
(30 min) until HUB_RETRY_WINDOW_SECONDS (24 h) have passed, then failed; a
receiver's Retry-After on 429/503 is honoured up to HUB_RETRY_AFTER_MAX_SECONDS.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from hub import metrics
from synclog import attempts

from .. import registry
from ..models import Delivery
from ..rendering import RenderedRequest, RenderError, render_request
from ..transport import Outcome, send
from . import claim, clock, health, state, traffic

logger = logging.getLogger(__name__)


@dataclass
class SendResult:
    delivery: Delivery
    config: Any = None
    rendered: RenderedRequest | None = None
    outcome: Outcome | None = None
    obsolete: str = ""


def delivery_send(*, delivery: Delivery) -> SendResult:
    """Render and send a claimed delivery once; no database writes (see deliveries_record)."""
    source = registry.get_source(delivery.source_kind)
    config = registry.resolve(delivery.source_kind, delivery.source_id)
    if source is None or config is None:
        return SendResult(delivery, obsolete=f"Not sent: its {delivery.source_kind} was deleted or disabled.")
    try:
        extra = source.prepare(delivery) if source.prepare else {}
    except registry.Obsolete as exc:
        logger.info("Delivery %s obsolete: %s", delivery.pk, exc)
        return SendResult(delivery, config=config, obsolete=f"Not sent: {exc}")
    try:
        rendered = render_request(config, {**delivery.context, **extra})
    except RenderError as exc:
        outcome = Outcome(started_at=time.time(), duration_ms=0.0, request_headers={})
        outcome.error = f"Could not build the request: {exc.reason}"
        return SendResult(delivery, config=config, outcome=outcome)
    outcome = send(
        rendered,
        message_id=delivery.message_id,
        signing_secret=getattr(config, "signing_secret", "") or "",
        verify_ssl=config.verify_ssl,
        timeout=config.timeout_seconds,
    )
    return SendResult(delivery, config=config, rendered=rendered, outcome=outcome)


def _note_on_delivered(result: SendResult) -> str:
    """The source's on_delivered hook after a success (e.g. the CRM's remote id).
    It runs inside the recording transaction; a hook that writes wraps its
    writes in its own transaction.atomic() (a savepoint)."""
    outcome, source = result.outcome, registry.get_source(result.delivery.source_kind)
    if outcome is None or not outcome.succeeded or outcome.status is None or not source or not source.on_delivered:
        return ""
    try:
        return source.on_delivered(result.delivery, result.config, outcome.status, outcome.response_body) or ""
    except Exception as exc:  # noqa: BLE001 - a bad response body never undoes a delivery
        return f"Could not read the response: {exc}"


def _settle(result: SendResult, moment: datetime) -> None:
    """Decide the delivery's next state from its outcome (in memory; written by deliveries_record)."""
    delivery, outcome = result.delivery, result.outcome
    delivery.lease_expires_at = None
    if result.obsolete:
        delivery.state = state.OBSOLETE
        delivery.last_error = result.obsolete[:2000]
        delivery.finished_at = moment
        delivery.next_attempt_at = None
        return
    assert outcome is not None  # delivery_send gives every result that is not obsolete an outcome
    delivery.last_status = outcome.status
    if outcome.succeeded:
        delivery.state = state.DELIVERED
        delivery.last_error = ""
        delivery.finished_at = moment
        delivery.next_attempt_at = None
        return
    delivery.last_error = attempts.masked(outcome.error or f"HTTP {outcome.status}", config=result.config)[:2000]
    permanent = traffic.outcome_verdict(outcome=outcome, config=result.config) == traffic.PERMANENT
    if permanent:
        delivery.last_error = f"Not retried (stop retrying on 4xx is on): {delivery.last_error}"[:2000]
    if outcome.retry_after is not None:
        next_at = moment + timedelta(seconds=traffic.retry_after_delay(outcome.retry_after))
    else:
        next_at = next_on_schedule(delivery, moment)
    if permanent or next_at > delivery.deadline:
        delivery.state = state.FAILED
        delivery.finished_at = moment
        delivery.next_attempt_at = None
        logger.warning(
            "Delivery %s (%s, %s) failed after %d attempts: %s",
            delivery.pk,
            delivery.source_name,
            delivery.event_type,
            delivery.attempts,
            delivery.last_error[:300],
        )
    else:
        delivery.state = state.PENDING
        delivery.next_attempt_at = next_at


def deliveries_record(*, results: list[SendResult], again: bool = False) -> list[Delivery]:
    """Write the attempts (masked, bounded) and the new states in one transaction.

    ``again``: this batch's recording may already have been committed (the
    connection was lost at the commit, see engine.reconnect): only deliveries
    still in flight under this claim (same attempt number) are recorded, so no
    attempt row is written twice."""
    if not results:
        return []
    moment = clock.now()
    rows = []
    with transaction.atomic():
        claim.relaxed_commit()
        if again:
            results = _still_claimed(results)
        for result in results:
            _settle(result, moment)
            if result.obsolete:
                continue
            assert result.outcome is not None  # as in _settle
            delivery, rendered = result.delivery, result.rendered
            rows.append(
                attempts.attempt_build(
                    delivery_id=delivery.pk,
                    brand_id=delivery.brand_id,
                    number=delivery.attempts,
                    config=result.config,
                    outcome=result.outcome,
                    method=rendered.method if rendered else getattr(result.config, "method", ""),
                    url=rendered.url if rendered else "",
                    body=rendered.body if rendered else "",
                    note=attempt_note(delivery=delivery, note=_note_on_delivered(result)),
                )
            )
        attempts.attempts_save(attempts=rows)
        # One UPDATE per distinct outcome (usually one for the whole batch):
        # far cheaper than bulk_update's CASE per row and field.
        groups: dict[tuple, list[int]] = {}
        for result in results:
            d = result.delivery
            key = (d.state, d.last_status, d.last_error, d.finished_at, d.next_attempt_at)
            groups.setdefault(key, []).append(d.pk)
        for (target, last_status, last_error, finished_at, next_attempt_at), pks in groups.items():
            state.deliveries_transition(
                ids=pks,
                source=[state.IN_FLIGHT],
                target=target,
                last_status=last_status,
                last_error=last_error,
                finished_at=finished_at,
                next_attempt_at=next_attempt_at,
                lease_expires_at=None,
            )
        health.health_record(results=results, moment=moment)
    metrics.deliveries_recorded(deliveries=[r.delivery for r in results if not r.obsolete], moment=moment)
    return [r.delivery for r in results]


def _still_claimed(results: list[SendResult]) -> list[SendResult]:
    """The results whose delivery is still in flight with this claim's attempt number."""
    current = dict(
        Delivery.objects.filter(pk__in=[r.delivery.pk for r in results], state=state.IN_FLIGHT).values_list(
            "pk", "attempts"
        )
    )
    return [r for r in results if current.get(r.delivery.pk) == r.delivery.attempts]


def next_on_schedule(delivery: Delivery, moment: datetime) -> datetime:
    """EddyDesk: "repeated every 30 minutes for 24 hours". The attempts keep to a
    grid laid from the start of the delivery's window (the change, or "Retry now"):
    0, 30 min, 1 h, ... 24 h, so a late worker or a slow receiver never shifts
    the later attempts, and the last one is due at the deadline itself."""
    interval = max(1, int(settings.HUB_RETRY_INTERVAL_SECONDS))
    start = delivery.deadline - timedelta(seconds=settings.HUB_RETRY_WINDOW_SECONDS)
    steps = int((moment - start).total_seconds() // interval) + 1
    return start + timedelta(seconds=steps * interval)


def delivery_attempt(*, delivery: Delivery) -> Delivery:
    """Send a claimed delivery once and record the attempt. Never raises for HTTP failures."""
    deliveries_record(results=[delivery_send(delivery=delivery)])
    return delivery


def attempt_note(*, delivery: Delivery, note: str) -> str:
    """The note of an attempt row: "Replay" on every attempt of a replayed delivery (auditors see it in the Logs)."""
    if delivery.replayed_at is None:
        return note
    return f"Replay · {note}" if note else "Replay"
