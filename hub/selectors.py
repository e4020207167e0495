"""Reads for brands and credentials: the inbound authentication check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from .models import Brand, Credential
from .services import secret_hash

LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass
class AuthResult:
    """Outcome of checking an inbound key: status 0 means allowed."""

    status: int
    brand: Brand | None = None
    credential: Credential | None = None
    reason: str = ""


def credential_authenticate(*, brand_slug: str, integration: str, secret: str | None, client_ip: str) -> AuthResult:
    """One indexed query on the key's hash, brand joined in.

    Missing key: 401. Wrong, revoked or another brand's key: 403. Unknown or
    inactive brand: 404. A known key called from outside its networks: 403.
    """
    if not secret:
        return AuthResult(401, reason="missing")
    digest = secret_hash(secret)
    credential = Credential.objects.select_related("brand").filter(secret_hash=digest).first()
    if (
        credential is None
        or not hmac.compare_digest(credential.secret_hash, digest)
        or credential.brand.slug != brand_slug
        or credential.integration != integration
        or credential.revoked_at is not None
    ):
        if not Brand.objects.filter(slug=brand_slug, is_active=True).exists():
            return AuthResult(404, reason="unknown brand")
        return AuthResult(403, reason="invalid key")
    if not credential.brand.is_active:
        return AuthResult(404, reason="unknown brand")
    if not credential.allows_address(client_ip):
        return AuthResult(403, brand=credential.brand, credential=credential, reason="network not allowed")
    return AuthResult(0, brand=credential.brand, credential=credential)


def credential_needs_touch(credential: Credential) -> bool:
    last = credential.last_used_at
    return last is None or timezone.now() - last > LAST_USED_RESOLUTION
