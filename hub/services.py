"""Writes for brands and credentials."""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets

from django.db import connection, transaction
from django.utils import timezone

from . import generations
from .events import brand_phone_address_types_changed, brand_time_zone_changed
from .models import Brand, Credential, Integration, Membership, Role

logger = logging.getLogger(__name__)

SECRET_BYTES = 32
PREFIX_LENGTH = 10


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def brand_create(*, slug: str, name: str, default_region: str = "NL", time_zone: str = "Europe/Amsterdam") -> Brand:
    brand = Brand(slug=slug, name=name, default_region=default_region.upper(), time_zone=time_zone)
    brand.full_clean()
    brand.save()
    return brand


def brand_touch(*, brand_id: int) -> int | None:
    """Invalidate everything cached about the brand: lookup answers and its keys
    (same transaction as the change). The new generation is written to the
    board (hub.generations) before the change commits, so no process uses an
    older cached entry once the change is visible; a board that cannot be
    written raises, and the change rolls back with it. Returns the new
    generation (None for a brand being deleted)."""
    table = connection.ops.quote_name(Brand._meta.db_table)
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        # One statement (PostgreSQL and SQLite >= 3.35 both return the new value).
        cursor.execute(
            f"UPDATE {table} SET generation = generation + 1 WHERE id = %s RETURNING generation",  # noqa: S608
            [brand_id],
        )
        row = cursor.fetchone()
        if row is None:  # the brand is being deleted (hub.models: brand_deleted)
            return None
        generation = row[0]
        generations.board().publish(brand_id, generation)
    transaction.on_commit(functools.partial(_republish, brand_id=brand_id, generation=generation))
    return generation


def _republish(*, brand_id: int, generation: int) -> None:
    """After the commit, once more: the board's value may have gone missing (Redis
    restarted) and been filled from the database while the change was in flight."""
    try:
        generations.board().publish(brand_id, generation)
    except Exception:  # noqa: BLE001 - the value was already published before the commit
        logger.warning("Generation board: publishing again after the commit failed", exc_info=True)


def brand_forget(*, brand_id: int) -> None:
    """A deleted brand: no cached entry of it may match again (before its deletion commits)."""
    generations.board().publish(brand_id, generations.DELETED)


def brand_update(*, brand: Brand, update_fields: list[str] | None = None) -> Brand:
    """Save a brand its caller changed and validated (admin form, config import).

    One transaction that also invalidates the brand's cached lookup answers
    (they carry the brand's region and links) and, when the time zone changed,
    tells the apps (hub.events.brand_time_zone_changed): customers rebuilds the
    brand's stored Omnidesk answers, whose timeline ``lastUpdate`` is rendered in
    the brand's time zone (customers.documents); likewise the stored M8Com contacts
    when the address types counted as a phone changed
    (hub.events.brand_phone_address_types_changed: the card's phoneNumbers). The cache
    generation is never written from the instance (a form loaded before a
    change elsewhere holds an old one; writing it back could let a later
    generation meet answers cached under it before): it is only ever bumped.
    """
    fields = [
        f.name
        for f in Brand._meta.concrete_fields
        if not f.primary_key and f.name != "generation" and (update_fields is None or f.name in update_fields)
    ]
    with transaction.atomic():
        if brand._state.adding or brand.pk is None:
            brand.save()
            return brand
        stored = (
            Brand.objects.select_for_update()
            .filter(pk=brand.pk)
            .values_list("time_zone", "phone_address_types")
            .first()
        )
        if fields:
            brand.save(update_fields=fields)  # bumps the generation (hub.models: every saved brand)
        else:
            brand_touch(brand_id=brand.pk)
        # In this transaction: a subscriber's failure undoes the change (customers rebuilds).
        if stored is not None and stored[0] != brand.time_zone:
            brand_time_zone_changed.send(
                sender=Brand, brand_id=brand.pk, old_time_zone=stored[0], new_time_zone=brand.time_zone
            )
        if stored is not None and list(stored[1] or []) != list(brand.phone_address_types or []):
            brand_phone_address_types_changed.send(
                sender=Brand, brand_id=brand.pk, old_types=stored[1], new_types=brand.phone_address_types
            )
        brand.generation = Brand.objects.filter(pk=brand.pk).values_list("generation", flat=True).get()
    return brand


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


def membership_grant(*, user, brand: Brand, role: str) -> Membership:
    """Give a user a role in a brand (or change it); the user becomes staff so
    the admin lets them in. Roles are memberships, not Django groups: see docs/roles.md."""
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}; one of {', '.join(Role.values)}.")
    with transaction.atomic():
        membership, _ = Membership.objects.update_or_create(user=user, brand=brand, defaults={"role": role})
        staff_ensure(user=user)
    return membership


def staff_ensure(*, user) -> None:
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])


def membership_save(*, membership: Membership) -> Membership:
    """An admin form's membership: a new one, a new role, or — when the form moved
    an existing row to another user or brand — the old access revoked and the new
    one granted, in one transaction (both recorded in the history)."""
    with transaction.atomic():
        if membership.pk is not None:
            original = Membership.objects.filter(pk=membership.pk).first()
            if original is not None and (original.user_id, original.brand_id) != (
                membership.user_id,
                membership.brand_id,
            ):
                original.delete()
        return membership_grant(user=membership.user, brand=membership.brand, role=membership.role)
