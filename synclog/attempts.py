"""Building DeliveryAttempt rows: what was sent and answered, masked and bounded
before it is stored (STYLE.md: mask Authorization, signatures, cookies and
query-string keys BEFORE saving; keep successes too).

The outbound engine hands over its request and outcome as plain values (no
import of ``hooks``: synclog sits below it). :func:`masked` is how the engine
masks a configuration's own secrets outside an attempt row (the delivery's last
error, the admin's request preview); the masking itself is hub.redaction's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hub.redaction import config_secrets, mask, redact_headers, redact_url

from .models import DeliveryAttempt

STORED_BODY_LIMIT = 32 * 1024


def masked(text: str, *, config: Any) -> str:
    """``text`` with ``config``'s secrets masked (previews, errors)."""
    return mask(text, secrets=config_secrets(config))


def _bounded(text: str) -> str:
    return text if len(text) <= STORED_BODY_LIMIT else text[:STORED_BODY_LIMIT] + "\n[truncated]"


def attempt_build(
    *,
    delivery_id: int,
    brand_id: int,
    number: int,
    config: Any,
    outcome: Any,
    method: str,
    url: str,
    body: str,
    note: str = "",
) -> DeliveryAttempt:
    """One unsaved attempt row. ``outcome`` is the transport's (started_at,
    duration_ms, request/response headers, status, response_body, error,
    succeeded); ``url`` and ``body`` are empty when the request could not be built."""
    secrets = config_secrets(config)
    return DeliveryAttempt(
        delivery_id=delivery_id,
        brand_id=brand_id,
        number=number,
        started_at=datetime.fromtimestamp(outcome.started_at, tz=UTC),
        duration_ms=round(outcome.duration_ms, 2),
        method=method,
        url=redact_url(url, secrets=secrets)[:2000] if url else "",
        request_headers=redact_headers(outcome.request_headers, secrets=secrets),
        request_body=_bounded(mask(body, secrets=secrets)) if body else "",
        response_status=outcome.status,
        response_headers=redact_headers(outcome.response_headers, secrets=secrets),
        response_body=_bounded(mask(outcome.response_body, secrets=secrets)),
        error=mask(outcome.error, secrets=secrets)[:2000],
        note=note[:500],
        succeeded=outcome.succeeded,
    )


def attempts_save(*, attempts: list[DeliveryAttempt]) -> None:
    DeliveryAttempt.objects.bulk_create(attempts)
