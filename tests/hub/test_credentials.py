"""Inbound credentials (issue 2, ARCHITECTURE "Security model"): issue, store hashed, rotate, revoke, networks."""

import hashlib

import pytest
from django.core.exceptions import ValidationError

from hub.models import Brand, Credential
from hub.selectors import credential_authenticate, credential_needs_touch
from hub.services import brand_create, credential_issue, credential_revoke

pytestmark = pytest.mark.django_db


def auth(secret, *, slug="acme", integration="omnidesk", ip="198.51.100.7"):
    return credential_authenticate(brand_slug=slug, integration=integration, secret=secret, client_ip=ip)


def test_issued_secret_is_random_shown_once_and_stored_only_as_a_hash(brand):
    credential, secret = credential_issue(brand=brand, integration="omnidesk", name="prod")
    _, other = credential_issue(brand=brand, integration="omnidesk")
    assert secret != other
    assert secret.startswith("hh_") and len(secret) >= 3 + 43  # 32 random bytes, base64url
    stored = Credential.objects.filter(pk=credential.pk).values().get()
    assert stored["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert stored["prefix"] == secret[:10]
    assert secret not in {str(value) for value in stored.values()}
    assert str(credential) == f"Omnidesk customer lookup key {secret[:10]}… (Acme)"
    # History rows keep no hash either.
    assert all("secret_hash" not in row for row in Credential.history.values())


def test_unknown_integration_and_bad_networks_are_refused(brand):
    with pytest.raises(ValueError, match="Unknown integration 'zendesk'"):
        credential_issue(brand=brand, integration="zendesk")
    with pytest.raises(ValidationError) as excinfo:
        credential_issue(brand=brand, integration="m8com", allowed_networks=["10.0.0.0/8", "not-a-net"])
    assert excinfo.value.message_dict == {"allowed_networks": ["Not a network in CIDR notation: not-a-net"]}
    assert Credential.objects.count() == 0


def test_authentication_statuses(brand, other_brand):
    _, secret = credential_issue(brand=brand, integration="omnidesk")
    _, m8com = credential_issue(brand=brand, integration="m8com")
    _, foreign = credential_issue(brand=other_brand, integration="omnidesk")
    ok = auth(secret)
    assert (ok.status, ok.brand, ok.credential.integration) == (0, brand, "omnidesk")
    assert auth(None).status == 401
    assert auth("").status == 401
    assert auth("hh_wrong").status == 403
    assert auth(m8com).status == 403  # right brand, other integration
    assert auth(foreign).status == 403  # another brand's key never opens this brand
    assert auth(secret, slug="globex").status == 403
    assert auth(secret, slug="nope").status == 404
    assert auth("hh_wrong", slug="nope").status == 404
    Brand.objects.filter(pk=brand.pk).update(is_active=False)
    assert auth(secret).status == 404


def test_rotation_several_active_keys_then_revoke_the_old_one(brand):
    old, old_secret = credential_issue(brand=brand, integration="servicehooks", name="2025")
    _, new_secret = credential_issue(brand=brand, integration="servicehooks", name="2026")
    assert auth(old_secret, integration="servicehooks").status == 0
    assert auth(new_secret, integration="servicehooks").status == 0
    credential_revoke(credential=old)
    revoked_at = Credential.objects.get(pk=old.pk).revoked_at
    assert revoked_at is not None
    assert auth(old_secret, integration="servicehooks").status == 403
    assert auth(new_secret, integration="servicehooks").status == 0
    credential_revoke(credential=old)  # again: no change
    assert Credential.objects.get(pk=old.pk).revoked_at == revoked_at
    assert list(Credential.objects.active().values_list("name", flat=True)) == ["2026"]


def test_allowed_networks(brand):
    _, secret = credential_issue(
        brand=brand, integration="omnidesk", allowed_networks=["203.0.113.0/24", "2001:db8::/32"]
    )
    assert auth(secret, ip="203.0.113.200").status == 0
    assert auth(secret, ip="2001:db8::1").status == 0
    refused = auth(secret, ip="198.51.100.1")
    assert (refused.status, refused.reason) == (403, "network not allowed")
    assert auth(secret, ip="").status == 403
    assert auth(secret, ip="garbage").status == 403
    _, open_secret = credential_issue(brand=brand, integration="omnidesk")
    assert auth(open_secret, ip="198.51.100.1").status == 0


def test_last_used_is_touched_at_most_once_a_minute(brand):
    credential, _ = credential_issue(brand=brand, integration="omnidesk")
    assert credential_needs_touch(credential)
    from django.utils import timezone

    credential.last_used_at = timezone.now()
    assert not credential_needs_touch(credential)
    credential.last_used_at = timezone.now() - timezone.timedelta(minutes=2)
    assert credential_needs_touch(credential)


def test_brand_create_validates_region_time_zone_and_slug():
    brand = brand_create(slug="nl-shop", name="NL Shop", default_region="nl")
    assert brand.default_region == "NL"
    with pytest.raises(ValidationError) as excinfo:
        brand_create(slug="bad", name="Bad", default_region="XX", time_zone="Mars/Base")
    assert set(excinfo.value.message_dict) == {"default_region", "time_zone"}
    with pytest.raises(ValidationError) as excinfo:
        brand_create(slug="nl-shop", name="Twice")
    assert "slug" in excinfo.value.message_dict
