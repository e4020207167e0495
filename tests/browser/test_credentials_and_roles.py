"""Browser: a support admin issues a key and sees it once; an auditor changes nothing."""

import pytest

from customers.models import Customer
from hub.models import Credential, Role
from tests import factories
from tests.browser_support import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_support_admin_issues_a_key_and_sees_it_once(page, brand):
    factories.member(brand, Role.ADMIN, username="sam")
    login(page, "sam")
    page.goto("/admin/hub/credential/add/")
    page.select_option("#id_brand", str(brand.pk))
    page.select_option("#id_integration", "omnidesk")
    page.fill("#id_name", "production")
    page.click("input[name=_save]")
    secret = page.inner_text("#issued-secret").strip()
    assert secret.startswith("hh_") and len(secret) > 40
    credential = Credential.objects.get(brand=brand, name="production")
    assert credential.prefix == secret[:10]
    assert secret not in (credential.secret_hash, credential.prefix)
    page.click("text=Done")
    html = page.content()
    assert credential.prefix in html
    assert secret not in html
    page.goto("/admin/hub/credential/")
    assert secret not in page.content()


def test_auditor_sees_but_cannot_change(page, brand, other_brand):
    factories.member(brand, Role.AUDITOR, username="audrey")
    customer = factories.customer(brand, first_name="Maria", addresses=[{"type": "email", "address": "m@x.org"}])
    foreign = factories.customer(other_brand, first_name="Other")
    secret = factories.credential(brand, "m8com", name="live")
    login(page, "audrey")
    page.goto(f"/admin/customers/customer/{customer.pk}/change/")
    assert page.locator("input[name=_save]").count() == 0
    assert "Maria" in page.content()
    page.goto("/admin/hub/credential/")
    assert "live" in page.content()
    assert secret not in page.content()
    response = page.goto(f"/admin/customers/customer/{foreign.pk}/change/")
    assert response.status in (302, 404) or "doesn’t exist" in page.content()
    assert Customer.objects.get(pk=customer.pk).first_name == "Maria"
