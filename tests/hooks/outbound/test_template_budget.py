"""Outbound templates (CRM sync actions, dispatcher rules) under the template
runtime's budget, tried as a hostile brand admin: looping bodies refused on
save without hanging the admin, a stalling template stored anyway fails its
delivery promptly, a customer id cannot change the request's path, and a
secret-derived expression is refused and never shows up in a preview."""

from __future__ import annotations

import time

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from hooks.outbound.models import CrmSyncAction, Delivery
from hooks.rules.models import EventRule
from hooks.rules.services import rule_create, rule_preview_customer
from hub.models import Role
from synclog.models import DeliveryAttempt
from tests import factories

from .conftest import make_sync, run_all
from .test_admin import _action, _management

pytestmark = pytest.mark.django_db

LOOPING_BODY = (
    '{"n": "{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}'
    '{% endfor %}{% endfor %}{% endfor %}"}'
)
ATTACK_ID = "1/../../logout?next=//evil.example#"


def test_the_admin_save_of_a_looping_body_returns_promptly_with_a_form_error(client, brand):
    client.force_login(factories.member(brand, Role.ADMIN, username="ada"))
    data = {
        "brand": brand.pk,
        "name": "Looping",
        "auth_type": "none",
        "api_key_header": "X-API-Key",
        **_management("actions", 1, 0),
        **_action("actions", url="https://crm.example.com/people", body=LOOPING_BODY),
        **_management("actions-2", 0, 0),
        **_management("actions-3", 0, 0),
    }
    started = time.perf_counter()
    response = client.post(reverse("admin:outbound_crmsync_add"), data)
    assert time.perf_counter() - started < 2.0
    assert response.status_code == 200
    assert "The json template was stopped" in response.content.decode()
    assert not CrmSyncAction.objects.exists()


@pytest.mark.parametrize(
    ("field", "source", "message"),
    [
        ("body", LOOPING_BODY, "The json template was stopped"),
        ("body", '{"n": {{ ("x" * 10**8)|length }}}', "larger than"),
        ("url", "https://crm.example.com/{{ 1/0 }}", "ZeroDivisionError"),
        ("headers", 'X-Pad: {{ "x"|center(10**9) }}', "The header template was stopped"),
    ],
)
def test_stalling_or_failing_templates_are_refused_by_clean(field, source, message):
    action = CrmSyncAction(action="create", url="https://crm.example.com/people", body="{}")
    setattr(action, field, source)
    started = time.perf_counter()
    with pytest.raises(ValidationError) as caught:
        action.clean()
    assert time.perf_counter() - started < 1.0
    assert message in " ".join(caught.value.message_dict[field])


def test_a_stalling_body_stored_anyway_fails_its_delivery_promptly(brand, httpserver, receiver_url, clock):
    sync = make_sync(brand, receiver_url)
    CrmSyncAction.objects.filter(sync=sync, action="create").update(body=LOOPING_BODY)
    factories.customer(brand)
    started = time.perf_counter()
    run_all()
    assert time.perf_counter() - started < 5.0  # without the budget: 10^9 loop steps
    attempt = DeliveryAttempt.objects.get()
    assert attempt.error.startswith("Could not build the request: The json template was stopped")
    assert Delivery.objects.get().state == "pending"  # retried later, like any failure
    assert len(httpserver.log) == 0


def test_a_customer_id_cannot_change_the_request_path(brand, httpserver, receiver_url, clock):
    sync = make_sync(brand, receiver_url)
    CrmSyncAction.objects.filter(sync=sync, action="create").update(
        url=receiver_url + "/people/{{ person.customer_id }}/notes?x=1"
    )
    httpserver.expect_request("/unused").respond_with_data("ok")
    factories.customer(brand, customer_id=ATTACK_ID)
    run_all()
    ((request, _response),) = httpserver.log
    assert request.environ["RAW_URI"] == "/people/1%2F..%2F..%2Flogout%3Fnext%3D%2F%2Fevil.example%23/notes?x=1"
    assert request.args.to_dict() == {"x": "1"}


# ---------------------------------------------------------------- secrets in rules

TOKEN = "123456:ABC-secret-token"
DERIVED = "https://api.telegram.org/bot{{ secrets.api_key|reverse }}/sendMessage"


def test_a_secret_derived_expression_is_refused_on_save(brand):
    with pytest.raises(ValidationError) as caught:
        rule_create(brand=brand, name="Leaky", event_types=["customer.created"], url=DERIVED, api_key=TOKEN)
    assert "a secret may only be written as it is" in caught.value.message_dict["url"][0]
    assert not EventRule.objects.exists()


def test_a_secret_derived_expression_stored_anyway_never_shows_or_sends(brand, httpserver, receiver_url, clock):
    rule = rule_create(
        brand=brand,
        name="Telegram",
        enabled=True,
        event_types=["customer.created"],
        url=receiver_url + "/bot{{ secrets.api_key|raw }}/sendMessage",
        body='{"text": "{{ customer.name }}"}',
        api_key=TOKEN,
    )
    EventRule.objects.filter(pk=rule.pk).update(
        url=receiver_url + "/bot{{ secrets.api_key|reverse }}/x", body='{"k": "{{ secrets.api_key|upper }}"}'
    )
    rule.refresh_from_db()
    customer = factories.customer(brand)
    preview = rule_preview_customer(rule=rule, customer=customer, event_type="customer.created")
    shown = preview.error + preview.request_text
    assert "a secret may only be written as it is" in preview.error
    for derived in (TOKEN[::-1], TOKEN.upper(), TOKEN):
        assert derived not in shown
    run_all()
    assert len(httpserver.log) == 0
    attempt = DeliveryAttempt.objects.get()
    assert "a secret may only be written as it is" in attempt.error
    assert TOKEN[::-1] not in attempt.error and TOKEN.upper() not in attempt.error
