""" "Test a lookup" in a real browser: a brand admin types a number, picks the
platform, and sees which sources were asked, the masked raw answer, which one
matched and the exact response M8Com would get; other brands are not offered."""

from __future__ import annotations

import pytest

from hooks.sources.models import SourceCall
from tests.browser_support import login
from tests.factories import member

from .conftest import CONTACT, found, make_source

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_brand_admin_tests_a_lookup(page, brand, other_brand, crm):
    crm.route("/miss", {"results": [], "debug": "Bearer tok-abcdef123456"})
    crm.route("/contacts/search", found({**CONTACT, "id": "crm-browser"}), delay=0.05)
    make_source(brand, crm, "/miss", name="Billing", order=1, auth_type="bearer", api_key="tok-abcdef123456")
    make_source(brand, crm, name="CRM", order=2)
    make_source(other_brand, crm, "/globex", name="Globex CRM")
    member(brand, role="admin", username="ann")
    login(page, "ann")

    page.goto("/admin/sources/lookupsource/")
    assert page.get_by_text("Globex CRM").count() == 0
    page.click("text=Test a lookup…")
    page.locator("#hh-brand option").first.wait_for(state="attached")  # the click navigates: wait for the page
    options = page.locator("#hh-brand option").all_inner_texts()
    assert options == ["Acme"]
    page.select_option("#hh-platform", "m8com")
    page.fill("#hh-value", "020 123 4567")
    page.click("#hh-run")

    assert "+31201234567" in page.locator("#hh-hub").inner_text()
    assert "no customer" in page.locator("#hh-hub").inner_text()
    rows = page.locator("#hh-attempts tbody tr")
    assert rows.count() == 2
    billing, crm_row = rows.nth(0), rows.nth(1)
    assert billing.get_attribute("data-outcome") == "miss"
    assert crm_row.get_attribute("data-outcome") == "hit"
    assert "matched" in crm_row.inner_text() and "matched" not in billing.inner_text()
    assert " ms" in crm_row.inner_text()
    billing.locator("summary", has_text="show").click()
    raw = billing.locator("pre").first.inner_text()
    assert "Bearer ********" in raw and "tok-abcdef123456" not in page.content()
    assert "HTTP 200" in page.locator("#hh-status").inner_text()
    response = page.locator("#hh-response").inner_text()
    assert '"displayName": "Ada Lovelace"' in response and '"phoneNumbers"' in response
    page.screenshot(path="/tmp/hookhub-test-lookup.png")

    assert crm.hits("/globex") == []
    assert SourceCall.objects.filter(reason="test").count() == 2
