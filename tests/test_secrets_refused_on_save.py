"""A key typed into a plain webhook URL is refused on save, pointing to the
encrypted fields (as secret headers already are), on every way in: the rule
and CRM sync admin forms and the config import. A template tag in its place
stays allowed. Rules saved before the refusal are shown masked to auditors."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from hooks.outbound.configio import ConfigError, config_export, config_import
from hooks.outbound.models import CrmSync, CrmSyncAction
from hooks.rules.models import EventRule
from hooks.rules.services import rule_create
from hub.models import Role
from hub.redaction import MASK
from tests.factories import member

pytestmark = pytest.mark.django_db

REFUSED_URLS = [
    "https://bot:hunter2@receiver.example/hook",
    "https://receiver.example/hook?token=tok-typed-123",
    "https://receiver.example/hook?chat=1&API_KEY=tok-typed-123",
    "https://receiver.example/hook?k%65y=tok-typed-123",
    "https://receiver.example/hook?api%5Fkey=tok-typed-123",
]


def _rule_form(brand, url: str) -> dict:
    return {
        "brand": brand.pk,
        "name": "Typed key",
        "order": 10,
        "event_types": ["conversation.abandoned"],
        "conditions": "",
        "method": "POST",
        "url": url,
        "body_format": "json",
        "headers": "",
        "body": '{"q": "{{ event.queue }}"}',
        "auth_type": "none",
        "auth_username": "",
        "auth_password": "",
        "api_key_header": "X-API-Key",
        "api_key": "tok-in-the-right-place",
        "signing_secret": "",
        "verify_ssl": "on",
        "timeout_seconds": 5,
    }


@pytest.fixture
def brand_admin(client, brand):
    client.force_login(member(brand, Role.ADMIN, username="acme-admin"))
    return client


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_rule_admin_refuses_a_key_typed_into_the_url(brand_admin, brand, url):
    response = brand_admin.post(reverse("admin:rules_eventrule_add"), _rule_form(brand, url))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Plain fields are shown to auditors" in html and "{{ secrets.api_key }}" in html
    assert not EventRule.objects.exists()


def test_rule_admin_accepts_the_key_as_a_template_tag(brand_admin, brand):
    url = "https://receiver.example/hook?token={{ secrets.api_key }}&chat=1"
    response = brand_admin.post(reverse("admin:rules_eventrule_add"), _rule_form(brand, url))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert EventRule.objects.get().url == url


def _management(prefix: str, total: int) -> dict:
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1",
    }


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_crm_sync_admin_refuses_a_key_typed_into_an_action_url(brand_admin, brand, url):
    data = {
        "brand": brand.pk,
        "name": "Acme CRM",
        "enabled": "on",
        "auth_type": "none",
        "auth_username": "",
        "auth_password": "",
        "api_key_header": "X-API-Key",
        "api_key": "",
        **_management("actions", 1),
        "actions-0-enabled": "on",
        "actions-0-method": "POST",
        "actions-0-url": url,
        "actions-0-headers": "",
        "actions-0-body": '{"name": "{{ person.name }}"}',
        "actions-0-body_format": "json",
        "actions-0-verify_ssl": "on",
        "actions-0-timeout_seconds": "10",
        **_management("actions-2", 0),
        **_management("actions-3", 0),
    }
    response = brand_admin.post(reverse("admin:outbound_crmsync_add"), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Plain fields are shown to auditors" in html and "under Authentication" in html
    assert not CrmSync.objects.exists() and not CrmSyncAction.objects.exists()


def test_config_import_refuses_keys_typed_into_urls_with_every_reason(brand):
    data = {
        "format": "hookhub-config",
        "version": 1,
        "brand": "acme",
        "crm_syncs": [
            {"name": "CRM", "actions": {"create": {"url": "https://crm.example.com/people?k%65y=tok-typed-123"}}}
        ],
        "rules": [
            {
                "name": "Typed",
                "event_types": ["workitem.closed"],
                "url": "https://bot:hunter2@receiver.example/hook",
            },
            {
                "name": "Tagged",
                "event_types": ["workitem.closed"],
                "url": "https://receiver.example/hook?token={{ secrets.api_key }}",
            },
        ],
    }
    with pytest.raises(ConfigError) as raised:
        config_import(data=data, environ={})
    errors = raised.value.errors
    assert any(
        e.startswith("crm_syncs[0].actions.create.url: The URL carries a secret in the query parameter 'k%65y'")
        for e in errors
    ), errors
    assert any(e.startswith("rules[0].url: The URL carries a username or password") for e in errors), errors
    assert not any(e.startswith("rules[1]") for e in errors), errors  # the template tag is the right way
    assert "tok-typed-123" not in str(errors) and "hunter2" not in str(errors)
    assert not CrmSync.objects.exists() and not EventRule.objects.exists()


def test_a_rule_saved_before_the_refusal_is_shown_masked_to_auditors(client, brand):
    rule = rule_create(brand=brand, name="Old rule", event_types=["workitem.closed"], url="https://crm.example.com/n")
    # As a rule saved before keys in URLs were refused holds them (no clean() on update()).
    EventRule.objects.filter(pk=rule.pk).update(
        url="https://bob:hunter2@crm.example.com/n?k%65y=sk_old_key&x=1",
        headers="Accept: application/json\nX-Api-Key: hdr_old_key",
        body='{"password": "body_old_pw", "q": "{{ event.queue }}"}',
    )
    client.force_login(member(brand, Role.AUDITOR, username="audrey"))
    pages = [
        reverse("admin:rules_eventrule_changelist"),
        reverse("admin:rules_eventrule_change", args=[rule.pk]),
    ]
    for page in pages:
        html = client.get(page).content.decode()
        assert "Old rule" in html
        assert "hunter2" not in html and "sk_old_key" not in html, page
    page = client.get(pages[1]).content.decode()
    assert "body_old_pw" not in page and "{{ event.queue }}" in page
    assert f"https://{MASK}@crm.example.com/n?k%65y={MASK}&amp;x=1" in page
    assert "hdr_old_key" not in page and "Accept: application/json" in page
    # No oracle through the list search either: the URL is not searched.
    assert "Old rule" in client.get(pages[0], {"q": "Old"}).content.decode()
    assert "Old rule" not in client.get(pages[0], {"q": "sk_old"}).content.decode()


def test_a_crm_action_saved_before_the_refusal_is_shown_masked_to_auditors(client, brand):
    sync = CrmSync.objects.create(brand=brand, name="Old CRM")
    CrmSyncAction.objects.create(
        sync=sync,
        action="create",
        url="https://bob:hunter2@crm.example.com/people?api%5Fkey=sk_old_key",
        headers="X-Api-Key: hdr_old_key",
    )
    client.force_login(member(brand, Role.AUDITOR, username="audrey"))
    page = client.get(reverse("admin:outbound_crmsync_change", args=[sync.pk])).content.decode()
    assert "Old CRM" in page
    assert "hunter2" not in page and "sk_old_key" not in page and "hdr_old_key" not in page
    assert f"https://{MASK}@crm.example.com/people?api%5Fkey={MASK}" in page


def test_config_export_masks_a_key_left_in_an_old_url_and_the_import_refuses_it(brand):
    sync = CrmSync.objects.create(brand=brand, name="Old CRM")
    CrmSyncAction.objects.create(sync=sync, action="create", url="https://crm.example.com/p?token=sk_old_crm")
    rule = rule_create(brand=brand, name="Old rule", event_types=["workitem.closed"], url="https://crm.example.com/n")
    EventRule.objects.filter(pk=rule.pk).update(
        url="https://bob:hunter2@crm.example.com/n", headers="X-Api-Key: hdr_old_key"
    )
    data = config_export(brand=brand)
    text = json.dumps(data)
    assert "sk_old_crm" not in text and "hunter2" not in text and "hdr_old_key" not in text
    assert data["crm_syncs"][0]["actions"]["create"]["url"] == f"https://crm.example.com/p?token={MASK}"
    with pytest.raises(ConfigError) as raised:
        config_import(data=data, environ={})
    assert any("carries a secret in the query parameter 'token'" in e for e in raised.value.errors)
    assert any("carries a username or password" in e for e in raised.value.errors)
