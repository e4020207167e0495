"""Browser: a support admin's day, start to finish, as a brand admin (not a superuser).

Creates a Deskpro-style CRM sync through its tabs, previews and sends a test to a
real receiver on 127.0.0.1, then finds the attempt in the sync's Logs tab with
the request and the receiver's answer; the stored signing secret never shows.
"""

import json

import pytest

from hooks.outbound.models import CrmSync, Delivery, DeliveryState
from hub.models import Role
from synclog.models import DeliveryAttempt
from tests import factories
from tests.browser_support import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_creates_a_crm_sync_through_its_tabs_and_sends_a_test(page, brand, httpserver):
    httpserver.expect_request("/api/people", method="POST").respond_with_json({"data": {"id": 981}}, status=201)
    base = httpserver.url_for("").rstrip("/")
    customer = factories.customer(
        brand,
        customer_id="K-1001",
        first_name="Maria",
        last_name="Lukkien",
        addresses=[{"type": "email", "address": "maria@example.org"}],
    )
    factories.member(brand, Role.ADMIN, username="sam")
    login(page, "sam")

    page.goto("/admin/outbound/crmsync/add/")
    page.select_option("#id_brand", str(brand.pk))
    page.fill("#id_name", "Acme CRM")
    page.select_option("#id_auth_type", "bearer")
    page.fill("#id_api_key", "crm-token-123456")
    # Create Users tab (shown first).
    page.check("#id_actions-0-enabled")
    page.fill("#id_actions-0-unique_id_path", "$.data.id")
    page.select_option("#id_actions-0-method", "POST")
    page.fill("#id_actions-0-url", f"{base}/api/people")
    page.fill("#id_actions-0-body", '{"name": "{{ person.name }}", "email": "{{ person.email }}"}')
    # Update Users tab: hidden until its tab is clicked.
    assert not page.locator("#id_actions-2-0-url").is_visible()
    page.click('a[data-target="update"]')
    page.check("#id_actions-2-0-enabled")
    page.select_option("#id_actions-2-0-method", "PUT")
    page.fill("#id_actions-2-0-url", base + "/api/people/{{ remote_id }}")
    page.fill("#id_actions-2-0-body", '{"name": "{{ person.name }}"}')
    page.click("input[name=_continue]")

    sync = CrmSync.objects.get(brand=brand, name="Acme CRM")
    assert {(a.action, a.enabled, a.method) for a in sync.actions.all()} >= {
        ("create", True, "POST"),
        ("update", True, "PUT"),
    }
    assert sync.api_key == "crm-token-123456"
    assert "crm-token-123456" not in page.content()  # write-only secret

    page.click("text=Send a test…")
    page.fill('input[name="customer"]', customer.customer_id)
    page.click("text=Preview (dry run)")
    preview = page.locator("#hh-preview").inner_text()
    assert f"POST {base}/api/people" in preview
    assert '"name": "Maria Lukkien"' in preview
    assert "crm-token-123456" not in preview
    sent_before = len(httpserver.log)
    page.click("text=Send this request now")
    assert "HTTP 201" in page.locator("#hh-result").inner_text()
    assert len(httpserver.log) == sent_before + 1
    received, _ = httpserver.log[-1]
    assert received.headers["Authorization"] == "Bearer crm-token-123456"
    assert json.loads(received.get_data(as_text=True)) == {"name": "Maria Lukkien", "email": "maria@example.org"}

    page.goto(f"/admin/outbound/crmsync/{sync.pk}/change/#logs")
    page.click('a[data-target="logs"]')
    logs = page.locator('[data-tab="logs"]').inner_text()
    assert "Acme CRM — Create Users" in logs
    assert "Delivered" in logs
    assert "201" in logs
    assert "crm-token-123456" not in page.content()
    test_delivery = Delivery.objects.filter(source_name__startswith="Acme CRM").latest("pk")
    assert test_delivery.state == DeliveryState.DELIVERED
    attempt = DeliveryAttempt.objects.get(delivery=test_delivery)
    assert attempt.response_status == 201
    assert "crm-token-123456" not in json.dumps(attempt.request_headers)
