"""Roles and tenancy, page by page (issue 6).

For every model registered in the admin (new admins are covered by being
registered), a brand-A admin and a brand-A auditor: the list shows exactly
brand A's rows, filter choices and autocomplete never offer brand B, every URL
of a brand-B object answers 404, auditors change nothing, and actions posted
with brand-B ids do nothing. Brand B's objects all carry "Globex" (its name) or
"globex" (its slug) in their text, so a leak shows in the HTML.
"""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.urls import NoReverseMatch, reverse

from customers.models import Activity, Customer
from customers.services import activity_record
from hooks.outbound.engine import health
from hooks.outbound.models import CrmSync, OperationalWebhook
from hooks.rules.models import EventRule
from hooks.sources.models import LookupSource
from hub import scoping
from hub.models import Credential, Membership, Role
from hub.services import credential_issue
from hub.tenancy import BrandScopedAdmin
from tests import factories

pytestmark = pytest.mark.django_db

SKIPPED_APPS = {"auth"}
REGISTERED = sorted(
    (model for model in admin.site._registry if model._meta.app_label not in SKIPPED_APPS),
    key=lambda model: model._meta.label,
)
SCOPED = [model for model in REGISTERED if isinstance(admin.site._registry[model], BrandScopedAdmin)]
# What a brand admin may add; every other registered model answers 403 on "add".
ADDABLE_BY_BRAND_ADMIN = {Credential, Customer, Activity, CrmSync, EventRule, LookupSource, OperationalWebhook}
ROLES = [Role.ADMIN, Role.AUDITOR]


def label(model) -> str:
    return model._meta.label


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def brand_rows(model, brand):
    return model._default_manager.filter(**{scoping.brand_path(model): brand.pk})


def snapshot(model, pk):
    return list(model._default_manager.filter(pk=pk).values())


def make_objects(brand, prefix: str) -> None:
    """At least one object of every admin model for the brand."""
    customer = factories.customer(
        brand,
        first_name=prefix,
        last_name=f"{brand.name} customer",
        addresses=[{"type": "email", "address": f"someone@{brand.slug}.example"}],
    )
    activity_record(customer=customer, kind="NOTE", body=f"{brand.name} note", source=f"{brand.slug}-src")
    credential_issue(brand=brand, integration="omnidesk", name=f"{brand.slug} key")
    sync = factories.crm_sync(brand)
    factories.remote_id(sync, customer)
    rule = factories.event_rule(brand)
    factories.delivery_attempt(factories.delivery(brand, source=sync.actions.get(action="create")))
    factories.delivery(brand, source=rule, event_type="conversation.abandoned")
    factories.inbound_event(brand, summary=f"{brand.name} abandoned call", contact_number="+31612345678")
    factories.inbound_request(brand, note=f"{brand.slug} lookup")
    source = factories.lookup_source(brand)
    factories.source_call(source)
    factories.kept_customer(source, customer)
    health.operational_webhook_set(brand_id=brand.pk, url=f"https://{brand.slug}.example.com/ops")
    from hooks.outbound.models import RecoveryJob

    RecoveryJob.objects.create(brand=brand, description=f"{brand.name} recovery", created_by="command")


@pytest.fixture
def world(brand, other_brand):
    make_objects(brand, "Maria")
    make_objects(other_brand, "Olle")
    Membership.objects.create(user=factories.UserFactory(username="operator-made"), brand=other_brand)
    return {"a": brand, "b": other_brand}


@pytest.fixture(params=ROLES)
def role(request):
    return request.param


@pytest.fixture
def member_client(client, world, role):
    user = factories.member(world["a"], role, username=f"{role}-of-acme")
    client.force_login(user)
    client.role = role
    return client


def assert_no_brand_b(html: str, where) -> None:
    lowered = html.lower()
    assert "globex" not in lowered and "olle" not in lowered, where


# ---------------------------------------------------------------- lists


@pytest.mark.parametrize("model", REGISTERED, ids=label)
def test_changelist_lists_exactly_the_brands_rows(member_client, world, model):
    response = member_client.get(url(model, "changelist"), follow=True)
    if model not in SCOPED:
        assert response.status_code == 403  # operator pages (memberships, task queue): superusers only
        return
    assert response.status_code == 200
    html = response.content.decode()
    assert_no_brand_b(html, model)
    expected = set(brand_rows(model, world["a"]).values_list("pk", flat=True))
    assert expected, f"the test world has no {label(model)} of brand A"
    changelist = response.context["cl"]
    assert {obj.pk for obj in changelist.result_list} == expected
    # Filter choices are taken from brand A's rows only.
    for spec in changelist.filter_specs:
        for choice in spec.choices(changelist):
            assert "globex" not in str(choice.get("display", "")).lower(), (model, spec.title)


def test_relation_filters_offer_the_users_own_values(client, world, role):
    """A filter with one choice is hidden, so the user works on two brands here (A and Initech)."""
    from hooks.outbound.models import RemoteId

    third = factories.BrandFactory(slug="initech", name="Initech")
    make_objects(third, "Peter")
    user = factories.member(world["a"], role, username="two-brands")
    Membership.objects.create(user=user, brand=third, role=role)
    client.force_login(user)
    html = client.get(url(Credential, "changelist")).content.decode()
    for brand in (world["a"], third):
        assert f"brand__id__exact={brand.pk}" in html
    assert f"brand__id__exact={world['b'].pk}" not in html
    html = client.get(url(RemoteId, "changelist")).content.decode()
    for brand in (world["a"], third, world["b"]):
        sync = CrmSync.objects.get(brand=brand)
        assert (f"sync__id__exact={sync.pk}" in html) is (brand != world["b"]), brand
    assert_no_brand_b(html, "remote ids")


# ---------------------------------------------------------------- another brand's objects


@pytest.mark.parametrize("model", SCOPED, ids=label)
def test_every_url_of_a_brand_b_object_is_404(member_client, world, model):
    theirs = brand_rows(model, world["b"]).first()
    assert theirs is not None
    before = snapshot(model, theirs.pk)
    for view in ("change", "delete", "history"):
        assert member_client.get(url(model, view, theirs.pk)).status_code == 404, view
    assert member_client.post(url(model, "change", theirs.pk), {}).status_code == 404
    assert member_client.post(url(model, "delete", theirs.pk), {"post": "yes"}).status_code == 404
    model_admin = admin.site._registry[model]
    if hasattr(model_admin, "history_form_view"):
        version = model.history.filter(pk=theirs.pk).first() if hasattr(model, "history") else None
        if version is not None:
            page = url(model, "simple_history", theirs.pk, version.history_id)
            assert member_client.get(page).status_code == 404
            assert member_client.post(page, {}).status_code == 404
    assert snapshot(model, theirs.pk) == before


def _object_urls(model):
    """Every named admin URL of the model that takes one object id, custom pages
    (Send a test, Retry now, Preview) included: found, so new ones are covered."""
    for pattern in admin.site._registry[model].get_urls():
        converters = getattr(pattern.pattern, "converters", {})
        if pattern.name and len(converters) == 1:
            yield pattern.name, next(iter(converters))


@pytest.mark.parametrize("model", SCOPED, ids=label)
def test_every_object_url_including_custom_pages_is_404_for_brand_b(member_client, world, model):
    theirs = brand_rows(model, world["b"]).first()
    before = snapshot(model, theirs.pk)
    names = list(_object_urls(model))
    assert {f"{model._meta.app_label}_{model._meta.model_name}_{view}" for view in ("change", "delete")} <= {
        name for name, _ in names
    }
    for name, argument in names:
        page = reverse(f"admin:{name}", kwargs={argument: theirs.pk})
        assert member_client.get(page).status_code == 404, page
        assert member_client.post(page, {"confirm": "send", "delivery_ids": ["1"], "post": "yes"}).status_code == 404
    assert snapshot(model, theirs.pk) == before


@pytest.mark.parametrize("model", SCOPED, ids=label)
def test_a_brand_a_object_opens_and_shows_nothing_of_brand_b(member_client, world, model):
    ours = brand_rows(model, world["a"]).first()
    response = member_client.get(url(model, "change", ours.pk))
    assert response.status_code == 200
    assert_no_brand_b(response.content.decode(), model)
    if hasattr(model, "history"):
        history = member_client.get(url(model, "history", ours.pk))
        assert history.status_code == 200
        assert_no_brand_b(history.content.decode(), model)


@pytest.mark.parametrize("model", [m for m in SCOPED if admin.site._registry[m].inlines], ids=label)
def test_inlines_show_the_brands_rows_to_its_members(member_client, world, model):
    """Every inline of a brand-scoped page is shown to the brand's members (the
    parent decides), with the parent's rows only; operator inlines (memberships) excepted."""
    model_admin = admin.site._registry[model]
    ours = brand_rows(model, world["a"]).first()
    response = member_client.get(url(model, "change", ours.pk))
    shown = {formset.opts.__class__ for formset in response.context["inline_admin_formsets"]}
    expected = {inline for inline in model_admin.inlines if inline.__name__ != "MembershipInline"}
    assert shown == expected
    for formset in response.context["inline_admin_formsets"]:
        fk = formset.formset.fk
        for form in formset.formset.forms:
            if form.instance.pk:
                assert getattr(form.instance, fk.attname) == ours.pk


# ---------------------------------------------------------------- writes


@pytest.mark.parametrize("model", REGISTERED, ids=label)
def test_add_page_for_admins_where_addable_never_for_auditors(member_client, model):
    try:
        page = url(model, "add")
    except NoReverseMatch:
        pytest.skip("no add page")
    expected = 200 if member_client.role == Role.ADMIN and model in ADDABLE_BY_BRAND_ADMIN else 403
    assert member_client.get(page).status_code == expected


@pytest.mark.parametrize("model", SCOPED, ids=label)
def test_auditor_posts_are_refused_and_change_nothing(client, world, model):
    client.force_login(factories.member(world["a"], Role.AUDITOR, username="audrey"))
    ours = brand_rows(model, world["a"]).first()
    before = snapshot(model, ours.pk)
    html = client.get(url(model, "change", ours.pk)).content.decode()
    assert 'name="_save"' not in html
    assert client.post(url(model, "change", ours.pk), {"name": "changed", "enabled": "on"}).status_code == 403
    assert client.post(url(model, "delete", ours.pk), {"post": "yes"}).status_code == 403
    assert snapshot(model, ours.pk) == before


def test_auditor_is_offered_no_actions_that_change_anything(client, world):
    client.force_login(factories.member(world["a"], Role.AUDITOR, username="audrey"))
    for model in SCOPED:
        html = client.get(url(model, "changelist"), follow=True).content.decode()
        for name in ("delete_selected", "revoke_selected", "retry_now", "reprocess", "enable", "disable"):
            assert f'value="{name}"' not in html, (model, name)


# ---------------------------------------------------------------- actions


def _post_action(client, model, name, ids):
    return client.post(
        url(model, "changelist"),
        {"action": name, "_selected_action": [str(pk) for pk in ids], "index": 0, "post": "yes"},
    )


def _actions_of(model, superuser_request):
    return list(admin.site._registry[model].get_actions(superuser_request))


@pytest.fixture
def superuser_request(rf, admin_user):
    request = rf.get("/admin/")
    request.user = admin_user
    return request


@pytest.mark.parametrize("model", SCOPED, ids=label)
def test_actions_on_brand_b_ids_do_nothing(member_client, world, model, superuser_request):
    theirs = list(brand_rows(model, world["b"]).values_list("pk", flat=True))
    before = {pk: snapshot(model, pk) for pk in theirs}
    for name in _actions_of(model, superuser_request):
        response = _post_action(member_client, model, name, theirs)
        assert response.status_code in (200, 302, 403), (model, name)
        assert_no_brand_b(response.content.decode(errors="replace"), (model, name))
    assert {pk: snapshot(model, pk) for pk in theirs} == before


def test_a_user_who_administers_a_and_audits_b_changes_only_a(client, world, superuser_request):
    """Memberships mix: admin of A, auditor of B. B is visible, and stays unchanged."""
    user = factories.member(world["a"], Role.ADMIN, username="mixed")
    Membership.objects.create(user=user, brand=world["b"], role=Role.AUDITOR)
    client.force_login(user)
    for model in SCOPED:
        theirs = list(brand_rows(model, world["b"]).values_list("pk", flat=True))
        before = {pk: snapshot(model, pk) for pk in theirs}
        assert client.get(url(model, "change", theirs[0])).status_code == 200
        assert client.post(url(model, "change", theirs[0]), {"name": "changed"}).status_code == 403
        for name in _actions_of(model, superuser_request):
            _post_action(client, model, name, theirs)
        assert {pk: snapshot(model, pk) for pk in theirs} == before, model
    # list_editable (rules: enabled, order) refuses a row of B.
    rule = EventRule.objects.get(brand=world["b"])
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "form-0-id": str(rule.pk),
        "form-0-enabled": "on",
        "form-0-order": "1",
        "_save": "Save",
    }
    assert client.post(url(EventRule, "changelist"), data).status_code == 403
    rule.refresh_from_db()
    assert (rule.enabled, rule.order) == (False, 100)
    # The same user still edits A's rule from the list.
    ours = EventRule.objects.get(brand=world["a"])
    data["form-0-id"] = str(ours.pk)
    assert client.post(url(EventRule, "changelist"), data).status_code == 302
    ours.refresh_from_db()
    assert (ours.enabled, ours.order) == (True, 1)


def test_admin_actions_on_own_rows_still_work(client, world):
    client.force_login(factories.member(world["a"], Role.ADMIN, username="anna"))
    rule = EventRule.objects.get(brand=world["a"])
    theirs = EventRule.objects.get(brand=world["b"])
    _post_action(client, EventRule, "enable", [rule.pk, theirs.pk])
    assert EventRule.objects.get(pk=rule.pk).enabled is True
    assert EventRule.objects.get(pk=theirs.pk).enabled is False
    key = Credential.objects.get(brand=world["a"])
    _post_action(client, Credential, "revoke_selected", [key.pk])
    assert Credential.objects.get(pk=key.pk).revoked_at is not None


# ---------------------------------------------------------------- autocomplete and choices


def _autocomplete_targets():
    """(source model, field name, remote model) for every foreign key whose target
    has a searchable admin: what /admin/autocomplete/ answers for."""
    for model in REGISTERED:
        for field in model._meta.get_fields():
            if not (field.is_relation and field.concrete and (field.many_to_one or field.many_to_many)):
                continue
            remote = field.related_model
            remote_admin = admin.site._registry.get(remote)
            if remote_admin is not None and remote_admin.search_fields:
                yield model, field.name, remote


AUTOCOMPLETE = list(_autocomplete_targets())


@pytest.mark.parametrize(
    ("model", "field_name", "remote"), AUTOCOMPLETE, ids=[f"{label(m)}.{f}" for m, f, _ in AUTOCOMPLETE]
)
def test_autocomplete_never_offers_brand_b(member_client, world, model, field_name, remote):
    response = member_client.get(
        "/admin/autocomplete/",
        {"app_label": model._meta.app_label, "model_name": model._meta.model_name, "field_name": field_name},
    )
    if response.status_code != 200:
        assert response.status_code == 403, response.status_code
        return
    results = json.loads(response.content)["results"]
    ids = {int(row["id"]) for row in results}
    if isinstance(admin.site._registry[remote], BrandScopedAdmin):
        # Autocomplete fills a form field: it offers what an admin may pick, and nothing to an auditor.
        own = set(brand_rows(remote, world["a"]).values_list("pk", flat=True))
        assert ids == (own if member_client.role == Role.ADMIN else set())
    assert_no_brand_b(response.content.decode(), (model, field_name))


def test_autocomplete_offers_the_brands_the_user_administers(client, world):
    """Admin of A, auditor of B: the brand field's autocomplete offers A only."""
    user = factories.member(world["a"], Role.ADMIN, username="mixed")
    Membership.objects.create(user=user, brand=world["b"], role=Role.AUDITOR)
    client.force_login(user)
    response = client.get(
        "/admin/autocomplete/", {"app_label": "customers", "model_name": "customer", "field_name": "brand"}
    )
    assert response.status_code == 200
    assert [row["text"] for row in json.loads(response.content)["results"]] == ["Acme"]


def test_foreign_key_choices_are_the_users_brands_objects(client, world):
    client.force_login(factories.member(world["a"], Role.ADMIN, username="anna"))
    html = client.get(url(Activity, "add")).content.decode()
    assert_no_brand_b(html, "activity add")
    theirs = Customer.objects.get(brand=world["b"])
    response = client.post(
        url(Activity, "add"),
        {"customer": theirs.pk, "kind": "NOTE", "occurred_at_0": "2026-01-01", "occurred_at_1": "10:00:00"},
    )
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Activity.objects.filter(customer=theirs).exclude(body__contains="note").exists()


def test_a_filter_on_a_related_models_field_lists_only_the_users_values(rf, world):
    """Django's all-values filter reads the related table whole for a path such
    as sync__name; BrandScopedAdmin swaps in one that reads the user's rows."""
    from hooks.outbound.admin import RemoteIdAdmin
    from hooks.outbound.models import RemoteId

    class SyncNameFilterAdmin(RemoteIdAdmin):
        list_filter = ["sync__name"]

    user = factories.member(world["a"], Role.AUDITOR, username="audrey")
    request = rf.get("/admin/outbound/remoteid/")
    request.user = user
    changelist = SyncNameFilterAdmin(RemoteId, admin.site).get_changelist_instance(request)
    (spec,) = changelist.filter_specs
    offered = [str(choice["display"]) for choice in spec.choices(changelist)]
    assert offered == ["All", "Acme CRM"]
