"""Writes for brands and credentials."""

from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import Brand, Credential, Integration

SECRET_BYTES = 32
PREFIX_LENGTH = 10


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def brand_create(*, slug: str, name: str, default_region: str = "NL", time_zone: str = "Europe/Amsterdam") -> Brand:
    brand = Brand(slug=slug, name=name, default_region=default_region.upper(), time_zone=time_zone)
    brand.full_clean()
    brand.save()
    return brand


def brand_touch(*, brand_id: int) -> None:
    """Invalidate every cached lookup answer of the brand (same transaction as the change)."""
    Brand.objects.filter(pk=brand_id).update(generation=F("generation") + 1)


def credential_issue(
    *, brand: Brand, integration: str, name: str = "", allowed_networks: list | None = None
) -> tuple[Credential, str]:
    """Generate a key; the clear secret is returned once and never stored."""
    if integration not in Integration.values:
        raise ValueError(f"Unknown integration {integration!r}; one of {', '.join(Integration.values)}.")
    secret = f"hh_{secrets.token_urlsafe(SECRET_BYTES)}"
    credential = Credential(
        brand=brand,
        integration=integration,
        name=name,
        prefix=secret[:PREFIX_LENGTH],
        secret_hash=secret_hash(secret),
        allowed_networks=allowed_networks or [],
    )
    credential.full_clean()
    with transaction.atomic():
        credential.save()
    return credential, secret


def credential_revoke(*, credential: Credential) -> Credential:
    if credential.revoked_at is None:
        credential.revoked_at = timezone.now()
        credential.save(update_fields=["revoked_at"])
    return credential
