"""Configuration history (issue 6): every change to CRM syncs and their webhooks,
dispatcher rules and inbound keys is recorded with who, when and what changed;
auditors of the brand browse it, other brands get 404; no secret ever enters
the history or a page an auditor sees; history pages never write."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.urls import reverse

from hooks.outbound.models import SECRET_FIELDS, CrmSync, CrmSyncAction, WebhookRequestConfig
from hooks.rules.models import EventRule
from hub.models import Credential, Membership, Role
from hub.services import credential_issue, membership_grant
from tests import factories

pytestmark = pytest.mark.django_db

SYNC_URL = "admin:outbound_crmsync_{}"
RULE_URL = "admin:rules_eventrule_{}"


def _management(prefix, total, initial):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1",
    }


def sync_form(sync: CrmSync, **changes) -> dict:
    """The CRM sync change form as the browser posts it, secrets left blank (= keep)."""
    data = {
        "brand": sync.brand_id,
        "name": sync.name,
        "enabled": "on" if sync.enabled else "",
        "auth_type": sync.auth_type,
        "auth_username": sync.auth_username,
        "auth_password": "",
        "api_key_header": sync.api_key_header,
        "api_key": "",
    }
    for prefix, kind in (("actions", "create"), ("actions-2", "update"), ("actions-3", "delete")):
        action = sync.actions.get(action=kind)
        data.update(_management(prefix, 1, 1))
        row = {
            "id": action.pk,
            "sync": sync.pk,
            "enabled": "on" if action.enabled else "",
            "method": action.method,
            "url": action.url,
            "headers": action.headers,
            "body": action.body,
            "body_format": action.body_format,
            "verify_ssl": "on" if action.verify_ssl else "",
            "timeout_seconds": action.timeout_seconds,
            "use_sync_auth": "on" if action.use_sync_auth else "",
            "auth_type": action.auth_type,
            "auth_username": action.auth_username,
            "api_key_header": action.api_key_header,
        }
        if kind == "create":
            row["unique_id_path"] = action.unique_id_path
        data.update({f"{prefix}-0-{key}": value for key, value in row.items()})
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


@pytest.fixture
def anna(brand):
    return factories.member(brand, Role.ADMIN, username="anna")


@pytest.fixture
def audrey(brand):
    return factories.member(brand, Role.AUDITOR, username="audrey")


@pytest.fixture
def sync(brand):
    return factories.crm_sync(brand, name="Acme CRM", api_key="tok-ORIGINAL-123")


def test_every_webhook_configuration_model_keeps_history_without_secrets():
    """New WebhookRequestConfig subclasses must declare history too (the abstract base cannot)."""
    concrete = [m for m in apps.get_models() if issubclass(m, WebhookRequestConfig)]
    assert set(concrete) >= {CrmSyncAction, EventRule}
    for model in [*concrete, CrmSync]:
        history_fields = {f.name for f in model.history.model._meta.get_fields()}
        assert not history_fields & set(SECRET_FIELDS), model
        assert "secrets" in history_fields, model


def test_a_sync_change_in_the_admin_is_recorded_with_who_when_and_what(client, anna, sync):
    client.force_login(anna)
    data = sync_form(sync, name="Acme CRM (prod)", **{"actions-2-0-method": "PATCH"})
    response = client.post(reverse(SYNC_URL.format("change"), args=[sync.pk]), data)
    assert response.status_code == 302, response.content.decode()[:3000]

    latest = sync.history.latest()
    assert latest.history_type == "~" and latest.history_user == anna
    assert [c.field for c in latest.diff_against(latest.prev_record).changes] == ["name"]
    update = CrmSyncAction.objects.get(sync=sync, action="update")
    action_version = update.history.latest()
    assert action_version.history_user == anna
    assert [(c.field, c.old, c.new) for c in action_version.diff_against(action_version.prev_record).changes] == [
        ("method", "PUT", "PATCH")
    ]

    page = client.get(reverse(SYNC_URL.format("history"), args=[sync.pk])).content.decode()
    assert "anna" in page and "Acme CRM (prod)" in page
    assert "PUT&nbsp;&rarr;&nbsp;PATCH" in page  # the webhook's change, on the sync's history page
    assert "tok-ORIGINAL-123" not in page


def test_a_replaced_secret_shows_as_a_changed_fingerprint_never_as_the_value(client, anna, audrey, sync):
    client.force_login(anna)
    data = sync_form(sync, api_key="tok-REPLACED-456")
    assert client.post(reverse(SYNC_URL.format("change"), args=[sync.pk]), data).status_code == 302
    sync.refresh_from_db()
    assert sync.api_key == "tok-REPLACED-456"
    before, after = sync.history.order_by("history_id")[0], sync.history.latest()
    assert before.secrets != after.secrets
    assert "API key / bearer token: set (" in after.secrets
    for version in sync.history.all():
        stored = " ".join(str(value) for value in version.__dict__.values())
        assert "tok-ORIGINAL-123" not in stored and "tok-REPLACED-456" not in stored

    client.force_login(audrey)
    for page in (
        reverse(SYNC_URL.format("history"), args=[sync.pk]),
        reverse(SYNC_URL.format("change"), args=[sync.pk]),
        reverse("admin:outbound_crmsync_simple_history", args=[sync.pk, after.history_id]),
        reverse("admin:hub_configuration_changes"),
    ):
        response = client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        for secret in ("tok-ORIGINAL-123", "tok-REPLACED-456", sync.signing_secret):
            assert secret not in html, page
    html = client.get(reverse(SYNC_URL.format("history"), args=[sync.pk])).content.decode()
    # Only the replaced secret is listed, as fingerprints.
    old_key = before.secrets.split("API key / bearer token: ")[1].split(";")[0]
    new_key = after.secrets.split("API key / bearer token: ")[1].split(";")[0]
    assert old_key != new_key and old_key.startswith("set (")
    assert f"<strong>API key / bearer token (secret):</strong> {old_key}&nbsp;&rarr;&nbsp;{new_key}" in html
    assert "Signing secret (secret)" not in html and "Password (secret)" not in html


def test_a_superuser_viewing_an_old_version_sees_no_secret_either(admin_client, sync):
    version = sync.history.latest()
    response = admin_client.get(reverse("admin:outbound_crmsync_simple_history", args=[sync.pk, version.history_id]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "tok-ORIGINAL-123" not in html and sync.signing_secret not in html
    assert "API key / bearer token: set (hidden)" in html


def test_auditor_sees_that_secrets_are_set_never_their_values(client, audrey, brand):
    rule = factories.event_rule(brand, name="Acme rule", auth_password="pw-VISIBLE?", api_key="key-VISIBLE?")
    client.force_login(audrey)
    html = client.get(reverse(RULE_URL.format("change"), args=[rule.pk])).content.decode()
    assert "Acme rule" in html
    assert "pw-VISIBLE?" not in html and "key-VISIBLE?" not in html
    assert "password: set (hidden)" in html and "signing secret: not set" in html


def test_rules_changed_by_form_action_and_list_are_all_recorded(client, anna, brand):
    rule = factories.event_rule(brand, name="Acme rule")
    client.force_login(anna)
    changelist = reverse(RULE_URL.format("changelist"))
    client.post(changelist, {"action": "enable", "_selected_action": [rule.pk], "index": 0})
    rule.refresh_from_db()
    assert rule.enabled
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "form-0-id": str(rule.pk),
        "form-0-enabled": "on",
        "form-0-order": "7",
        "_save": "Save",
    }
    assert client.post(changelist, data).status_code == 302
    versions = list(rule.history.order_by("history_id"))
    assert [v.history_type for v in versions] == ["+", "~", "~"]
    assert [v.history_user for v in versions] == [None, anna, anna]
    assert [c.field for c in versions[1].diff_against(versions[0]).changes] == ["enabled"]
    assert [c.field for c in versions[2].diff_against(versions[1]).changes] == ["order"]


def test_keys_issued_and_revoked_are_recorded(client, anna, audrey, brand):
    client.force_login(anna)
    response = client.post(
        reverse("admin:hub_credential_add"), {"brand": brand.pk, "integration": "m8com", "name": "prod"}
    )
    assert response.status_code == 200
    key = Credential.objects.get(name="prod")
    client.post(
        reverse("admin:hub_credential_changelist"),
        {"action": "revoke_selected", "_selected_action": [key.pk], "index": 0},
    )
    versions = list(key.history.order_by("history_id"))
    assert [v.history_type for v in versions] == ["+", "~"]
    assert versions[1].revoked_at is not None and versions[1].history_user == anna
    client.force_login(audrey)
    html = client.get(reverse("admin:hub_credential_history", args=[key.pk])).content.decode()
    assert "Revoked:" in html and "anna" in html


def test_history_pages_are_404_for_other_brands_and_never_write(client, audrey, anna, sync, other_brand):
    theirs = factories.crm_sync(other_brand, name="Globex CRM")
    client.force_login(audrey)
    assert client.get(reverse(SYNC_URL.format("history"), args=[theirs.pk])).status_code == 404
    version = theirs.history.latest()
    page = reverse("admin:outbound_crmsync_simple_history", args=[theirs.pk, version.history_id])
    assert client.get(page).status_code == 404

    # Reverting through the version page: simple-history would save the old
    # version for anyone allowed to view it; here it is refused for everyone.
    client.force_login(anna)
    client.post(reverse(SYNC_URL.format("change"), args=[sync.pk]), sync_form(sync, name="Renamed"))
    first = sync.history.order_by("history_id").first()
    old_page = reverse("admin:outbound_crmsync_simple_history", args=[sync.pk, first.history_id])
    for user in (audrey, anna):
        client.force_login(user)
        view = client.get(old_page)
        assert view.status_code == 200 and "Acme CRM" in view.content.decode()
        assert 'name="_save"' not in view.content.decode()
        assert client.post(old_page, {"name": "Reverted"}).status_code == 403
    sync.refresh_from_db()
    assert sync.name == "Renamed"


def test_configuration_changes_page_lists_the_users_brands_only(client, anna, audrey, sync, brand, other_brand):
    factories.crm_sync(other_brand, name="Globex CRM")
    client.force_login(anna)
    client.post(reverse(SYNC_URL.format("change"), args=[sync.pk]), sync_form(sync, name="Acme CRM v2"))
    rule = factories.event_rule(brand, name="Acme rule")
    credential_issue(brand=other_brand, integration="omnidesk", name="globex key")

    client.force_login(audrey)
    response = client.get(reverse("admin:hub_configuration_changes"))
    assert response.status_code == 200
    entries = response.context["entries"]
    assert entries, "nothing listed"
    html = response.content.decode()
    assert "Globex" not in html and "globex" not in html
    assert {e.hub_brand_name for e in entries} == {"Acme"}
    kinds = {e.hub_source.key for e in entries}
    assert {"outbound.crmsync", "outbound.crmsyncaction", "rules.eventrule"} <= kinds
    renamed = next(e for e in entries if e.hub_source.key == "outbound.crmsync" and e.history_type == "~")
    assert renamed.history_user == anna
    assert [c["field"] for c in renamed.history_delta_changes] == ["Friendly name"]
    assert renamed.hub_history_url == reverse(SYNC_URL.format("history"), args=[sync.pk])
    assert reverse(RULE_URL.format("history"), args=[rule.pk]) in html
    # Filtered to one kind of configuration.
    only_rules = client.get(reverse("admin:hub_configuration_changes"), {"kind": "rules.eventrule"})
    assert {e.hub_source.key for e in only_rules.context["entries"]} == {"rules.eventrule"}
    # A brand the user is not in, asked for by id, shows nothing.
    foreign = client.get(reverse("admin:hub_configuration_changes"), {"brand": other_brand.pk})
    assert foreign.context["entries"] == []


def test_configuration_changes_page_queries_do_not_grow_with_the_entries(
    client, audrey, brand, django_assert_max_num_queries
):
    for n in range(10):
        sync = factories.crm_sync(brand, name=f"CRM {n}")
        sync.name = f"CRM {n} renamed"
        sync.save()
        for action in sync.actions.all():
            action.timeout_seconds = 20
            action.save()
    client.force_login(audrey)
    with django_assert_max_num_queries(30):
        response = client.get(reverse("admin:hub_configuration_changes"))
    kinds = [entry.hub_source.key for entry in response.context["entries"]]
    assert (kinds.count("outbound.crmsync"), kinds.count("outbound.crmsyncaction")) == (20, 60)
    assert set(kinds) == {"outbound.crmsync", "outbound.crmsyncaction", "hub.brand", "hub.membership"}
    assert "CRM 9 renamed — Update Users" in response.content.decode()


def test_staff_without_brands_cannot_open_the_changes_page(client):
    user = factories.UserFactory(username="nobody")
    user.save()
    client.force_login(user)
    assert client.get(reverse("admin:hub_configuration_changes")).status_code == 403


# ---------------------------------------------------------------- assigning people


def test_membership_grant_makes_the_user_staff_and_is_idempotent(brand):
    user = factories.UserFactory(username="newcomer", is_staff=False)
    user.save()
    membership_grant(user=user, brand=brand, role=Role.AUDITOR)
    membership_grant(user=user, brand=brand, role=Role.ADMIN)
    user.refresh_from_db()
    assert user.is_staff
    assert list(Membership.objects.filter(user=user).values_list("brand__slug", "role")) == [("acme", "admin")]
    with pytest.raises(ValueError):
        membership_grant(user=user, brand=brand, role="owner")


def test_an_operator_assigns_a_role_on_the_user_page(admin_client, brand):
    from django.contrib.auth import get_user_model

    user = factories.UserFactory(username="newcomer", is_staff=False)
    user.save()
    page = admin_client.get(reverse("admin:auth_user_change", args=[user.pk]))
    assert page.status_code == 200 and "brand roles (admins configure" in page.content.decode().lower()
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(
        {
            "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
            "is_active": "on",
            "groups": [],
            "user_permissions": [],
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-brand": str(brand.pk),
            "memberships-0-role": Role.AUDITOR,
        }
    )
    data = {k: v for k, v in data.items() if v not in (False, None, [])}
    data.pop("last_login", None)
    response = admin_client.post(reverse("admin:auth_user_change", args=[user.pk]), data)
    assert response.status_code == 302, response.content.decode()[:4000]
    user = get_user_model().objects.get(pk=user.pk)
    assert user.is_staff
    assert Membership.objects.get(user=user).role == Role.AUDITOR
    assert Membership.history.filter(user_id=user.pk).count() == 1


def test_an_operator_assigns_people_on_the_brand_page_and_a_brand_admin_cannot(client, admin_client, brand, anna):
    html = admin_client.get(reverse("admin:hub_brand_change", args=[brand.pk])).content.decode().lower()
    assert "members (admins configure, auditors read)" in html
    client.force_login(anna)
    html = client.get(reverse("admin:hub_brand_change", args=[brand.pk])).content.decode().lower()
    assert "members (admins configure, auditors read)" not in html
    assert client.get(reverse("admin:hub_membership_changelist")).status_code == 403
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403


def test_moving_a_membership_to_another_user_revokes_the_old_access(admin_client, brand, other_brand):
    alice = factories.member(brand, Role.ADMIN, username="alice")
    bob = factories.UserFactory(username="bob", is_staff=False)
    bob.save()
    membership = Membership.objects.get(user=alice)
    response = admin_client.post(
        reverse("admin:hub_membership_change", args=[membership.pk]),
        {"user": bob.pk, "brand": other_brand.pk, "role": Role.AUDITOR},
    )
    assert response.status_code == 302, response.content.decode()[:1500]
    assert list(Membership.objects.values_list("user__username", "brand__slug", "role")) == [
        ("bob", "globex", "auditor")
    ]
    bob.refresh_from_db()
    assert bob.is_staff
    assert Membership.history.filter(user_id=alice.pk, history_type="-").exists()  # the revocation is recorded


def test_keys_typed_into_urls_or_headers_are_masked_in_the_history(client, brand):
    from hooks.rules.services import rule_create

    rule = rule_create(
        brand=brand, name="Old rule", event_types=["workitem.closed"], url="https://crm.example.com/notes"
    )
    # As a configuration saved before plain secret headers were refused would hold them.
    rule.url = "https://crm.example.com/notes?api_key=sk_url_secret"
    rule.headers = 'Accept: application/json\nAuthorization: Bearer sk_header_secret'
    rule.save()
    client.force_login(factories.member(brand, Role.AUDITOR, username="audrey"))
    for url in (reverse("admin:rules_eventrule_history", args=[rule.pk]), reverse("admin:hub_configuration_changes")):
        html = client.get(url).content.decode()
        assert "api_key=********" in html
        assert "sk_url_secret" not in html and "sk_header_secret" not in html
        assert "Accept: application/json" in html


def test_secret_json_headers_are_masked_in_the_history_and_quotes_are_not_escaped_twice(client, brand):
    from hooks.rules.services import rule_create

    rule = rule_create(brand=brand, name="JSON headers", event_types=["workitem.closed"], url="https://crm.example.com/n")
    rule.headers = '{"Accept": "application/json", "X-Api-Key": "hdr-secret"}'  # saved before such headers were refused
    rule.save()
    client.force_login(factories.member(brand, Role.AUDITOR, username="audrey"))
    for url in (reverse("admin:rules_eventrule_history", args=[rule.pk]), reverse("admin:hub_configuration_changes")):
        html = client.get(url).content.decode()
        assert "hdr-secret" not in html
        assert "&quot;X-Api-Key&quot;: &quot;********&quot;" in html
        assert "&amp;quot;" not in html
