"""Reads for brands and credentials: the inbound authentication check."""

from __future__ import annotations

import hmac
from collections.abc import Callable
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


CredentialFinder = Callable[[str], "tuple[Credential, Brand] | None"]


def credential_by_hash(digest: str) -> tuple[Credential, Brand] | None:
    """The credential with this key hash and its brand: one indexed query, brand joined in."""
    credential = Credential.objects.select_related("brand").filter(secret_hash=digest).first()
    return None if credential is None else (credential, credential.brand)


def credential_authenticate(
    *,
    brand_slug: str,
    integration: str,
    secret: str | None,
    client_ip: str,
    find: CredentialFinder = credential_by_hash,
) -> AuthResult:
    """The one definition of an accepted key: an active (unrevoked) credential
    of this brand and integration, of an active brand, called from one of the
    credential's allowed networks. A good key costs the one query of ``find``.

    Missing key: 401. Wrong, revoked or another brand's or integration's key:
    403. Unknown or inactive brand: 404. A known key called from outside its
    networks: 403. ``find`` fetches (credential, brand) by the key's hash; the
    lookup endpoints pass SQL prepared once (hooks.inbound.common), everything
    else the ORM's :func:`credential_by_hash`.
    """
    if not secret:
        return AuthResult(401, reason="missing")
    digest = secret_hash(secret)
    found = find(digest)
    if found is not None:
        credential, brand = found
        if (
            hmac.compare_digest(credential.secret_hash, digest)
            and brand.slug == brand_slug
            and credential.integration == integration
            and credential.revoked_at is None
        ):
            if not brand.is_active:
                return AuthResult(404, reason="unknown brand")
            if not credential.allows_address(client_ip):
                return AuthResult(403, brand=brand, credential=credential, reason="network not allowed")
            return AuthResult(0, brand=brand, credential=credential)
    # Tell an unknown brand from a wrong key (only when the key is not accepted).
    if not Brand.objects.filter(slug=brand_slug, is_active=True).exists():
        return AuthResult(404, reason="unknown brand")
    return AuthResult(403, reason="invalid key")


def credential_needs_touch(credential: Credential) -> bool:
    last = credential.last_used_at
    return last is None or timezone.now() - last > LAST_USED_RESOLUTION
