"""Admin pages for inbound events and dispatcher rules: smoke, actions, presets,
preview, secrets write-only, brand scoping."""

import pytest

from hooks.inbound.models import InboundEvent
from hooks.rules.models import EventRule
from hooks.rules.services import rule_create
from hub.models import Role
from tests.factories import member

pytestmark = pytest.mark.django_db

RULES = "/admin/rules/eventrule/"
EVENTS = "/admin/inbound/inboundevent/"


@pytest.fixture
def acme_admin(client, brand):
    client.force_login(member(brand, Role.ADMIN, username="acme-admin"))
    return client


def make_rule(brand, **fields):
    defaults = {
        "name": "Rule",
        "event_types": ["conversation.abandoned"],
        "conditions": ['event.queue == "Sales"'],
        "url": "https://receiver.example/hook?token={{ secrets.api_key }}",  # a key typed in the URL is refused
        "api_key": "abc123",
        "body": '{"q": "{{ event.queue }}"}',
        "auth_type": "basic",
        "auth_username": "api",
        "auth_password": "pw-secret-42",
    }
    defaults.update(fields)
    return rule_create(brand=brand, **defaults)


def test_inbound_event_admin_pages_and_reprocess(admin_client, brand, post_event, maria, monkeypatch):
    from hooks.inbound import services

    monkeypatch.setattr(services, "activity_record", lambda **kw: (_ for _ in ()).throw(RuntimeError("boom")))
    from django.test import Client

    from tests.factories import credential

    key = credential(brand, "servicehooks")
    Client().post(
        "/hooks/servicehooks/acme/abandoned-conversation",
        data='{"phone": "+31612345678", "queue": "Sales"}',
        content_type="application/json",
        headers={"x-api-key": key},
    )
    monkeypatch.undo()
    event = InboundEvent.objects.get()
    assert event.state == "failed"
    page = admin_client.get(EVENTS)
    assert page.status_code == 200 and b"Abandoned in queue Sales" not in page.content  # failed: no summary yet
    assert b"failed" in page.content.lower()
    detail = admin_client.get(f"{EVENTS}{event.pk}/change/")
    assert detail.status_code == 200
    assert b"RuntimeError: boom" in detail.content and b"+31612345678" in detail.content
    assert admin_client.get(f"{EVENTS}add/").status_code == 403
    response = admin_client.post(EVENTS, {"action": "reprocess", "_selected_action": [event.pk]}, follow=True)
    assert b"Reprocessed: 1 processed." in response.content
    event.refresh_from_db()
    assert event.state == "processed" and event.customer == maria
    listing = admin_client.get(EVENTS).content.decode()
    assert f'href="/admin/customers/customer/{maria.pk}/change/"' in listing
    assert "Abandoned in queue Sales" in listing


def test_members_see_only_their_brands_events_and_rules(client, brand, other_brand, post_event):
    post_event("servicehooks/abandoned-conversation", {"phone": "+31612345678", "queue": "Mine"})
    post_event("servicehooks/abandoned-conversation", {"phone": "+46701234567", "queue": "Theirs"}, slug="globex")
    mine = make_rule(brand, name="Mine")
    theirs = make_rule(other_brand, name="Theirs")
    client.force_login(member(brand, Role.AUDITOR, username="auditor"))
    listing = client.get(EVENTS)
    assert b"queue Mine" in listing.content and b"queue Theirs" not in listing.content
    other_event = InboundEvent.objects.get(brand=other_brand)
    assert client.get(f"{EVENTS}{other_event.pk}/change/").status_code == 404
    rules = client.get(RULES)
    assert b"Mine" in rules.content and b"Theirs" not in rules.content
    assert client.get(f"{RULES}{theirs.pk}/change/").status_code == 404
    assert client.get(f"{RULES}{theirs.pk}/preview/").status_code == 404
    # an auditor reads but cannot change or use presets
    assert client.get(f"{RULES}{mine.pk}/preview/").status_code == 200
    assert client.get(f"{RULES}presets/").status_code == 404
    response = client.post(f"{RULES}{mine.pk}/change/", {"name": "Hijacked"})
    assert response.status_code == 403
    # a preview may not pick another brand's event
    assert client.get(f"{RULES}{mine.pk}/preview/?event={other_event.pk}").status_code == 404


def test_rule_add_form_normalizes_conditions_and_hides_secrets(acme_admin, brand):
    assert acme_admin.get(f"{RULES}add/").status_code == 200
    form = {
        "brand": brand.pk,
        "name": "From the form",
        "order": 10,
        "event_types": ["call.logged", "conversation.abandoned"],
        "conditions": '["call.duration > 60000", {"any": ["event.queue == Sales", "customer.email exists"]}]',
        "method": "POST",
        "url": "https://receiver.example/x",
        "body_format": "json",
        "headers": "X-Source: hookhub",
        "body": '{"d": {{ call.duration }}}',
        "auth_type": "api_key",
        "auth_username": "",
        "auth_password": "",
        "api_key_header": "X-Key",
        "api_key": "k-secret-99",
        "signing_secret": "",
        "verify_ssl": "on",
        "timeout_seconds": 5,
    }
    response = acme_admin.post(f"{RULES}add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    rule = EventRule.objects.get(name="From the form")
    assert rule.conditions == {
        "all": [
            {"field": "call.duration", "op": "greater_than", "value": 60000},
            {
                "any": [
                    {"field": "event.queue", "op": "equals", "value": "Sales"},
                    {"field": "customer.email", "op": "exists"},
                ]
            },
        ]
    }
    assert rule.api_key == "k-secret-99" and not rule.enabled
    page = acme_admin.get(f"{RULES}{rule.pk}/change/")
    assert page.status_code == 200
    assert b"k-secret-99" not in page.content
    assert b"Preview against a stored event" in page.content
    # saving with the secret box empty keeps the secret
    form.update({"name": "Renamed", "api_key": ""})
    assert acme_admin.post(f"{RULES}{rule.pk}/change/", form).status_code == 302
    rule.refresh_from_db()
    assert (rule.name, rule.api_key) == ("Renamed", "k-secret-99")


def test_rule_form_reports_condition_errors(acme_admin, brand):
    response = acme_admin.post(
        f"{RULES}add/",
        {
            "brand": brand.pk,
            "name": "Bad",
            "order": 1,
            "event_types": ["call.logged"],
            "conditions": '{"all": ["call.duration >>> 5"]}',
            "method": "POST",
            "url": "https://x.example",
            "body_format": "json",
            "auth_type": "none",
            "timeout_seconds": 5,
        },
    )
    assert response.status_code == 200
    assert b"conditions.all[0]" in response.content
    assert EventRule.objects.count() == 0


def test_presets_page_creates_a_disabled_rule(acme_admin, brand, other_brand):
    listing = acme_admin.get(RULES)
    assert b"Start from a preset" in listing.content
    page = acme_admin.get(f"{RULES}presets/")
    assert page.status_code == 200
    assert b"Telegram message when a conversation is abandoned" in page.content
    assert b"Note in another system when a work item is closed" in page.content
    response = acme_admin.post(f"{RULES}presets/", {"preset": "crm-note-workitem-closed", "brand": brand.pk})
    rule = EventRule.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/{rule.pk}/change/")
    assert (rule.brand, rule.enabled, rule.auth_type) == (brand, False, "basic")
    # not into a brand the user does not administer
    acme_admin.post(f"{RULES}presets/", {"preset": "crm-note-workitem-closed", "brand": other_brand.pk})
    assert EventRule.objects.count() == 1


def test_preview_page_shows_conditions_and_masked_request(acme_admin, brand, post_event, maria):
    rule = make_rule(brand)
    result = post_event("servicehooks/abandoned-conversation", {"phone": "+31612345678", "queue": "Sales"})
    page = acme_admin.get(f"{RULES}{rule.pk}/preview/")
    assert page.status_code == 200 and b"Abandoned in queue Sales" in page.content
    page = acme_admin.get(f"{RULES}{rule.pk}/preview/?event={result['id']}")
    html = page.content.decode()
    assert "The rule would fire." in html
    assert "event.queue == &quot;Sales&quot;" in html
    assert "POST https://receiver.example/hook?token=********" in html
    assert "Authorization: ********" in html
    assert "pw-secret-42" not in html and "abc123" not in html
    assert '{"q": "Sales"}' in html.replace("&quot;", '"')
    page = acme_admin.get(f"{RULES}{rule.pk}/preview/?customer=K-1001")
    assert "it does not trigger on customer.updated" in page.content.decode()
    page = acme_admin.get(f"{RULES}{rule.pk}/preview/?customer=nobody")
    assert "No customer of this brand has that customer ID." in page.content.decode()


def test_list_shows_conditions_in_words(acme_admin, brand):
    make_rule(brand, conditions={"any": ["call.duration > 5", 'event.queue in ["A", "B"]']})
    page = acme_admin.get(RULES).content.decode()
    assert "(call.duration &gt; 5 or event.queue in [&quot;A&quot;, &quot;B&quot;])" in page


def test_a_failing_rule_shows_in_the_list_and_on_its_page(acme_admin, brand, other_brand, maria, post_event, receiver):
    from tests.hooks.rules.conftest import run_all

    server, base = receiver
    server.expect_request("/ok", method="POST").respond_with_json({"ok": True})
    server.expect_request("/down", method="POST").respond_with_data("down", status=503)
    abandoned = {"customerPhoneNumber": "+31612345678", "timeInQueue": 134, "queue": "Sales"}
    healthy = make_rule(brand, name="Healthy", enabled=True, url=f"{base}/ok", auth_type="none", auth_password="")
    failing = make_rule(brand, name="Failing", enabled=True, url=f"{base}/down", auth_type="none", auth_password="")
    make_rule(brand, name="Never fired", event_types=["workitem.closed"])
    post_event("servicehooks/abandoned-conversation", abandoned)
    run_all()
    rows = {
        name: row
        for row in acme_admin.get(RULES).content.decode().split("<tr")[1:]
        for name in ("Healthy", "Failing", "Never fired")
        if f">{name}</a>" in row
    }
    assert "Delivered HTTP 200" in rows["Healthy"] and "100.0%</span> (1/1)" in rows["Healthy"]
    assert "Pending HTTP 503" in rows["Failing"] and "0.0%</span> (0/1)" in rows["Failing"]
    assert "no attempts" in rows["Never fired"]
    page = acme_admin.get(f"{RULES}{failing.pk}/change/").content.decode()
    assert "Recent deliveries" in page and "Pending HTTP 503" in page
    assert f"/admin/logs/?brand={brand.pk}&amp;source=rule%3A{failing.pk}" in page
    assert healthy.pk != failing.pk
