"""EddyDesk's own tag syntax ({tag}), Deskpro's JSON headers, and form data of a
GET in the query string, as a receiver on 127.0.0.1 gets them."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError

from hooks.outbound.models import CrmSyncAction
from hooks.outbound.rendering import RenderError, header_lines
from hooks.rules.services import rule_create

from .conftest import run_all
from .test_firing import ABANDONED, make_rule

pytestmark = pytest.mark.django_db


def test_single_brace_tags_and_json_headers_reach_the_receiver(brand, maria, receiver, post_event, settings):
    settings.HUB_ADMIN_BASE_URL = "https://hub.example.com"
    server, base = receiver
    server.expect_oneshot_request(f"/api/v2/tickets/{maria.customer_id}/comments/", method="POST").respond_with_json(
        {"ok": True}
    )
    make_rule(
        brand,
        base,
        conditions={"all": []},
        url=base + "/api/v2/tickets/{customer.customer_id}/comments/",
        headers='{"X-Queue": "{event.queue}", "X-Customer": "{{ customer.name }}"}',
        body='{"parse_mode": "html", "chat_id": "42", "text": "link for request: {link_staff}"}',
    )
    post_event("servicehooks/abandoned-conversation", ABANDONED)
    assert run_all() == 1
    ((request, _),) = server.log
    assert request.headers["X-Queue"] == "Sales"
    assert request.headers["X-Customer"] == "Maria Andersson"
    assert json.loads(request.get_data(as_text=True)) == {
        "parse_mode": "html",
        "chat_id": "42",
        "text": f"link for request: https://hub.example.com/admin/customers/customer/{maria.pk}/change/",
    }


def test_get_with_form_data_sends_it_in_the_query_string(brand, maria, receiver, post_event):
    server, base = receiver
    server.expect_oneshot_request("/lookup", method="GET").respond_with_data("ok")
    make_rule(
        brand,
        base,
        conditions={"all": []},
        method="GET",
        url=base + "/lookup?source=hub",
        body_format="form",
        body="phone={event.customerPhoneNumber}&name={{ customer.name }}",
    )
    post_event("servicehooks/abandoned-conversation", ABANDONED)
    assert run_all() == 1
    ((request, _),) = server.log
    assert request.get_data() == b""
    assert "Content-Type" not in request.headers
    assert parse_qs(urlsplit(request.url).query) == {
        "source": ["hub"],
        "phone": ["+31612345678"],
        "name": ["Maria Andersson"],
    }


def test_unknown_single_brace_tags_are_refused_in_the_url_and_literal_elsewhere(brand):
    with pytest.raises(ValidationError) as refused:
        rule_create(
            brand=brand,
            name="Parent note",
            event_types=["workitem.closed"],
            url="https://desk.example.com/api/v2/tickets/{parent_ticket_id}/comments/",
            body='{"note": "{nonsense.value}"}',
        )
    errors = refused.value.message_dict
    assert errors["url"][0].startswith("Unknown tag {parent_ticket_id}")
    assert "body" not in errors  # in the data, braces that name no token are text


def test_braces_that_are_not_tags_are_sent_as_written(brand, maria, receiver, post_event):
    """GraphQL, a receiver's own templates and Jinja's raw blocks keep their braces."""
    server, base = receiver
    server.expect_oneshot_request("/graphql", method="POST").respond_with_json({"ok": True})
    body = (
        '{"query": "{ viewer { login } }", "greeting": "Hello {name}", '
        '"raw": "{% raw %}{customer.name}{% endraw %}", "tag": "{customer.name}"}'
    )
    make_rule(brand, base, conditions={"all": []}, url=base + "/graphql", body=body)
    post_event("servicehooks/abandoned-conversation", ABANDONED)
    assert run_all() == 1
    ((request, _),) = server.log
    assert json.loads(request.get_data(as_text=True)) == {
        "query": "{ viewer { login } }",
        "greeting": "Hello {name}",
        "raw": "{customer.name}",
        "tag": "Maria Andersson",
    }


def test_crm_action_accepts_json_headers_and_refuses_bad_ones(brand):
    from tests.hooks.outbound.conftest import make_sync

    sync = make_sync(brand, "https://crm.example.com")
    action = CrmSyncAction.objects.get(sync=sync, action="create")
    action.headers = '{"Content-Type": "application/json", "X-Name": "{{ person.name }}", "X-Version": 2}'
    action.full_clean()
    assert header_lines(action.headers) == [
        ("Content-Type", "application/json"),
        ("X-Name", "{{ person.name }}"),
        ("X-Version", "2"),
    ]
    for bad, reason in (
        ('{"Bad Name": "x"}', "'Bad Name' is not a valid header name."),
        ('{"X-A": {"nested": 1}}', "The value of header X-A must be text or a number."),
        ('{"X-A": "x",}', "The headers are not a valid JSON object"),
    ):
        action.headers = bad
        with pytest.raises(ValidationError) as refused:
            action.full_clean()
        assert refused.value.message_dict["headers"][0].startswith(reason)
    with pytest.raises(RenderError):
        header_lines("[1, 2]")


def test_secret_headers_and_control_characters_are_refused_and_get_keeps_the_fragment(brand):
    from types import SimpleNamespace

    from hooks.outbound.rendering import render_request

    with pytest.raises(ValidationError) as refused:
        rule_create(
            brand=brand,
            name="Leaky",
            event_types=["workitem.closed"],
            url="https://crm.example.com/notes",
            headers='{"Authorization": "Bearer sk_live_123"}',
        )
    assert refused.value.message_dict["headers"][0].startswith("Authorization carries a secret")
    with pytest.raises(RenderError):
        header_lines('{"X-A": "a\\r\\nInjected: 1"}')
    config = SimpleNamespace(
        method="GET",
        url="https://crm.example.com/find?src=hub#results",
        headers="",
        body="phone={{ event.phone }}",
        body_format="form",
        auth_type="none",
    )
    request = render_request(config, {"event": {"phone": "+31 6"}})
    assert request.url == "https://crm.example.com/find?src=hub&phone=%2B31+6#results"
    assert request.body == ""
