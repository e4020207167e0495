"""The CRM sync admin: four tabs, write-only secrets, Send a test with a dry-run
preview, Retry now, the Logs tab with success rates; read-only log admins."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from hooks.outbound.models import CrmSync, CrmSyncAction, Delivery
from hub.models import Role
from synclog.models import DeliveryAttempt
from tests import factories

from .conftest import make_sync, run_all

pytestmark = pytest.mark.django_db


def _management(prefix, total, initial):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1",
    }


def _action(prefix, **fields):
    base = {
        "enabled": "on",
        "method": "POST",
        "url": "",
        "headers": "",
        "body": "",
        "body_format": "json",
        "verify_ssl": "on",
        "timeout_seconds": "10",
        "use_sync_auth": "on",  # checked by default, as the browser posts it
        "auth_type": "none",
        "api_key_header": "X-API-Key",
    }
    base.update(fields)
    return {f"{prefix}-0-{k}": v for k, v in base.items() if v is not None}


@pytest.fixture
def admin_user(brand):
    return factories.member(brand, Role.ADMIN, username="ada")


def test_add_a_sync_with_three_tabs_through_the_admin(client, brand, admin_user):
    client.force_login(admin_user)
    page = client.get(reverse("admin:outbound_crmsync_add"))
    html = page.content.decode()
    for tab in ("Create Users", "Update Users", "Delete Users"):
        assert tab in html
    assert "cannot continue to push" in html  # the Unique ID path warning
    prefixes = sorted(set(re.findall(r'name="(actions(?:-\d)?)-TOTAL_FORMS"', html)))
    assert prefixes == ["actions", "actions-2", "actions-3"]
    data = {
        "brand": brand.pk,
        "name": "Acme CRM",
        "enabled": "on",
        "auth_type": "basic",
        "auth_username": "svc",
        "auth_password": "s3cret-pass",
        "api_key_header": "X-API-Key",
        "api_key": "",
        **_management("actions", 1, 0),
        **_action(
            "actions",
            url="https://crm.example.com/people",
            body='{"name": "{{ person.name }}"}',
            unique_id_path="$.id",
        ),
        **_management("actions-2", 1, 0),
        **_action("actions-2", method="PUT", url="https://crm.example.com/people/{{ remote_id }}", body="{}"),
        **_management("actions-3", 0, 0),
    }
    response = client.post(reverse("admin:outbound_crmsync_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    sync = CrmSync.objects.get(name="Acme CRM")
    assert sync.auth_password == "s3cret-pass"
    assert sorted(sync.actions.values_list("action", "method")) == [("create", "POST"), ("update", "PUT")]
    assert sync.actions.get(action="create").unique_id_path == "$.id"

    # Secrets are never shown again; a blank field keeps them.
    change = client.get(reverse("admin:outbound_crmsync_change", args=[sync.pk])).content.decode()
    assert "s3cret-pass" not in change
    assert "A value is stored (hidden)" in change
    data.update(
        {
            "auth_password": "",
            **_management("actions", 1, 1),
            "actions-0-id": sync.actions.get(action="create").pk,
            "actions-0-sync": sync.pk,
            **_management("actions-2", 1, 1),
            "actions-2-0-id": sync.actions.get(action="update").pk,
            "actions-2-0-sync": sync.pk,
            "new_signing_secret": "on",
        }
    )
    response = client.post(reverse("admin:outbound_crmsync_change", args=[sync.pk]), data, follow=True)
    assert response.status_code == 200
    sync.refresh_from_db()
    assert sync.auth_password == "s3cret-pass"
    assert sync.signing_secret.startswith("whsec_")
    assert sync.signing_secret in response.content.decode()  # shown once, in the message
    assert (
        sync.signing_secret not in client.get(reverse("admin:outbound_crmsync_change", args=[sync.pk])).content.decode()
    )


def test_template_errors_are_reported_when_saving(client, brand, admin_user):
    client.force_login(admin_user)
    data = {
        "brand": brand.pk,
        "name": "Broken",
        "auth_type": "none",
        "api_key_header": "X-API-Key",
        **_management("actions", 1, 0),
        **_action(
            "actions",
            url="ftp://crm.example.com/{{ person.name",
            body='{"name": {{ person.name }}}',
            unique_id_path="$[?",
        ),
        **_management("actions-2", 0, 0),
        **_management("actions-3", 0, 0),
    }
    response = client.post(reverse("admin:outbound_crmsync_add"), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "The URL must start with http:// or https://." in html
    assert "Template syntax error" in html
    assert "not valid JSON after rendering" in html
    assert "Not a JSONPath" in html
    assert not CrmSync.objects.exists()


def test_send_a_test_previews_then_sends(client, brand, admin_user, httpserver, receiver_url):
    httpserver.expect_request("/people").respond_with_json({"id": "T1"}, status=201)
    sync = make_sync(brand, receiver_url, auth_type="bearer", api_key="tok-secret-1")
    customer = factories.customer(brand, first_name="Preview")
    Delivery.objects.all().delete()
    client.force_login(admin_user)
    url = reverse("admin:outbound_crmsync_test", args=[sync.pk])
    preview = client.get(url, {"action": "create", "customer": customer.customer_id})
    html = preview.content.decode()
    assert f"POST {receiver_url}/people" in html
    assert "&quot;first_name&quot;: &quot;Preview&quot;" in html
    assert "Authorization: ********" in html and "tok-secret-1" not in html
    assert len(httpserver.log) == 0  # a dry run sends nothing
    sent = client.post(url, {"action": "create", "customer": customer.customer_id, "confirm": "send"})
    assert "HTTP 201" in sent.content.decode()
    assert len(httpserver.log) == 1
    assert httpserver.log[0][0].headers["Authorization"] == "Bearer tok-secret-1"
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.event_type) == ("delivered", "test")
    assert not sync.remote_ids.exists()  # a test never changes the stored remote ids
    missing = client.get(url, {"action": "create", "customer": "NOPE"})
    assert "No customer with ID" in missing.content.decode()


def test_logs_tab_lists_deliveries_attempts_and_success_rates_and_retries(
    client, brand, admin_user, httpserver, receiver_url, settings
):
    settings.HUB_RETRY_WINDOW_SECONDS = 0
    httpserver.expect_request("/people").respond_with_data("nope", status=500)
    sync = make_sync(brand, receiver_url)
    factories.customer(brand)
    run_all()
    delivery = Delivery.objects.get()
    assert delivery.state == "failed"
    client.force_login(admin_user)
    change_url = reverse("admin:outbound_crmsync_change", args=[sync.pk])
    html = client.get(change_url).content.decode()
    assert "Logs" in html
    assert "Last 24 hours: <strong>0.0% successful</strong> (0/1 attempts)" in html
    assert "CRM — Create Users" in html and "Failed" in html
    assert client.get(change_url, {"log_state": "delivered"}).content.decode().count("hh-delivery ") == 0
    assert client.get(change_url, {"log_action": "create", "log_days": "1"}).content.decode().count("hh-delivery ") == 1
    response = client.post(reverse("admin:outbound_crmsync_retry", args=[sync.pk]), {"delivery_ids": [delivery.pk]})
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.state == "pending"


def test_auditors_read_but_cannot_send_and_other_brands_are_hidden(client, brand, other_brand, receiver_url):
    sync = make_sync(brand, receiver_url)
    theirs = make_sync(other_brand, receiver_url, name="Theirs")
    auditor = factories.member(brand, Role.AUDITOR, username="audrey")
    client.force_login(auditor)
    assert client.get(reverse("admin:outbound_crmsync_change", args=[sync.pk])).status_code == 200
    assert client.get(reverse("admin:outbound_crmsync_test", args=[sync.pk])).status_code == 403
    assert client.post(reverse("admin:outbound_crmsync_retry", args=[sync.pk])).status_code == 403
    assert client.get(reverse("admin:outbound_crmsync_change", args=[theirs.pk])).status_code == 404
    assert "Theirs" not in client.get(reverse("admin:outbound_crmsync_changelist")).content.decode()


def test_delivery_and_attempt_admins_are_read_only_with_retry(admin_client, brand, httpserver, receiver_url, settings):
    settings.HUB_RETRY_WINDOW_SECONDS = 0
    httpserver.expect_request("/people").respond_with_data("no", status=500)
    make_sync(brand, receiver_url)
    factories.customer(brand)
    run_all()
    delivery = Delivery.objects.get()
    attempt = DeliveryAttempt.objects.get()
    for name in (
        "admin:outbound_delivery_changelist",
        "admin:synclog_deliveryattempt_changelist",
        "admin:synclog_inboundrequest_changelist",
    ):
        assert admin_client.get(reverse(name)).status_code == 200
    assert admin_client.get(reverse("admin:outbound_delivery_change", args=[delivery.pk])).status_code == 200
    assert admin_client.get(reverse("admin:synclog_deliveryattempt_change", args=[attempt.pk])).status_code == 200
    assert admin_client.get(reverse("admin:synclog_deliveryattempt_add")).status_code == 403
    response = admin_client.post(
        reverse("admin:outbound_delivery_changelist"), {"action": "retry_now", "_selected_action": [delivery.pk]}
    )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.state == "pending"
    assert CrmSyncAction.objects.count() == 3
    assert run_all() == 1 and DeliveryAttempt.objects.count() == 2


def test_a_delivery_page_links_its_sync_customer_logs_and_each_attempts_detail(
    admin_client, brand, httpserver, receiver_url
):
    httpserver.expect_request("/people").respond_with_json({"id": "R-1"}, status=201)
    sync = make_sync(brand, receiver_url)
    customer = factories.customer(brand, customer_id="K-77")
    run_all()
    delivery = Delivery.objects.get()
    attempt = DeliveryAttempt.objects.get()
    html = admin_client.get(reverse("admin:outbound_delivery_change", args=[delivery.pk])).content.decode()
    hrefs = [href.replace("&amp;", "&") for href in re.findall(r'href="([^"]+)"', html)]
    assert reverse("admin:outbound_crmsync_change", args=[sync.pk]) in hrefs
    assert reverse("admin:customers_customer_change", args=[customer.pk]) in hrefs
    assert f"/admin/logs/?brand={brand.pk}&customer=K-77" in hrefs
    assert reverse("admin:synclog_deliveryattempt_change", args=[attempt.pk]) in hrefs
    customer_page = admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk])).content.decode()
    assert "Deliveries (1)" in customer_page


def test_dashboard_links_to_the_delivery_lists_work(admin_client, brand):
    for url in (
        reverse("admin:synclog_deliveryattempt_changelist") + f"?brand__id__exact={brand.pk}",
        reverse("admin:outbound_delivery_changelist") + f"?brand__id__exact={brand.pk}&state__exact=pending",
    ):
        assert admin_client.get(url).status_code == 200, url


def test_a_failing_sync_is_visible_from_the_list(admin_client, brand, httpserver, receiver_url):
    httpserver.expect_request("/people").respond_with_data("down", status=500)
    make_sync(brand, receiver_url, name="Down CRM")
    make_sync(brand, receiver_url, name="Quiet CRM")
    CrmSyncAction.objects.filter(sync__name="Quiet CRM").update(enabled=False)
    factories.customer(brand)
    run_all()
    page = admin_client.get(reverse("admin:outbound_crmsync_changelist")).content.decode()
    rows = {name: row for row in page.split("<tr")[1:] for name in ("Down CRM", "Quiet CRM") if f">{name}</a>" in row}
    assert "Pending HTTP 500" in rows["Down CRM"]
    assert "0.0%</span> (0/1)" in rows["Down CRM"]
    assert "no attempts" in rows["Quiet CRM"] and "—" in rows["Quiet CRM"]
