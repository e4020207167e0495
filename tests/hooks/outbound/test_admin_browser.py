"""The CRM sync page in a real browser: Deskpro's four tabs switch, the Logs tab
shows the deliveries, Send a test previews before sending."""

from __future__ import annotations

import pytest

from tests import factories
from tests.browser_support import login

from .conftest import make_sync, run_all

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_tabs_logs_and_send_a_test(page, brand, httpserver):
    httpserver.expect_request("/people").respond_with_json({"id": "B-1"}, status=201)
    receiver_url = httpserver.url_for("").rstrip("/")
    sync = make_sync(brand, receiver_url)
    customer = factories.customer(brand, first_name="Browser")
    run_all()
    factories.UserFactory(username="root", is_superuser=True).save()
    login(page, "root")
    page.goto(f"/admin/outbound/crmsync/{sync.pk}/change/")

    create_tab = page.locator('[data-tab="create"]').first
    update_tab = page.locator('[data-tab="update"]')
    logs_tab = page.locator('[data-tab="logs"]')
    assert create_tab.is_visible() and not update_tab.is_visible() and not logs_tab.is_visible()
    assert page.get_by_text("cannot continue to push").is_visible()

    page.click('a[data-target="update"]')
    assert update_tab.is_visible() and not create_tab.is_visible()
    assert page.locator("#id_actions-2-0-url").input_value().endswith("/people/{{ remote_id }}")

    page.click('a[data-target="logs"]')
    assert logs_tab.is_visible()
    assert page.get_by_text("Last 24 hours:").is_visible()
    assert "100.0% successful" in logs_tab.inner_text()
    assert "CRM — Create Users" in logs_tab.inner_text()
    page.screenshot(path="/tmp/hookhub-crmsync-logs.png")

    page.click("text=Send a test…")
    page.fill('input[name="customer"]', customer.customer_id)
    page.click("text=Preview (dry run)")
    assert "POST " + receiver_url + "/people" in page.locator("#hh-preview").inner_text()
    sent_before = len(httpserver.log)
    page.click("text=Send this request now")
    assert "HTTP 201" in page.locator("#hh-result").inner_text()
    assert len(httpserver.log) == sent_before + 1
