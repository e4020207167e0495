"""export_config / import_config: secrets as environment references, idempotent,
an invalid file refused whole with the reasons."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from hooks.outbound.models import CrmSync, CrmSyncAction
from tests import factories

from .conftest import make_sync

pytestmark = pytest.mark.django_db


def export(slug, tmp_path, capsys):
    out = tmp_path / f"{slug}.json"
    call_command("export_config", slug, "--output", str(out))
    return out, json.loads(out.read_text()), capsys.readouterr().err


def test_export_then_import_into_another_brand_is_faithful_and_idempotent(brand, tmp_path, capsys, monkeypatch):
    sync = make_sync(brand, "https://crm.example.com", auth_type="basic", auth_username="svc", auth_password="pw-1")
    sync.signing_secret = "whsec_c2VjcmV0c2VjcmV0c2VjcmV0"
    sync.save()
    path, data, err = export("acme", tmp_path, capsys)
    text = path.read_text()
    assert "pw-1" not in text and "whsec_" not in text
    (item,) = data["crm_syncs"]
    assert item["auth_password"] == {"env": "HOOKHUB_ACME_CRM_AUTH_PASSWORD"}
    assert item["signing_secret"] == {"env": "HOOKHUB_ACME_CRM_SIGNING_SECRET"}
    assert item["api_key"] is None
    assert item["actions"]["create"]["unique_id_path"] == "$.id"
    assert list(item["actions"]) == ["create", "update", "delete"]
    assert "HOOKHUB_ACME_CRM_AUTH_PASSWORD" in err

    target = factories.BrandFactory(slug="staging", name="Staging")
    monkeypatch.setenv("HOOKHUB_ACME_CRM_AUTH_PASSWORD", "pw-1")
    monkeypatch.setenv("HOOKHUB_ACME_CRM_SIGNING_SECRET", "whsec_c2VjcmV0c2VjcmV0c2VjcmV0")
    call_command("import_config", str(path), "--brand", "staging")
    assert "4 objects created or changed" in capsys.readouterr().out
    copy = CrmSync.objects.get(brand=target)
    assert (copy.auth_password, copy.signing_secret) == ("pw-1", sync.signing_secret)
    fields = ["action", "method", "url", "headers", "body", "body_format", "unique_id_path", "timeout_seconds"]
    assert list(copy.actions.order_by("action").values(*fields)) == list(
        sync.actions.order_by("action").values(*fields)
    )

    call_command("import_config", str(path), "--brand", "staging")
    assert "0 objects created or changed" in capsys.readouterr().out
    _, again, _ = export("staging", tmp_path, capsys)
    assert again["crm_syncs"][0]["actions"] == data["crm_syncs"][0]["actions"]

    data["crm_syncs"][0]["actions"]["update"]["timeout_seconds"] = 20
    path.write_text(json.dumps(data))
    call_command("import_config", str(path), "--brand", "staging")
    assert "1 objects created or changed" in capsys.readouterr().out
    assert CrmSyncAction.objects.get(sync=copy, action="update").timeout_seconds == 20


def test_an_invalid_file_is_refused_whole_with_every_reason(brand, tmp_path):
    make_sync(brand, "https://crm.example.com", name="Existing")
    before = list(CrmSyncAction.objects.values_list("pk", "url", "timeout_seconds"))
    data = {
        "format": "hookhub-config",
        "version": 1,
        "brand": "acme",
        "crm_syncs": [
            {
                "name": "Existing",
                "actions": {"create": {"url": "https://crm.example.com/changed", "timeout_seconds": 5}},
            },
            {
                "name": "Bad",
                "auth_type": "basic",
                "auth_password": "clear-text-password",
                "api_key": {"env": "HOOKHUB_NOT_SET_ANYWHERE"},
                "actions": {
                    "create": {"url": "ftp://x/{{ person.name", "timeout_seconds": 99, "colour": "red"},
                    "archive": {},
                },
            },
        ],
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CommandError) as raised:
        call_command("import_config", str(path))
    message = str(raised.value)
    assert "nothing was changed" in message
    for reason in (
        "crm_syncs[1].auth_password: a secret must be null or",
        "crm_syncs[1].api_key: the environment variable HOOKHUB_NOT_SET_ANYWHERE is not set.",
        "crm_syncs[1].auth_username: A username is needed",
        "crm_syncs[1].actions: unknown keys archive.",
        "crm_syncs[1].actions.create: unknown keys colour.",
        "crm_syncs[1].actions.create.url: The URL must start with http:// or https://.",
        "crm_syncs[1].actions.create.timeout_seconds:",
    ):
        assert reason in message, reason
    assert "clear-text-password" not in message
    assert list(CrmSyncAction.objects.values_list("pk", "url", "timeout_seconds")) == before
    assert not CrmSync.objects.filter(name="Bad").exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [("{not json", "is not JSON"), ('{"format": "x", "version": 2, "brand": "nope"}', "no brand with slug")],
)
def test_unreadable_files_are_refused(brand, tmp_path, content, reason):
    path = tmp_path / "f.json"
    path.write_text(content)
    with pytest.raises(CommandError, match=reason):
        call_command("import_config", str(path))


def test_the_complete_example_in_the_docs_imports_and_is_idempotent(brand, tmp_path, monkeypatch, capsys):
    from django.conf import settings

    text = (settings.BASE_DIR / "docs" / "config-as-code.md").read_text()
    example = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    path = tmp_path / "acme-config.json"
    path.write_text(example)
    for name in (
        "HOOKHUB_ACME_ACME_CRM_API_KEY",
        "HOOKHUB_ACME_ACME_CRM_SIGNING_SECRET",
        "HOOKHUB_ACME_LEGACY_CRM_FORM_POSTS_AUTH_PASSWORD",
    ):
        monkeypatch.setenv(name, f"value-of-{name}")
    monkeypatch.setenv("HOOKHUB_ACME_OPERATIONAL_WEBHOOK_SIGNING_SECRET", OPS_SECRET)
    call_command("import_config", str(path))
    # The brand's settings, 6 sync objects and the operational webhook.
    assert "8 objects created or changed" in capsys.readouterr().out
    brand.refresh_from_db()
    assert brand.more_info_url_template == "https://crm.acme.example/customers/{{ customer.customer_id }}"
    call_command("import_config", str(path))
    assert "0 objects created or changed" in capsys.readouterr().out
    legacy = CrmSync.objects.get(brand=brand, name="Legacy CRM (form posts)")
    assert legacy.auth_password == "value-of-HOOKHUB_ACME_LEGACY_CRM_FORM_POSTS_AUTH_PASSWORD"
    out = tmp_path / "again.json"
    call_command("export_config", "acme", "--output", str(out))
    exported = json.loads(out.read_text())
    assert exported["crm_syncs"] == json.loads(example)["crm_syncs"]
    assert exported["operational_webhook"] == json.loads(example)["operational_webhook"]


def test_brand_settings_travel_with_the_file(brand, other_brand, tmp_path, capsys):
    brand.time_zone = "America/New_York"
    brand.default_region = "US"
    brand.create_activity_urls = [{"name": "New note", "url": "https://crm.example.com/{{ customer.customer_id }}"}]
    brand.more_info_url_template = "https://crm.example.com/c/{{ customer.customer_id }}"
    brand.create_unknown_callers = True
    brand.phone_address_types = ["telephone", "whatsapp"]
    brand.suffix_match_digits = 9
    brand.own_lines = ["+31205550100", "+3120555*"]
    brand.save()
    path, data, _ = export("acme", tmp_path, capsys)
    assert data["brand_settings"] == {
        "name": "Acme",
        "default_region": "US",
        "time_zone": "America/New_York",
        "is_active": True,
        "create_activity_urls": [{"name": "New note", "url": "https://crm.example.com/{{ customer.customer_id }}"}],
        "more_info_url_template": "https://crm.example.com/c/{{ customer.customer_id }}",
        "create_unknown_callers": True,
        "lookup_budget_ms": 2000,
        "lookup_parallel": False,
        "lookup_priority_window_ms": 200,
        "phone_address_types": ["telephone", "whatsapp"],
        "suffix_match_digits": 9,
        "own_lines": ["+31205550100", "+3120555*"],
    }

    # Into another brand: the settings are copied, the name stays the target's own.
    generation = other_brand.generation
    call_command("import_config", str(path), "--brand", "globex")
    assert "1 objects created or changed" in capsys.readouterr().out
    other_brand.refresh_from_db()
    assert (other_brand.name, other_brand.time_zone, other_brand.default_region) == (
        "Globex",
        "America/New_York",
        "US",
    )
    assert other_brand.create_activity_urls == brand.create_activity_urls
    assert other_brand.create_unknown_callers is True
    assert (other_brand.phone_address_types, other_brand.suffix_match_digits, other_brand.own_lines) == (
        ["telephone", "whatsapp"],
        9,
        ["+31205550100", "+3120555*"],
    )
    assert other_brand.generation == generation + 1  # cached lookup answers are dropped
    call_command("import_config", str(path), "--brand", "globex")
    assert "0 objects created or changed" in capsys.readouterr().out

    # A bad value refuses the whole file and changes nothing.
    data["brand_settings"]["time_zone"] = "Mars/Olympus"
    data["brand_settings"]["colour"] = "red"
    path.write_text(json.dumps(data))
    with pytest.raises(CommandError) as refused:
        call_command("import_config", str(path))
    assert "brand_settings.time_zone: 'Mars/Olympus' is not an IANA time zone" in str(refused.value)
    assert "brand_settings: unknown keys colour." in str(refused.value)
    brand.refresh_from_db()
    assert brand.time_zone == "America/New_York"


def test_a_copy_into_another_brand_never_switches_it_off(brand, other_brand, tmp_path, capsys):
    brand.is_active = False
    brand.save()
    path, data, _ = export("acme", tmp_path, capsys)
    assert data["brand_settings"]["is_active"] is False
    call_command("import_config", str(path), "--brand", "globex")
    other_brand.refresh_from_db()
    assert other_brand.is_active is True


# ------------------------------------------------------------------ issue 11: traffic fields and the operational webhook

OPS_SECRET = "whsec_" + "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"  # 24 bytes


def config_file(**sections) -> dict:
    return {"format": "hookhub-config", "version": 1, "brand": "acme", **sections}


def test_rate_limits_stop_on_4xx_and_the_operational_webhook_round_trip(brand, tmp_path, capsys, monkeypatch):
    from hooks.outbound.engine import health
    from hooks.outbound.models import OperationalWebhook
    from hooks.rules.models import EventRule

    sync = make_sync(brand, "https://crm.example.com")
    sync.actions.filter(action="create").update(rate_limit_per_second="2.5", stop_on_4xx=True)
    sync.actions.filter(action="update").update(rate_limit_per_second=10)
    EventRule.objects.create(
        brand=brand,
        name="Notify",
        event_types=["call.logged"],
        url="https://hooks.example.com/n",
        rate_limit_per_second="0.5",
        stop_on_4xx=True,
    )
    secret = health.operational_webhook_set(brand_id=brand.pk, url="https://ops.example.com/hookhub")
    path, data, err = export("acme", tmp_path, capsys)
    assert secret not in path.read_text()
    actions = data["crm_syncs"][0]["actions"]
    assert [(a["rate_limit_per_second"], a["stop_on_4xx"]) for a in actions.values()] == [
        (2.5, True),
        (10, False),
        (None, False),
    ]
    (rule,) = data["rules"]
    assert (rule["rate_limit_per_second"], rule["stop_on_4xx"]) == (0.5, True)
    assert data["operational_webhook"] == {
        "url": "https://ops.example.com/hookhub",
        "enabled": True,
        "signing_secret": {"env": "HOOKHUB_ACME_OPERATIONAL_WEBHOOK_SIGNING_SECRET"},
    }
    assert "HOOKHUB_ACME_OPERATIONAL_WEBHOOK_SIGNING_SECRET" in err

    target = factories.BrandFactory(slug="staging", name="Staging")
    monkeypatch.setenv("HOOKHUB_ACME_OPERATIONAL_WEBHOOK_SIGNING_SECRET", secret)
    call_command("import_config", str(path), "--brand", "staging")
    assert "6 objects created or changed" in capsys.readouterr().out  # sync, 3 actions, the rule, the webhook
    copy = CrmSync.objects.get(brand=target)
    assert list(copy.actions.order_by("pk").values_list("rate_limit_per_second", "stop_on_4xx")) == list(
        sync.actions.order_by("pk").values_list("rate_limit_per_second", "stop_on_4xx")
    )
    copied_rule = EventRule.objects.get(brand=target)
    assert (str(copied_rule.rate_limit_per_second), copied_rule.stop_on_4xx) == ("0.50", True)
    hook = OperationalWebhook.objects.get(brand=target)
    assert (hook.url, hook.enabled, hook.signing_secret) == ("https://ops.example.com/hookhub", True, secret)

    call_command("import_config", str(path), "--brand", "staging")
    assert "0 objects created or changed" in capsys.readouterr().out
    _, again, _ = export("staging", tmp_path, capsys)
    assert again["crm_syncs"][0]["actions"] == actions
    assert [(r["rate_limit_per_second"], r["stop_on_4xx"]) for r in again["rules"]] == [(0.5, True)]

    data["operational_webhook"] = None  # null leaves the webhook as it is
    data["rules"][0]["rate_limit_per_second"] = None  # null: no limit
    data["crm_syncs"][0]["actions"]["delete"]["rate_limit_per_second"] = 0.1
    path.write_text(json.dumps(data))
    call_command("import_config", str(path), "--brand", "staging")
    assert "2 objects created or changed" in capsys.readouterr().out
    assert EventRule.objects.get(brand=target).rate_limit_per_second is None
    assert str(CrmSyncAction.objects.get(sync=copy, action="delete").rate_limit_per_second) == "0.10"
    assert OperationalWebhook.objects.get(brand=target).signing_secret == secret


def test_bad_rate_limits_and_a_bad_operational_webhook_are_refused_with_every_reason(brand, tmp_path, monkeypatch):
    from hooks.outbound.models import OperationalWebhook
    from hooks.rules.models import EventRule

    make_sync(brand, "https://crm.example.com", name="Existing")
    before = list(CrmSyncAction.objects.values_list("pk", "rate_limit_per_second", "stop_on_4xx"))
    monkeypatch.setenv("HOOKHUB_TEST_SHORT_SECRET", "whsec_c2hvcnQ=")
    data = config_file(
        crm_syncs=[
            {
                "name": "Existing",
                "actions": {
                    "create": {"rate_limit_per_second": "fast", "stop_on_4xx": "maybe"},
                    "update": {"rate_limit_per_second": 0},
                    "delete": {"rate_limit_per_second": 0.001},
                },
            }
        ],
        rules=[
            {"name": "R", "event_types": ["call.logged"], "url": "https://h.example.com", "rate_limit_per_second": True}
        ],
        operational_webhook={"url": "not a url", "signing_secret": {"env": "HOOKHUB_TEST_SHORT_SECRET"}},
    )
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CommandError) as raised:
        call_command("import_config", str(path))
    message = str(raised.value)
    for reason in (
        "crm_syncs[0].actions.create.rate_limit_per_second: a number of requests per second (e.g. 10 or 0.5), or null.",
        "crm_syncs[0].actions.create.stop_on_4xx:",
        "crm_syncs[0].actions.update.rate_limit_per_second: Ensure this value is greater than or equal to 0.01.",
        "crm_syncs[0].actions.delete.rate_limit_per_second: Ensure that there are no more than 2 decimal places.",
        "rules[0].rate_limit_per_second: a number of requests per second",
        "operational_webhook.url: Enter a valid URL.",
        "operational_webhook.signing_secret: the secret must be 24 to 64 bytes, not 5.",
    ):
        assert reason in message, (reason, message)
    assert list(CrmSyncAction.objects.values_list("pk", "rate_limit_per_second", "stop_on_4xx")) == before
    assert not EventRule.objects.exists() and not OperationalWebhook.objects.exists()

    for secret, reason in (
        (None, 'operational_webhook.signing_secret: it is always signed: give {"env": NAME}.'),
        ("whsec_c2VjcmV0c2VjcmV0c2VjcmV0", None),
        ({"env": "HOOKHUB_TEST_SHORT_SECRET"}, "the secret must be 24 to 64 bytes"),
    ):
        hook = {"url": "https://ops.example.com/h", **({"signing_secret": secret} if secret is not None else {})}
        path.write_text(json.dumps(config_file(operational_webhook=hook)))
        with pytest.raises(CommandError) as raised:
            call_command("import_config", str(path))
        assert (reason or 'operational_webhook.signing_secret: a secret must be null or {"env"') in str(raised.value)
    assert not OperationalWebhook.objects.exists()
