"""Building DeliveryAttempt rows: what was sent and answered, masked and bounded
before it is stored (STYLE.md: mask Authorization, signatures, cookies and
query-string keys BEFORE saving; keep successes too).

The outbound engine hands over its request and outcome as plain values (no
import of ``hooks``: synclog sits below it). :func:`mask` is the one place the
engine masks a configuration's own secrets (attempt rows, the delivery's last
error, the admin's request preview).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from hub.redaction import MASK, redact_headers, redact_text, redact_url

from .models import DeliveryAttempt

STORED_BODY_LIMIT = 32 * 1024


def secrets_of(config: Any) -> list[str]:
    """A request configuration's secrets as they may appear on the wire."""
    values = [getattr(config, name, "") or "" for name in ("auth_password", "api_key", "signing_secret")]
    if getattr(config, "auth_type", "") == "basic":
        raw = f"{config.auth_username}:{config.auth_password or ''}".encode()
        values.append(base64.b64encode(raw).decode())
    return [value for value in values if len(value) >= 4]


def mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return redact_text(text)


def masked(text: str, *, config: Any) -> str:
    """``text`` with ``config``'s secrets masked (previews, errors)."""
    return mask(text, secrets_of(config))


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
    secrets = secrets_of(config)
    return DeliveryAttempt(
        delivery_id=delivery_id,
        brand_id=brand_id,
        number=number,
        started_at=datetime.fromtimestamp(outcome.started_at, tz=UTC),
        duration_ms=round(outcome.duration_ms, 2),
        method=method,
        url=mask(redact_url(url), secrets)[:2000] if url else "",
        request_headers={k: mask(v, secrets) for k, v in redact_headers(outcome.request_headers).items()},
        request_body=_bounded(mask(body, secrets)) if body else "",
        response_status=outcome.status,
        response_headers=redact_headers(outcome.response_headers),
        response_body=_bounded(mask(outcome.response_body, secrets)),
        error=mask(outcome.error, secrets)[:2000],
        note=note[:500],
        succeeded=outcome.succeeded,
    )


def attempts_save(*, attempts: list[DeliveryAttempt]) -> None:
    DeliveryAttempt.objects.bulk_create(attempts)
