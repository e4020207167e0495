"""Browser: an auditor reads the dashboard's server-side chart, goes into the
unified log list, filters it, and opens one attempt: request and response side
by side, the bearer token masked."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from hub.models import Role
from tests import factories
from tests.browser_support import login
from tests.synclog import factories as logs

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TOKEN = "tok-browser-5150"


def test_auditor_goes_from_the_dashboard_chart_to_one_attempt(page, brand, other_brand):
    factories.member(brand, Role.AUDITOR, username="audrey")
    maria = factories.customer(brand, customer_id="K-1001", first_name="Maria")
    for hours, status in ((1, 200), (2, 200), (2, 403), (5, 200)):
        logs.inbound(brand, status=status, ago=timedelta(hours=hours), customer=maria)
    logs.inbound(other_brand, status=500)
    delivery = logs.delivery(brand, customer_id=maria.pk, source_name="Acme CRM — Update Users")
    failed = logs.attempt(
        delivery,
        status=502,
        ago=timedelta(hours=3),
        url="https://crm.example.com/people/77",
        request_headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        request_body=json.dumps({"name": "Maria", "token": TOKEN}),
        response_body='{"error": "bad gateway"}',
    )
    logs.attempt(delivery, status=200, number=2, ago=timedelta(hours=1))

    login(page, "audrey")
    page.goto("/admin/dashboard/acme/?range=24h")
    page.screenshot(path="/tmp/hookhub-dashboard.png", full_page=True)
    charts = page.locator("svg.hh-chart-svg")
    assert charts.count() == 2
    inbound_chart, outbound_chart = charts.nth(0), charts.nth(1)
    tall_bars = inbound_chart.locator("rect.hh-ok:not([height='0.0'])")
    assert tall_bars.count() == 3  # three hours with successful calls
    assert inbound_chart.locator("rect.hh-failed:not([height='0.0'])").count() == 1
    assert inbound_chart.locator("polyline.hh-rate").count() == 1
    assert len(inbound_chart.locator("polyline.hh-rate").get_attribute("points").split()) == 3
    assert outbound_chart.locator("rect.hh-failed:not([height='0.0'])").count() == 1
    assert inbound_chart.bounding_box()["height"] > 50
    assert "Inbound calls — 4 in range, 75.0% successful" in page.content()

    page.click("#hh-all-logs")
    page.wait_for_selector("#hh-log-table")
    assert page.locator("tr.hh-row").count() == 6
    assert "Globex" not in page.inner_text("#hh-log-table")
    page.screenshot(path="/tmp/hookhub-logs.png")

    page.select_option("#hh-direction", "outbound")
    page.select_option("#hh-outcome-filter", "failed")
    page.click("#hh-filter-submit")
    page.wait_for_url("**outcome=failed**")
    rows = page.locator("tr.hh-row")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-pk") == str(failed.pk)
    assert page.text_content("#hh-export-csv").strip() == "Download CSV"
    assert "outcome=failed" in page.get_attribute("#hh-export-csv", "href")

    rows.first.locator("a").first.click()
    page.wait_for_selector("#hh-sides")
    request_box = page.locator("#hh-request").bounding_box()
    response_box = page.locator("#hh-response").bounding_box()
    assert response_box["x"] > request_box["x"] + request_box["width"] - 1  # side by side
    assert abs(response_box["y"] - request_box["y"]) < 5
    request_text = page.inner_text("#hh-request")
    assert "POST https://crm.example.com/people/77" in request_text
    assert "Authorization\t********" in request_text and '"token": "********"' in request_text
    assert "HTTP 502" in page.inner_text("#hh-response") and "bad gateway" in page.inner_text("#hh-response")
    assert TOKEN not in page.content()
    assert page.locator("input[name=_save]").count() == 0
    page.screenshot(path="/tmp/hookhub-log-detail.png")
