"""The EddyDesk presets render valid requests; rules export and import."""

import base64
import json

import pytest
from django.core.exceptions import ValidationError

from hooks.inbound.models import InboundEvent
from hooks.outbound.models import Delivery
from hooks.rules.models import EventRule
from hooks.rules.presets import PRESETS
from hooks.rules.services import (
    rule_create,
    rule_create_from_preset,
    rule_preview_customer,
    rule_preview_inbound_event,
    rules_export,
    rules_import,
)
from tests.factories import customer

from .conftest import deliveries, run_all

pytestmark = pytest.mark.django_db

WORKITEM = {
    "id": "ff34b1fb68cd4f7f9921e70c08fab7a7",
    "mediaType": "Webchat",
    "isOutbound": True,
    "createdAt": "2022-03-08T07:39:47.6052457Z",
    "closedAt": "2022-03-08T07:41:47.6052457Z",
    "agent": {"id": "638858857ff57ad8637a7528", "name": "Agent John", "email": "john@agent.com", "phone": "+1234"},
    "customerIdentifier": "+31612345678",
    "customerId": "6d820576a3864160a715312b4e9ac376",
    "primaryConversationId": "48fad19d15104c8fbd7344853f35019e",
    "completionCode": "Success",
    "notes": 'Job "well" done',
    "result": "Handled",
}


def test_presets_create_disabled_rules_with_unique_names(brand):
    first = rule_create_from_preset(brand=brand, preset="telegram-abandoned-conversation")
    second = rule_create_from_preset(brand=brand, preset="telegram-abandoned-conversation")
    assert (first.name, second.name) == ("Telegram: abandoned conversation", "Telegram: abandoned conversation (2)")
    assert not first.enabled and first.event_types == ["conversation.abandoned"]
    with pytest.raises(ValidationError):
        rule_create_from_preset(brand=brand, preset="nope")


def test_telegram_preset_renders_a_valid_send_message(brand, post_event, settings):
    settings.HUB_ADMIN_BASE_URL = "https://hub.example.com/"
    tricky = customer(
        brand,
        customer_id="K-7",
        first_name='Jo "JJ"',
        last_name="<O'Brien> & Co",
        addresses=[{"kind": "telephone", "value": "+31612345678"}],
    )
    rule = rule_create_from_preset(brand=brand, preset="telegram-abandoned-conversation")
    rule.api_key = "123456:ABC-secret"
    rule.body = rule.body.replace("<CHAT-ID>", "987654")
    rule.full_clean()
    rule.save()
    post_event(
        "servicehooks/abandoned-conversation", {"phone": "+31612345678", "queue": "Sales & <Co>", "waitTime": 134}
    )
    preview = rule_preview_inbound_event(rule=rule, inbound_event=InboundEvent.objects.get())
    assert preview.would_fire is True  # judged as if enabled: previews come before enabling
    request = preview.request
    assert (request.method, request.url) == ("POST", "https://api.telegram.org/bot123456:ABC-secret/sendMessage")
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.body)
    assert body == {
        "parse_mode": "html",
        "chat_id": "987654",
        "text": "Abandoned conversation in queue Sales &amp; &lt;Co&gt; after 2 min 14 s: "
        "<b>Jo &#34;JJ&#34; &lt;O&#39;Brien&gt; &amp; Co</b> "
        f"<a href='https://hub.example.com/admin/customers/customer/{tricky.pk}/change/'>open in Hookhub</a>",
    }
    # the admin preview never shows the bot token
    assert "ABC-secret" not in preview.request_text
    assert "/bot********/sendMessage" in preview.request_text
    assert "ABC-secret" not in json.dumps(preview.context)


def test_telegram_bot_token_reaches_the_receiver_but_no_log(brand, receiver, post_event):
    from synclog.models import DeliveryAttempt

    server, base = receiver
    customer(brand, customer_id="K-8", first_name="Ann", addresses=[{"kind": "telephone", "value": "+31612345678"}])
    server.expect_oneshot_request("/bot123456:ABC-secret/sendMessage", method="POST").respond_with_json({"ok": True})
    rule = rule_create_from_preset(brand=brand, preset="telegram-abandoned-conversation")
    rule.url = rule.url.replace("https://api.telegram.org", base)  # the local stand-in for Telegram
    rule.api_key = "123456:ABC-secret"
    rule.body = rule.body.replace("<CHAT-ID>", "987654")
    rule.enabled = True
    rule.full_clean()
    rule.save()
    post_event("servicehooks/abandoned-conversation", {"phone": "+31612345678", "queue": "Sales", "waitTime": 5})
    (delivery,) = deliveries()
    assert "ABC-secret" not in json.dumps(delivery.context)  # the token is added at send time only
    run_all()
    ((request, _),) = server.log
    assert json.loads(request.get_data(as_text=True))["chat_id"] == "987654"
    attempt = DeliveryAttempt.objects.get()
    assert attempt.response_status == 200
    assert "ABC-secret" not in attempt.url + json.dumps(attempt.request_headers) + attempt.request_body


def test_crm_note_preset_fires_with_basic_auth_to_local_receiver(brand, receiver, post_event):
    server, base = receiver
    maria = customer(
        brand, customer_id="K-1001", first_name="Maria", addresses=[{"kind": "telephone", "value": "+31612345678"}]
    )
    server.expect_oneshot_request("/api/v2/customers/K-1001/comments/", method="POST").respond_with_json({"id": 5})
    rule = rule_create_from_preset(brand=brand, preset="crm-note-workitem-closed")
    rule.url = rule.url.replace("https://<YOUR-CRM-HOST>", base)
    rule.auth_username = "api-user"
    rule.auth_password = "pa55word"
    rule.enabled = True
    rule.full_clean()
    rule.save()
    post_event("servicehooks/workitem-closed", WORKITEM)
    post_event("servicehooks/workitem-closed", {**WORKITEM, "id": "other", "customerIdentifier": "+31205550000"})
    assert [d.customer_id for d in deliveries()] == [maria.pk]  # the second matched no customer: condition false
    run_all()
    ((request, _),) = server.log
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"api-user:pa55word").decode()
    assert json.loads(request.get_data(as_text=True)) == {
        "is_internal": True,
        "body": 'Webchat work item (outbound) closed by Agent John after 2 min: Success (Handled). Notes: Job "well" done',
        "agent": "Agent John",
        "work_item_id": "ff34b1fb68cd4f7f9921e70c08fab7a7",
        "conversation_id": "48fad19d15104c8fbd7344853f35019e",
    }


def test_every_preset_validates_as_is(brand):
    for key in PRESETS:
        rule = rule_create_from_preset(brand=brand, preset=key)
        assert rule.pk


def test_preview_reports_each_condition_and_the_request(brand, post_event):
    maria = customer(brand, customer_id="K-1", addresses=[{"kind": "telephone", "value": "+31612345678"}])
    rule = rule_create(
        brand=brand,
        name="Preview me",
        event_types=["conversation.abandoned"],
        conditions={"all": ['event.queue == "Sales"', "event.timeInQueue > 600"]},
        url="https://example.com/x?key={{ secrets.api_key }}",
        body='{"q": "{{ event.queue }}"}',
        auth_type="bearer",
        api_key="tok-secret-1",
    )
    assert "?key=********" in rule_preview_customer(rule=rule, customer=maria).request_text
    post_event("servicehooks/abandoned-conversation", {"phone": "+31612345678", "queue": "Sales", "waitTime": 134})
    preview = rule_preview_inbound_event(rule=rule, inbound_event=InboundEvent.objects.get())
    assert preview.evaluation.matched is False and preview.would_fire is False
    assert [(c.condition, c.actual, c.matched) for c in preview.evaluation.checks] == [
        ('event.queue == "Sales"', "Sales", True),
        ("event.timeInQueue > 600", 134, False),
    ]
    assert json.loads(preview.request.body) == {"q": "Sales"}
    assert "tok-secret-1" not in preview.request_text
    assert Delivery.objects.count() == 0  # a preview sends and stores nothing
    customer_preview = rule_preview_customer(rule=rule, customer=maria)
    assert customer_preview.triggers is False


def test_preview_refuses_another_brands_event(brand, other_brand, post_event):
    rule = rule_create(
        brand=other_brand, name="Theirs", event_types=["conversation.abandoned"], url="https://x.example"
    )
    post_event("servicehooks/abandoned-conversation", {"phone": "+31612345678"})
    with pytest.raises(ValidationError):
        rule_preview_inbound_event(rule=rule, inbound_event=InboundEvent.objects.get())


def test_rule_validation_on_save(brand):
    with pytest.raises(ValidationError) as caught:
        rule_create(
            brand=brand,
            name="Bad",
            event_types=["ticket.exploded"],
            conditions={"all": ["event.queue ~~ x"]},
            url="ftp://x",
            body='{"a": {{ event.queue }}}',
        )
    errors = caught.value.message_dict
    assert set(errors) >= {"event_types", "conditions", "url", "body"}
    assert "ticket.exploded" in errors["event_types"][0]
    assert EventRule.objects.count() == 0


def test_conditions_saved_normalized(brand):
    rule = rule_create(
        brand=brand,
        name="N",
        event_types=["call.logged"],
        conditions=["call.duration >= 1000"],
        url="https://x.example",
    )
    rule.refresh_from_db()
    assert rule.conditions == {"all": [{"field": "call.duration", "op": "greater_or_equal", "value": 1000}]}
    assert rule.conditions_text == "call.duration >= 1000"


def test_export_leaves_secrets_out_and_import_round_trips(brand, other_brand):
    rule_create(
        brand=brand,
        name="A",
        enabled=True,
        order=1,
        event_types=["call.logged"],
        conditions=["call.duration > 1"],
        url="https://a.example/{{ customer.customer_id }}",
        body='{"x": "{{ call.body }}"}',
        auth_type="basic",
        auth_username="u",
        auth_password="very-secret",
        signing_secret="whsec_c2VjcmV0c2VjcmV0c2VjcmV0",
    )
    rule_create(brand=brand, name="B", event_types=["customer.created"], url="https://b.example", method="GET")
    exported = rules_export(brand)
    text = json.dumps(exported)
    assert "very-secret" not in text and "whsec_" not in text
    assert [item["name"] for item in exported] == ["A", "B"]
    assert exported[0]["auth_password"] == {"env": "HOOKHUB_ACME_RULE_A_AUTH_PASSWORD"}
    assert exported[0]["signing_secret"] == {"env": "HOOKHUB_ACME_RULE_A_SIGNING_SECRET"}
    assert exported[0]["api_key"] is None
    assert exported[0]["conditions"] == {"all": [{"field": "call.duration", "op": "greater_than", "value": 1}]}

    # into another brand, secrets from the environment
    environ = {"HOOKHUB_ACME_RULE_A_AUTH_PASSWORD": "pw-from-env", "HOOKHUB_ACME_RULE_A_SIGNING_SECRET": "whsec_x"}
    assert rules_import(other_brand, json.loads(text), environ=environ) == 2
    theirs = {rule.name: rule for rule in EventRule.objects.filter(brand=other_brand)}
    assert theirs["A"].auth_password == "pw-from-env" and theirs["A"].enabled is True
    assert theirs["B"].method == "GET"
    assert rules_import(other_brand, json.loads(text), environ=environ) == 0  # the same file twice changes nothing

    # a missing environment variable refuses the whole section
    with pytest.raises(ValidationError) as caught:
        rules_import(other_brand, [{**exported[0], "order": 9}, {**exported[1], "order": 9}], environ={})
    assert caught.value.message_dict["rules"] == [
        "rules[0].auth_password: the environment variable HOOKHUB_ACME_RULE_A_AUTH_PASSWORD is not set.",
        "rules[0].signing_secret: the environment variable HOOKHUB_ACME_RULE_A_SIGNING_SECRET is not set.",
    ]
    assert set(EventRule.objects.filter(brand=other_brand).values_list("order", flat=True)) == {1, 100}
    assert EventRule.objects.count() == 4


def test_import_is_all_or_nothing_with_errors_per_item(brand):
    good = {"name": "Good", "event_types": ["call.logged"], "url": "https://x.example"}
    with pytest.raises(ValidationError) as caught:
        rules_import(
            brand,
            [
                good,
                {"name": "Bad", "event_types": [], "url": "nope"},
                {"name": "Good", "url": "https://y.example"},
                "x",
                {"name": "Plain secret", "event_types": ["call.logged"], "url": "https://x.example", "api_key": "k"},
                {**good, "name": "Odd", "brand": 5},
            ],
        )
    errors = caught.value.message_dict["rules"]
    assert sorted(e.split(":")[0] for e in errors) == [
        "rules[1].event_types",
        "rules[1].url",
        "rules[2].name",
        "rules[3]",
        "rules[4].api_key",
        "rules[5]",
    ]
    assert EventRule.objects.count() == 0
    with pytest.raises(ValidationError):
        rules_import(brand, {"not": "a list"})


def test_rules_are_a_section_of_export_config_and_import_config(brand, other_brand):
    from hooks.outbound.configio import config_export, config_import

    rule_create(brand=brand, name="Telegram", event_types=["conversation.abandoned"], url="https://t.example/x")
    data = config_export(brand=brand)
    assert [rule["name"] for rule in data["rules"]] == ["Telegram"]
    assert config_import(data=data, brand_slug="globex", environ={}) >= 1
    assert EventRule.objects.get(brand=other_brand).url == "https://t.example/x"
    assert config_import(data=data, brand_slug="globex", environ={}) == 0
