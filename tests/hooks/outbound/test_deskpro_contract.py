"""The CRM sync as Deskpro's guide (shared/contracts/deskpro-webhook-crm-sync.txt)
describes it: a new sync called 'New Webhook Sync' whose Create Users tab works
without a toggle, authentication on every tab (the Delete tab's own), and
``person.organizations`` as a comma-separated list of organization names."""

from __future__ import annotations

import base64
import html
import json
import re
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs

import pytest
from django.core.serializers import serialize
from django.urls import reverse

from customers.services import customer_delete, customer_update
from hooks.outbound.configio import config_export, config_import
from hooks.outbound.models import NEW_SYNC_NAME, CrmSync, CrmSyncAction, RemoteId
from hub.models import Role
from synclog.models import DeliveryAttempt
from tests import factories

from .conftest import make_sync, run_all

pytestmark = pytest.mark.django_db

ADD_URL = "admin:outbound_crmsync_add"
PREFIXES = {"create": "actions", "update": "actions-2", "delete": "actions-3"}


@pytest.fixture
def admin_user(brand):
    return factories.member(brand, Role.ADMIN, username="dora")


def _inputs(page: str) -> dict[str, str]:
    """What the browser would post for the page's form as rendered: text inputs,
    ticked checkboxes, selected options and textareas (the admin's untouched defaults)."""
    data: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or "__prefix__" in name.group(1):
            continue
        kind = (re.search(r'type="([^"]+)"', tag) or [None, "text"])[1]
        if kind == "checkbox":
            if " checked" in tag:
                data[name.group(1)] = "on"
            continue
        if kind in ("submit", "button"):
            continue
        value = re.search(r'value="([^"]*)"', tag)
        data[name.group(1)] = html.unescape(value.group(1)) if value else ""
    for name, body in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        if "__prefix__" in name:
            continue
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', body)
        data[name] = chosen.group(1) if chosen else ""
    for name, text in re.findall(r'<textarea name="([^"]+)"[^>]*>\n?(.*?)</textarea>', page, re.S):
        if "__prefix__" not in name:
            data[name] = html.unescape(text)
    return data


def test_a_new_sync_is_named_new_webhook_sync_with_create_and_delete_on_update_off(client, brand, admin_user):
    client.force_login(admin_user)
    form = _inputs(client.get(reverse(ADD_URL)).content.decode())
    assert form["name"] == "New Webhook Sync" == NEW_SYNC_NAME
    assert form.get("actions-0-enabled") == "on"  # Create Users: the contract has no toggle
    assert "actions-2-0-enabled" not in form  # Update Users: "Toggle the option to enable syncing"
    assert form.get("actions-3-0-enabled") == "on"  # Delete Users: no toggle either
    for prefix in PREFIXES.values():
        assert form[f"{prefix}-0-use_sync_auth"] == "on"  # each tab uses the sync's authentication


def test_an_admin_following_the_guide_gets_creates_remote_ids_and_then_updates(
    client, brand, admin_user, httpserver, receiver_url, clock
):
    """Add Sync, set the Create tab's URL and Unique ID Path, Save, change a customer."""
    httpserver.expect_ordered_request("/people", method="POST").respond_with_json({"id": "DP-9"}, status=201)
    httpserver.expect_ordered_request("/people/DP-9", method="PUT").respond_with_data("", status=204)
    client.force_login(admin_user)
    form = _inputs(client.get(reverse(ADD_URL)).content.decode())
    form.update(
        {
            "brand": str(brand.pk),
            "actions-0-url": receiver_url + "/people",
            "actions-0-unique_id_path": "$.id",
            "actions-0-body": '{"name": "{{ person.name }}"}',
        }
    )
    response = client.post(reverse(ADD_URL), form)
    assert response.status_code == 302, re.findall(r"errorlist[^>]*>(.*?)</ul>", response.content.decode(), re.S)
    sync = CrmSync.objects.get(brand=brand)
    assert sync.name == "New Webhook Sync"
    assert list(sync.actions.values_list("action", "enabled")) == [("create", True)]  # untouched tabs not saved

    customer = factories.customer(brand, first_name="Ann", last_name="Lee")
    assert run_all() == 1
    assert RemoteId.objects.get(sync=sync).remote_id == "DP-9"

    # "Repeat similar steps in the Update Users tab": toggle it on, set the URL.
    change_url = reverse("admin:outbound_crmsync_change", args=[sync.pk])
    form = _inputs(client.get(change_url).content.decode())
    form.update(
        {
            "actions-2-0-enabled": "on",
            "actions-2-0-method": "PUT",
            "actions-2-0-url": receiver_url + "/people/{{ remote_id }}",
            "actions-2-0-body": '{"name": "{{ person.name }}"}',
        }
    )
    response = client.post(change_url, form)
    assert response.status_code == 302, re.findall(r"errorlist[^>]*>(.*?)</ul>", response.content.decode(), re.S)
    customer_update(customer=customer, first_name="Anna")
    assert run_all() == 1
    httpserver.check_assertions()
    update = httpserver.log[1][0]
    assert json.loads(update.get_data(as_text=True)) == {"name": "Anna Lee"}


def test_the_delete_tab_signs_in_with_its_own_basic_auth_and_create_with_the_syncs_bearer(
    client, brand, admin_user, httpserver, receiver_url, clock
):
    # An unlucky CRM echoes the credentials it got: the log must still not show them.
    httpserver.expect_ordered_request("/people", method="POST").respond_with_json({"id": "R-1"})
    httpserver.expect_ordered_request("/people/R-1", method="DELETE").respond_with_data("bye del-user:Del-Pass-777")
    sync = make_sync(brand, receiver_url, auth_type="bearer", api_key="sync-Bearer-555")
    CrmSyncAction.objects.filter(sync=sync, action="update").update(enabled=False)
    client.force_login(admin_user)
    change_url = reverse("admin:outbound_crmsync_change", args=[sync.pk])
    form = _inputs(client.get(change_url).content.decode())
    assert "sync-Bearer-555" not in json.dumps(form)
    form.pop("actions-3-0-use_sync_auth")
    form.update(
        {
            "actions-3-0-auth_type": "basic",
            "actions-3-0-auth_username": "del-user",
            "actions-3-0-auth_password": "Del-Pass-777",
        }
    )
    response = client.post(change_url, form)
    assert response.status_code == 302, re.findall(r"errorlist[^>]*>(.*?)</ul>", response.content.decode(), re.S)
    delete_tab = CrmSyncAction.objects.get(sync=sync, action="delete")
    assert (delete_tab.use_sync_auth, delete_tab.auth_password) == (False, "Del-Pass-777")
    page = client.get(change_url).content.decode()
    assert "Del-Pass-777" not in page and "sync-Bearer-555" not in page  # write-only

    customer = factories.customer(brand, first_name="Del")
    customer_delete(customer=customer)
    assert run_all() == 2
    httpserver.check_assertions()
    create, delete = (request for request, _response in httpserver.log)
    assert create.headers["Authorization"] == "Bearer sync-Bearer-555"
    basic = base64.b64encode(b"del-user:Del-Pass-777").decode()
    assert delete.headers["Authorization"] == f"Basic {basic}"

    dumped = serialize("json", DeliveryAttempt.objects.all())
    assert DeliveryAttempt.objects.filter(succeeded=True).count() == 2
    for secret in ("Del-Pass-777", basic, "sync-Bearer-555"):
        assert secret not in dumped
    history = serialize("json", CrmSyncAction.history.all()) + serialize("json", CrmSync.history.all())
    assert "Del-Pass-777" not in history and "sync-Bearer-555" not in history
    assert delete_tab.history.latest().secrets  # the change of secret is recorded as a fingerprint


def test_a_tab_with_its_own_auth_needs_what_that_auth_needs(client, brand, admin_user, receiver_url):
    sync = make_sync(brand, receiver_url)
    client.force_login(admin_user)
    change_url = reverse("admin:outbound_crmsync_change", args=[sync.pk])
    form = _inputs(client.get(change_url).content.decode())
    form.pop("actions-3-0-use_sync_auth")
    form["actions-3-0-auth_type"] = "bearer"
    response = client.post(change_url, form)
    assert response.status_code == 200
    assert "A bearer token is needed" in response.content.decode()
    assert CrmSyncAction.objects.get(sync=sync, action="delete").use_sync_auth is True  # nothing changed


HOSTILE_COMPANY = 'Acme, "Quoted" & <Sons>, Inc.'


@pytest.mark.parametrize("body_format", ["json", "xml", "form"])
def test_person_organizations_is_the_comma_separated_list_of_organization_names(
    brand, httpserver, receiver_url, clock, body_format
):
    httpserver.expect_request("/people", method="POST").respond_with_json({"id": "1"})
    bodies = {
        "json": '{"organizations": "{{ person.organizations }}", "last_logged_in": "{{ person.last_logged_in }}"}',
        "xml": "<p><organizations>{{ person.organizations }}</organizations></p>",
        "form": "organizations={{ person.organizations }}&x=1",
    }
    sync = make_sync(brand, receiver_url)
    CrmSyncAction.objects.filter(sync=sync, action="create").update(
        body_format=body_format, body=bodies[body_format], headers=""
    )
    factories.customer(brand, first_name="Org", company_name=HOSTILE_COMPANY)
    factories.customer(brand, first_name="NoOrg")
    assert run_all() == 2
    texts = [request.get_data(as_text=True) for request, _ in httpserver.log]
    if body_format == "json":
        values = [json.loads(text) for text in texts]
        assert values == [
            {"organizations": HOSTILE_COMPANY, "last_logged_in": ""},  # no activity reported yet: empty
            {"organizations": "", "last_logged_in": ""},
        ]
    elif body_format == "xml":
        assert [ET.fromstring(text).findtext("organizations") or "" for text in texts] == [HOSTILE_COMPANY, ""]
    else:
        assert [parse_qs(text, keep_blank_values=True)["organizations"] for text in texts] == [[HOSTILE_COMPANY], [""]]


def test_config_round_trip_keeps_each_tabs_own_auth_without_secrets(brand, other_brand, receiver_url):
    sync = make_sync(brand, receiver_url, auth_type="bearer", api_key="sync-Bearer-555")
    CrmSyncAction.objects.filter(sync=sync, action="delete").update(
        use_sync_auth=False, auth_type="basic", auth_username="del-user", auth_password="Del-Pass-777"
    )
    exported = config_export(brand=brand)
    text = json.dumps(exported)
    assert "Del-Pass-777" not in text and "sync-Bearer-555" not in text
    delete_spec = exported["crm_syncs"][0]["actions"]["delete"]
    assert delete_spec["use_sync_auth"] is False
    assert (delete_spec["auth_type"], delete_spec["auth_username"]) == ("basic", "del-user")
    env_name = delete_spec["auth_password"]["env"]
    assert env_name == "HOOKHUB_ACME_CRM_DELETE_AUTH_PASSWORD"
    assert exported["crm_syncs"][0]["actions"]["create"]["auth_password"] is None

    environ = {env_name: "Del-Pass-777", "HOOKHUB_ACME_CRM_API_KEY": "sync-Bearer-555"}
    assert config_import(data=exported, brand_slug=other_brand.slug, environ=environ) == 5  # settings + 4
    copied = CrmSyncAction.objects.get(sync__brand=other_brand, action="delete")
    assert (copied.use_sync_auth, copied.auth_type, copied.auth_username, copied.auth_password) == (
        False,
        "basic",
        "del-user",
        "Del-Pass-777",
    )
    assert CrmSyncAction.objects.get(sync__brand=other_brand, action="create").use_sync_auth is True
    assert config_import(data=exported, brand_slug=other_brand.slug, environ=environ) == 0  # idempotent


def test_config_import_of_new_tabs_without_enabled_follows_deskpro_and_keeps_existing_ones(brand):
    def spec(kind: str) -> dict:
        return {"method": "POST", "url": f"https://crm.example.com/{kind}", "body": "{}"}

    data = {
        "format": "hookhub-config",
        "version": 1,
        "brand": brand.slug,
        "crm_syncs": [{"name": "Imported", "actions": {kind: spec(kind) for kind in PREFIXES}}],
    }
    config_import(data=data)
    actions = CrmSyncAction.objects.filter(sync__name="Imported")
    assert dict(actions.values_list("action", "enabled")) == {"create": True, "update": False, "delete": True}
    actions.filter(action="create").update(enabled=False)  # an admin switched it off
    config_import(data=data)
    assert actions.get(action="create").enabled is False  # an existing tab is never changed silently


def test_last_logged_in_is_the_last_contact_a_platform_reported(brand, receiver_url):
    """Customers never log in to the hub: the token carries the newest reported activity's time."""
    from datetime import UTC, datetime

    from customers.services import activity_record
    from hooks.outbound.models import Delivery

    make_sync(brand, receiver_url)
    customer = factories.customer(brand, first_name="Call")
    activity_record(customer=customer, kind="CALL", occurred_at=datetime(2026, 11, 3, 9, 30, tzinfo=UTC))
    customer.refresh_from_db()
    customer_update(customer=customer, first_name="Called")
    created, updated = (d.context["person"]["last_logged_in"] for d in Delivery.objects.order_by("pk"))
    assert (created, updated) == ("", "2026-11-03T09:30:00Z")
