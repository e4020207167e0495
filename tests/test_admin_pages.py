"""The admin (issue 2): every page loads; brand scoping and roles; credentials; customers through the services."""

import json

import pytest
from django.contrib import admin
from django.urls import reverse

from customers.models import Activity, Address, Customer
from customers.services import activity_record
from hub.models import Brand, Credential, Membership, Role
from hub.selectors import credential_authenticate
from hub.services import credential_issue
from tests import factories

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)


@pytest.fixture
def world(brand, other_brand, admin_user):
    """Two brands with customers (addresses, fields, timeline), keys and a membership each."""
    made = {}
    for b in (brand, other_brand):
        customer = factories.customer(
            b,
            first_name="Maria" if b == brand else "Olle",
            addresses=[
                {"type": "telephone", "address": "+31612312312" if b == brand else "+46701234567"},
                {"type": "email", "address": f"someone@{b.slug}.example"},
            ],
            custom_fields=[{"tier": "gold"}],
        )
        activity_record(customer=customer, kind="NOTE", body="hello", source="test", external_id=f"n-{b.slug}")
        credential, _ = credential_issue(brand=b, integration="omnidesk", name=f"{b.slug} key")
        made[b.slug] = {"brand": b, "customer": customer, "credential": credential}
    Membership.objects.create(user=admin_user, brand=brand, role=Role.ADMIN)
    return made


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_every_admin_page_loads_for_a_superuser(admin_client, admin_user, world, model):
    model_admin = admin.site._registry[model]
    response = admin_client.get(url(model, "changelist"))
    assert response.status_code == 200
    request = response.wsgi_request
    request.user = admin_user
    add = admin_client.get(url(model, "add"))
    assert add.status_code == (200 if model_admin.has_add_permission(request) else 403)
    obj = model_admin.get_queryset(request).first()
    if obj is not None:
        change = admin_client.get(url(model, "change", obj.pk))
        assert change.status_code == 200
        if hasattr(model_admin, "history_view"):
            assert admin_client.get(url(model, "history", obj.pk)).status_code == 200


def test_admin_index_lists_the_hub_models(admin_client):
    html = admin_client.get("/admin/").content.decode()
    for name in ("Brands", "Credentials", "Customers", "Memberships"):
        assert name in html


# ---------------------------------------------------------------- tenancy


def login(client, brand, role, username):
    user = factories.member(brand, role, username=username)
    client.force_login(user)
    return user


def test_member_of_brand_a_gets_404_for_brand_b_objects(client, world, brand, other_brand):
    login(client, brand, Role.ADMIN, "anna")
    theirs = world["globex"]
    for model, obj in (
        (Brand, other_brand),
        (Credential, theirs["credential"]),
        (Customer, theirs["customer"]),
        (Activity, theirs["customer"].activities.get()),
    ):
        for view in ("change", "delete", "history"):
            assert client.get(url(model, view, obj.pk)).status_code == 404, (model, view)
        assert client.post(url(model, "change", obj.pk), {}).status_code == 404
    # Their rows are not listed, and the brand filter offers only her brand.
    for model in (Brand, Credential, Customer):
        html = client.get(url(model, "changelist")).content.decode()
        assert "Globex" not in html and "Olle" not in html, model
        assert "Acme" in html
    # Searching for their phone finds nothing.
    html = client.get(url(Customer, "changelist"), {"q": "+46 70 123 45 67"}).content.decode()
    assert "0 customers" in html or "0 results" in html
    # She cannot move a customer to their brand, nor add one there.
    response = client.post(url(Customer, "add"), customer_form(other_brand, "X1"))
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Customer.objects.filter(customer_id="X1").exists()
    # Memberships are for superusers only.
    assert client.get(url(Membership, "changelist")).status_code == 403


def test_staff_without_membership_sees_nothing(client, world):
    user = factories.UserFactory(username="nobody")
    user.save()
    client.force_login(user)
    html = client.get("/admin/").content.decode()
    assert "Customers" not in html and "Credentials" not in html
    assert client.get(url(Customer, "changelist")).status_code == 403
    assert client.get(url(Customer, "change", world["acme"]["customer"].pk)).status_code in (403, 404)


def test_auditor_views_and_changes_nothing(client, world, brand):
    login(client, brand, Role.AUDITOR, "audrey")
    mine = world["acme"]
    customer, credential = mine["customer"], mine["credential"]
    page = client.get(url(Customer, "change", customer.pk))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Maria" in html and 'name="_save"' not in html
    assert client.get(url(Credential, "change", credential.pk)).status_code == 200
    assert client.get(url(Brand, "change", brand.pk)).status_code == 200
    # Every write answers 403 and changes nothing.
    assert (
        client.post(url(Customer, "change", customer.pk), customer_form(brand, customer.customer_id)).status_code == 403
    )
    assert client.get(url(Customer, "add")).status_code == 403
    assert client.post(url(Customer, "delete", customer.pk), {"post": "yes"}).status_code == 403
    assert client.get(url(Credential, "add")).status_code == 403
    assert client.post(url(Brand, "change", brand.pk), {"name": "Hacked"}).status_code == 403
    # The revoke action is not offered, and posting it does nothing.
    changelist = client.get(url(Credential, "changelist")).content.decode()
    assert "revoke_selected" not in changelist
    client.post(url(Credential, "changelist"), {"action": "revoke_selected", "_selected_action": [credential.pk]})
    assert Credential.objects.get(pk=credential.pk).revoked_at is None
    assert Customer.objects.get(pk=customer.pk).first_name == "Maria"
    assert Brand.objects.get(pk=brand.pk).name == "Acme"


# ---------------------------------------------------------------- credentials


def test_adding_a_key_shows_the_secret_once_with_no_store(client, brand):
    login(client, brand, Role.ADMIN, "sam")
    response = client.post(
        url(Credential, "add"),
        {"brand": brand.pk, "integration": "m8com", "name": "production", "allowed_networks": '["203.0.113.0/24"]'},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"].split(", ")
    html = response.content.decode()
    credential = Credential.objects.get(name="production")
    secret = html.split('id="issued-secret"', 1)[1].split(">", 1)[1].split("<", 1)[0]
    assert secret.startswith(credential.prefix) and len(secret) > 40
    assert credential.allowed_networks == ["203.0.113.0/24"]
    assert (
        credential_authenticate(brand_slug="acme", integration="m8com", secret=secret, client_ip="203.0.113.5").status
        == 0
    )
    # From now on only the prefix.
    for page in (
        url(Credential, "change", credential.pk),
        url(Credential, "changelist"),
        url(Credential, "history", credential.pk),
    ):
        html = client.get(page).content.decode()
        assert credential.prefix in html and secret not in html


def test_key_edit_changes_only_name_and_networks(client, brand):
    login(client, brand, Role.ADMIN, "sam")
    credential, secret = credential_issue(brand=brand, integration="omnidesk", name="old")
    response = client.post(
        url(Credential, "change", credential.pk),
        {"name": "renamed", "allowed_networks": '["not a network"]'},
    )
    assert response.status_code == 200 and "Not a network in CIDR notation" in response.content.decode()
    response = client.post(url(Credential, "change", credential.pk), {"name": "renamed", "allowed_networks": "[]"})
    assert response.status_code == 302
    stored = Credential.objects.get(pk=credential.pk)
    assert (stored.name, stored.prefix, stored.secret_hash) == ("renamed", credential.prefix, credential.secret_hash)


def test_revoke_action(client, world, brand):
    login(client, brand, Role.ADMIN, "sam")
    credential, secret = credential_issue(brand=brand, integration="omnidesk", name="to revoke")
    keep, keep_secret = credential_issue(brand=brand, integration="omnidesk", name="keep")
    theirs = world["globex"]["credential"]
    response = client.post(
        url(Credential, "changelist"),
        {"action": "revoke_selected", "_selected_action": [credential.pk, theirs.pk]},
        follow=True,
    )
    assert "Revoked 1 key(s)." in response.content.decode()
    assert Credential.objects.get(pk=credential.pk).revoked_at is not None
    assert Credential.objects.get(pk=theirs.pk).revoked_at is None
    assert (
        credential_authenticate(brand_slug="acme", integration="omnidesk", secret=secret, client_ip="1.2.3.4").status
        == 403
    )
    assert (
        credential_authenticate(
            brand_slug="acme", integration="omnidesk", secret=keep_secret, client_ip="1.2.3.4"
        ).status
        == 0
    )


# ---------------------------------------------------------------- customers


def inline_management(prefix, total=0, initial=0):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def customer_form(brand, customer_id, addresses=(), **fields):
    data = {
        "brand": brand.pk,
        "customer_id": customer_id,
        "first_name": "",
        "last_name": "",
        "display_name": "",
        "company_name": "",
        "job_title": "",
        "summary": "",
        "time_zone": "",
        "avatar_url": "",
        "cover_photo_url": "",
        "more_info_url": "",
        **inline_management("addresses", len(addresses)),
        **inline_management("custom_fields"),
        **inline_management("activities"),
    }
    data.update(fields)
    for index, (kind, value, comment) in enumerate(addresses):
        data.update(
            {
                f"addresses-{index}-kind": kind,
                f"addresses-{index}-value": value,
                f"addresses-{index}-comment": comment,
                f"addresses-{index}-position": str(index),
            }
        )
    return data


def test_adding_a_customer_normalizes_addresses_builds_documents_and_emits(client, brand, captured_events):
    login(client, brand, Role.ADMIN, "sam")
    data = customer_form(
        brand,
        "A-1",
        addresses=[("telephone", "06 1231 2312", "Mobile"), ("email", "Maria@Example.org", "")],
        first_name="Maria",
    )
    data.update(inline_management("custom_fields", 1))
    data.update({"custom_fields-0-key": "tier", "custom_fields-0-value": "gold", "custom_fields-0-position": "0"})
    response = client.post(url(Customer, "add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    customer = Customer.objects.get(customer_id="A-1")
    assert list(customer.addresses.values_list("kind", "value", "normalized", "comment")) == [
        ("telephone", "06 1231 2312", "+31612312312", "Mobile"),
        ("email", "Maria@Example.org", "maria@example.org", ""),
    ]
    doc = json.loads(customer.omnidesk_document)
    assert doc["addresses"][0] == {"address": "+31612312312", "type": "telephone"}
    assert doc["customFields"] == [{"tier": "gold"}]
    assert [(e.event_type, in_tx) for e, in_tx in captured_events] == [("customer.created", True)]
    assert captured_events[0][0].data["customer"]["phone"] == "+31612312312"


def test_an_invalid_phone_is_refused_with_a_field_error_and_nothing_is_stored(client, brand, captured_events):
    login(client, brand, Role.ADMIN, "sam")
    response = client.post(
        url(Customer, "add"), customer_form(brand, "A-2", addresses=[("telephone", "12", ""), ("email", "x@", "")])
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "&#x27;12&#x27; is not a valid phone number." in html
    assert "&#x27;x@&#x27; is not a valid e-mail address." in html
    assert not Customer.objects.filter(customer_id="A-2").exists()
    assert Address.objects.count() == 0 and captured_events == []


def test_editing_a_customer_goes_through_the_service(client, world, brand, captured_events):
    login(client, brand, Role.ADMIN, "sam")
    customer = world["acme"]["customer"]
    addresses = list(customer.addresses.order_by("position"))
    data = customer_form(brand, customer.customer_id, first_name="Marie", last_name=customer.last_name)
    data.update(inline_management("addresses", 2, 2))
    for index, address in enumerate(addresses):
        data.update(
            {
                f"addresses-{index}-id": str(address.pk),
                f"addresses-{index}-customer": str(customer.pk),
                f"addresses-{index}-kind": address.kind,
                f"addresses-{index}-value": address.value,
                f"addresses-{index}-comment": address.comment,
                f"addresses-{index}-position": str(index),
            }
        )
    data["addresses-0-value"] = "+31 6 12345670"  # a new number, typed with spaces
    data["addresses-1-DELETE"] = "on"
    field = customer.custom_fields.get()
    data.update(inline_management("custom_fields", 1, 1))
    data.update(
        {
            "custom_fields-0-id": str(field.pk),
            "custom_fields-0-customer": str(customer.pk),
            "custom_fields-0-key": "tier",
            "custom_fields-0-value": "gold",
            "custom_fields-0-position": "0",
        }
    )
    activity = customer.activities.get()
    data.update(inline_management("activities", 1, 1))
    data.update(
        {
            "activities-0-id": str(activity.pk),
            "activities-0-customer": str(customer.pk),
            "activities-0-kind": "NOTE",
            "activities-0-occurred_at_0": activity.occurred_at.strftime("%Y-%m-%d"),
            "activities-0-occurred_at_1": activity.occurred_at.strftime("%H:%M:%S"),
            "activities-0-body": "hello, edited",
            "activities-0-source": "test",
            "activities-0-external_id": activity.external_id,
        }
    )
    response = client.post(url(Customer, "change", customer.pk), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    stored = Customer.objects.get(pk=customer.pk)
    assert stored.first_name == "Marie"
    assert list(stored.addresses.values_list("normalized", flat=True)) == ["+31612345670"]
    doc = json.loads(stored.omnidesk_document)
    assert doc["customerFirstname"] == "Marie"
    assert doc["addresses"] == [{"address": "+31612345670", "type": "telephone"}]
    assert doc["timeline"][0]["message"] == "hello, edited"
    ((event, in_tx),) = captured_events
    assert event.event_type == "customer.updated" and in_tx
    assert {"first_name", "phone", "email"} <= set(event.data["changed"])


def test_customer_id_clash_on_the_change_page_is_a_field_error(client, world, brand):
    login(client, brand, Role.ADMIN, "sam")
    customer = world["acme"]["customer"]
    other = factories.customer(brand, customer_id="TAKEN")
    data = customer_form(brand, "TAKEN", first_name="Maria")
    response = client.post(url(Customer, "change", customer.pk), data)
    assert response.status_code == 200
    assert "A customer with ID &#x27;TAKEN&#x27; exists in this brand." in response.content.decode()
    assert Customer.objects.get(pk=customer.pk).customer_id != "TAKEN"
    assert Customer.objects.get(pk=other.pk).customer_id == "TAKEN"


def test_deleting_a_customer_emits_deleted(client, world, brand, captured_events):
    login(client, brand, Role.ADMIN, "sam")
    customer = world["acme"]["customer"]
    response = client.post(url(Customer, "delete", customer.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert [e.event_type for e, _ in captured_events] == ["customer.deleted"]


@pytest.mark.parametrize("term", ["+31612312312", "06 1231 2312", "0031 6 12312312", "someone@ACME.example", "Maria"])
def test_search_finds_a_customer_by_phone_in_any_format_email_and_name(client, world, brand, term):
    login(client, brand, Role.ADMIN, "sam")
    customer = world["acme"]["customer"]
    html = client.get(url(Customer, "changelist"), {"q": term}).content.decode()
    assert url(Customer, "change", customer.pk) in html


def test_search_by_customer_id(admin_client, world):
    customer = world["globex"]["customer"]
    html = admin_client.get(url(Customer, "changelist"), {"q": customer.customer_id}).content.decode()
    assert url(Customer, "change", customer.pk) in html
    assert url(Customer, "change", world["acme"]["customer"].pk) not in html


def test_brand_filter(admin_client, world, brand):
    html = admin_client.get(url(Customer, "changelist"), {"brand__id__exact": brand.pk}).content.decode()
    assert url(Customer, "change", world["acme"]["customer"].pk) in html
    assert url(Customer, "change", world["globex"]["customer"].pk) not in html


# ---------------------------------------------------------------- help text and the empty admin (issue 6)

LOCAL_APPS = ["hub", "customers", "inbound", "outbound", "rules", "synclog"]


def test_every_field_has_help_text():
    """Each field says what it means (in the contracts' words) wherever the admin shows it."""
    from django.apps import apps

    missing = [
        f"{model._meta.label}.{field.name}"
        for app in LOCAL_APPS
        for model in apps.get_app_config(app).get_models()
        if not model._meta.label.split(".")[1].startswith("Historical")
        for field in model._meta.concrete_fields
        if not field.primary_key and not str(field.help_text).strip()
    ]
    assert missing == []


def test_an_empty_admin_shows_how_to_start_including_assigning_people(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert "No brand yet" in html and "/admin/hub/brand/add/" in html
    assert "Add people" in html and "auditor" in html


def test_a_new_brand_member_sees_next_steps_and_the_configuration_changes(client, brand):
    login(client, brand, Role.ADMIN, "newbie")
    html = client.get("/admin/").content.decode()
    assert 'id="hookhub-next-steps"' in html
    assert reverse("admin:hub_credential_add") in html
    assert f"{reverse('admin:hub_configuration_changes')}?brand={brand.pk}" in html
    credential_issue(brand=brand, integration="omnidesk")
    assert 'id="hookhub-next-steps"' not in client.get("/admin/").content.decode()
