"""Admin lists accept only their declared filters (issue 9, "One tenancy scope").

Written as the attack an auditor made: an undeclared lookup in a list's query
string, e.g. ``?delivery__brand__memberships__user__password__startswith=pbkdf2_sha256$``
on the delivery attempts, answered rows for a right prefix and none for a wrong
one: a character-by-character oracle on password hashes (and, through a user in
two brands, on another brand's data). Every registered admin is walked (found
in ``admin.site._registry``, so a new admin is covered by being registered), as a
brand auditor and as a brand admin, with a relation lookup that reaches the
``password`` of users: 400, the same answer for a right and a wrong prefix, and
no rows. Declared filters keep working; superusers keep Django's own rule.
"""

from __future__ import annotations

from collections import deque

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from customers.models import Customer
from hooks.outbound.models import Delivery
from hub import scoping
from hub.models import Credential, Membership, Role
from hub.tenancy import BrandScopedAdmin, BrandScopedInline
from synclog.models import DeliveryAttempt, InboundRequest
from synclog.panels import customer_log_links
from tests import factories
from tests.synclog import factories as logs
from tests.test_tenancy_pages import make_objects

pytestmark = pytest.mark.django_db

User = get_user_model()
REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)
ROLES = [Role.AUDITOR, Role.ADMIN]
# Operator pages of brand-owned models: superusers only, and asserted closed to members below.
OPERATOR_ONLY = {Membership}
WRONG_PREFIX = "zz_not_a_hasher$"


def label(model) -> str:
    return model._meta.label


def changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def _relations(model):
    for field in model._meta.get_fields():
        target = field.related_model if field.is_relation else None
        if target is not None and not isinstance(target, str):
            yield field.name, target


def path_to_users(model, *, first: str | None = None) -> str | None:
    """The shortest ORM path from ``model`` to the user model through any relation
    (``brand__memberships__user``), starting with the relation ``first`` when
    given; "" for the user model itself, None when there is none."""
    if model is User:
        return ""
    seen = {model}
    queue: deque = deque((target, name) for name, target in _relations(model) if first is None or name == first)
    while queue:
        current, path = queue.popleft()
        if current is User:
            return path
        if current in seen or path.count("__") >= 4:
            continue
        seen.add(current)
        queue.extend((target, f"{path}__{name}") for name, target in _relations(current) if target not in seen)
    return None


def password_lookups(model) -> list[str]:
    """One lookup reaching users' password per relation of the model that leads
    there (brand__..., delivery__brand__..., customer__brand__...)."""
    if model is User:
        return ["password__startswith"]
    paths = {path_to_users(model, first=name) for name, _target in _relations(model)} - {None}
    if paths:
        return sorted(f"{path}__password__startswith" for path in paths)
    # No way to the users: any undeclared relation lookup (or, without relations, a local one).
    relation = next((f for f in model._meta.get_fields() if f.is_relation and f.concrete), None)
    if relation is not None:
        return [f"{relation.name}__pk__startswith"]
    return [f"{model._meta.pk.name}__startswith"]


@pytest.fixture
def world(brand, other_brand):
    make_objects(brand, "Maria")
    make_objects(other_brand, "Olle")
    # Someone of brand B whose hash the attacker is after.
    factories.member(other_brand, Role.ADMIN, username="olle-admin")
    return {"a": brand, "b": other_brand}


@pytest.fixture(params=ROLES)
def attacker(request, client, world):
    client.force_login(factories.member(world["a"], request.param, username=f"curious-{request.param}"))
    return client


def right_prefix() -> str:
    password = User.objects.get(username="olle-admin").password
    return password.split("$", 1)[0] + "$"


def assert_same_refusal(client, page: str, lookup: str, status: int) -> None:
    """Right prefix and wrong prefix: the same status and the same bytes (no oracle), no rows."""
    right = client.get(page, {lookup: right_prefix()})
    wrong = client.get(page, {lookup: WRONG_PREFIX})
    assert right.status_code == wrong.status_code == status, (page, lookup, right.status_code, wrong.status_code)
    assert right.content == wrong.content, (page, lookup)
    body = right.content.decode(errors="replace").lower()
    assert "globex" not in body and "olle" not in body and "maria" not in body, (page, lookup)


# ---------------------------------------------------------------- the attack, on every admin


@pytest.mark.parametrize("model", REGISTERED, ids=label)
def test_every_admin_refuses_a_relation_lookup_to_user_passwords(attacker, model):
    scoped = isinstance(admin.site._registry[model], BrandScopedAdmin)
    for lookup in password_lookups(model):
        # Brand-scoped lists: Django's 400 (DisallowedModelAdminLookup). Operator pages: closed (403).
        assert_same_refusal(attacker, changelist(model), lookup, 400 if scoped else 403)


@pytest.mark.parametrize("model", [m for m in REGISTERED if hasattr(admin.site._registry[m], "export_view")], ids=label)
def test_the_csv_export_of_every_log_list_refuses_it_too(attacker, model):
    export = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_export")
    for lookup in password_lookups(model):
        assert_same_refusal(attacker, export, lookup, 400)


def test_the_reported_attack_on_delivery_attempts_is_refused(client, world):
    client.force_login(factories.member(world["a"], Role.AUDITOR, username="audrey"))
    lookup = "delivery__brand__memberships__user__password__startswith"
    assert_same_refusal(client, changelist(DeliveryAttempt), lookup, 400)
    # The brand filter the list declares still answers.
    response = client.get(changelist(DeliveryAttempt), {"brand__id__exact": world["a"].pk})
    assert response.status_code == 200
    assert {a.brand_id for a in response.context["cl"].result_list} == {world["a"].pk}


@pytest.mark.parametrize(
    "model", [m for m in REGISTERED if isinstance(admin.site._registry[m], BrandScopedAdmin)], ids=label
)
def test_an_undeclared_lookup_on_the_models_own_fields_is_refused_too(attacker, model):
    """Django's own rule lets every local field through; a hidden column such as a
    key's secret_hash would then be an oracle of its own. Only declared filters pass."""
    model_admin = admin.site._registry[model]
    request = attacker.get(changelist(model)).wsgi_request
    declared = model_admin.declared_lookups(request)
    field = next(
        f.name for f in model._meta.concrete_fields if f"{f.name}__startswith" not in declared and not f.is_relation
    )
    first = attacker.get(changelist(model), {f"{field}__startswith": ""})
    assert first.status_code == 400, (model, field)


def test_a_keys_secret_hash_is_no_oracle(client, world):
    client.force_login(factories.member(world["a"], Role.AUDITOR, username="audrey"))
    stored = Credential.objects.get(brand=world["a"]).secret_hash
    for lookup in ("secret_hash__startswith", "secret_hash", "brand__credentials__secret_hash__startswith"):
        right = client.get(changelist(Credential), {lookup: stored[:2]})
        wrong = client.get(changelist(Credential), {lookup: "zz"})
        assert right.status_code == wrong.status_code == 400, lookup
        assert right.content == wrong.content


# ---------------------------------------------------------------- what still works


@pytest.mark.parametrize(
    "model", [m for m in REGISTERED if isinstance(admin.site._registry[m], BrandScopedAdmin)], ids=label
)
def test_every_declared_filter_parameter_is_accepted(attacker, world, model):
    """Each name a declared filter reads is answered (200, or Django's ?e=1 for a
    value it cannot use), never refused, and never shows brand B."""
    model_admin = admin.site._registry[model]
    request = attacker.get(changelist(model)).wsgi_request
    declared = sorted(model_admin.declared_lookups(request))
    assert declared or not model_admin.list_filter, model
    for name in declared:
        response = attacker.get(changelist(model), {name: str(world["a"].pk)})
        assert response.status_code in (200, 302), (model, name, response.status_code)
        if response.status_code == 302:
            assert "e=1" in response["Location"], (model, name)
        assert "globex" not in response.content.decode().lower(), (model, name)


def test_declared_filters_select_the_right_rows(client, world):
    client.force_login(factories.member(world["a"], Role.AUDITOR, username="audrey"))
    ours = InboundRequest.objects.get(brand=world["a"])
    response = client.get(changelist(InboundRequest), {"brand__id__exact": world["a"].pk, "integration": "omnidesk"})
    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [ours.pk]
    # Brand B's id in a declared filter: no rows (the list is restricted first), not an error.
    response = client.get(changelist(InboundRequest), {"brand__id__exact": world["b"].pk})
    assert response.status_code == 200 and list(response.context["cl"].result_list) == []
    # Date hierarchy, search, ordering and pagination are not lookups: they pass.
    year = ours.created_at.year
    response = client.get(changelist(InboundRequest), {"created_at__year": year, "q": "acme", "o": "1", "p": "1"})
    assert response.status_code == 200


def test_superusers_keep_djangos_rule(admin_client, world):
    """Superusers aside: local fields filter as Django allows, declared filters
    work, and a walk through relations is still refused by Django itself."""
    ours = InboundRequest.objects.get(brand=world["a"])
    response = admin_client.get(changelist(InboundRequest), {"note__startswith": "acme"})
    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [ours.pk]
    response = admin_client.get(changelist(InboundRequest), {"brand__id__exact": world["b"].pk})
    assert {row.brand_id for row in response.context["cl"].result_list} == {world["b"].pk}
    lookup = "brand__memberships__user__password__startswith"
    assert admin_client.get(changelist(InboundRequest), {lookup: "md5$"}).status_code == 400


# ---------------------------------------------------------------- the custom log pages


@pytest.mark.parametrize("page", ["/admin/logs/", "/admin/logs/export.csv"])
def test_the_unified_logs_page_and_its_csv_accept_only_their_filters(attacker, page):
    assert_same_refusal(attacker, page, "delivery__brand__memberships__user__password__startswith", 400)
    assert attacker.get(page, {"outcome": "failed", "p": "1"}).status_code == 200


# ---------------------------------------------------------------- every admin goes through the scope


def unscoped_admins(site) -> list[str]:
    """Admins (and their inlines) of brand-owned models that do not derive from the scoping base."""
    found = []
    for model, model_admin in site._registry.items():
        if scoping.brand_path(model) is not None and model not in OPERATOR_ONLY:
            if not isinstance(model_admin, BrandScopedAdmin):
                found.append(label(model))
        for inline in getattr(model_admin, "inlines", ()):
            owned = scoping.brand_path(inline.model) is not None and inline.model not in OPERATOR_ONLY
            if owned and not issubclass(inline, BrandScopedInline):
                found.append(f"{label(model)} inline {inline.__name__}")
    return found


def test_every_admin_of_a_brand_owned_model_derives_from_the_scoping_base():
    assert unscoped_admins(admin.site) == []


def test_the_guard_above_catches_an_admin_registered_without_the_base():
    site = admin.AdminSite(name="later")
    site.register(Customer, admin.ModelAdmin)
    assert unscoped_admins(site) == ["customers.Customer"]


@pytest.mark.parametrize("role", ROLES)
def test_operator_pages_and_other_admins_are_closed_to_brand_members(rf, world, role):
    """What does not derive from the base opens to superusers only (Django's model
    permissions, which no brand member has, or the page's own superuser rule)."""
    request = rf.get("/admin/")
    request.user = factories.member(world["a"], role, username=f"member-{role}")
    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, BrandScopedAdmin):
            continue
        assert not model_admin.has_module_permission(request), label(model)
        assert not model_admin.has_view_permission(request), label(model)


# ---------------------------------------------------------------- the scope's own answers


def test_each_models_path_to_its_brand_is_found_from_its_foreign_keys():
    expected = {
        "hub.Brand": "pk",
        "hub.Credential": "brand",
        "hub.Membership": "brand",
        "customers.Customer": "brand",
        "customers.Address": "brand",
        "customers.Activity": "customer__brand",
        "customers.CustomField": "customer__brand",
        "outbound.CrmSyncAction": "sync__brand",
        "outbound.RemoteId": "sync__brand",
        "outbound.Delivery": "brand",
        "synclog.DeliveryAttempt": "brand",
        "synclog.InboundRequest": "brand",
        "inbound.InboundEvent": "brand",
        "rules.EventRule": "brand",
        "auth.User": None,
    }
    assert {name: scoping.brand_path(apps.get_model(name)) for name in expected} == expected
    # A version of a brand keeps the brand's id in "id" (its own pk is history_id).
    assert scoping.brand_path(apps.get_model("hub.Brand").history.model) == "id"
    assert scoping.brand_path(apps.get_model("outbound.CrmSyncAction").history.model) == "sync__brand"


def test_a_model_of_no_brand_is_refused_rather_than_answered_unscoped(world):
    user = factories.member(world["a"], Role.ADMIN, username="anna")
    with pytest.raises(ImproperlyConfigured):
        scoping.restrict(User.objects.all(), user=user, action=scoping.VIEW)
    with pytest.raises(ValueError):
        scoping.restrict(Credential.objects.all(), user=user, action="delete")  # type: ignore[arg-type]


def test_view_and_change_follow_the_role_in_each_brand(world):
    """Admin of A, auditor of B: views both, changes A only; a switched-off brand counts for nothing."""
    user = factories.member(world["a"], Role.ADMIN, username="mixed")
    Membership.objects.create(user=user, brand=world["b"], role=Role.AUDITOR)
    keys = Credential.objects.all()
    assert {k.brand_id for k in scoping.restrict(keys, user=user, action=scoping.VIEW)} == {
        world["a"].pk,
        world["b"].pk,
    }
    assert {k.brand_id for k in scoping.restrict(keys, user=user, action=scoping.CHANGE)} == {world["a"].pk}
    theirs = Credential.objects.get(brand=world["b"])
    assert scoping.permits(user=user, obj=theirs, action=scoping.VIEW)
    assert not scoping.permits(user=user, obj=theirs, action=scoping.CHANGE)
    world["b"].is_active = False
    world["b"].save()
    fresh = User.objects.get(pk=user.pk)  # the roles are read once per request (cached on the user)
    assert list(scoping.brands(user=fresh, action=scoping.VIEW)) == [world["a"]]


# ---------------------------------------------------------------- links the hub builds use declared filters


def test_every_link_of_a_customers_logs_panel_lands_on_its_rows(client, world):
    """The customer page's Logs panel links into the lists with their declared
    filters only, so an auditor lands on the customer's rows, not on a 400."""
    maria = factories.customer(world["a"], customer_id="K-42")
    mine = logs.delivery(world["a"], customer_id=maria.pk)
    logs.delivery(world["a"], customer_id=maria.pk + 1000)  # someone else's
    client.force_login(factories.member(world["a"], Role.AUDITOR, username="audrey"))
    links = dict(customer_log_links(maria))
    for link in links.values():
        assert client.get(link).status_code == 200, link
    (deliveries,) = [url for text, url in links.items() if text.startswith("Deliveries")]
    expected = set(Delivery.objects.filter(customer_id=maria.pk).values_list("pk", flat=True))
    assert mine.pk in expected  # with the outbox's own delivery for customer.created
    assert {d.pk for d in client.get(deliveries).context["cl"].result_list} == expected


def test_the_start_here_panel_links_land_on_filtered_lists(client, world):
    client.force_login(factories.member(world["a"], Role.AUDITOR, username="audrey"))
    html = client.get("/admin/").content.decode()
    for page in (changelist(InboundRequest), changelist(DeliveryAttempt)):
        link = f"{page}?brand__id__exact={world['a'].pk}"
        assert link in html
        response = client.get(link)
        assert response.status_code == 200
        assert {row.brand_id for row in response.context["cl"].result_list} == {world["a"].pk}
