"""Escaping per body format, header injection, SSRF refusals, masking, signatures."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs

import pytest
from standardwebhooks.webhooks import Webhook

from hooks.outbound import crm
from hooks.outbound.models import CrmSyncAction, Delivery
from hub.net import address_problem
from hub.redaction import MASK
from synclog.models import DeliveryAttempt
from tests import factories

from .conftest import make_sync, run_all

pytestmark = pytest.mark.django_db

NASTY = 'Jo "JJ" <O\'Brien> & Co\r\nX-Injected: yes\n\\ {{ 7*7 }} é'


def _only_create(sync, **fields):
    CrmSyncAction.objects.filter(sync=sync).exclude(action="create").update(enabled=False)
    CrmSyncAction.objects.filter(sync=sync, action="create").update(**fields)


@pytest.mark.parametrize("body_format", ["json", "xml", "form"])
def test_special_characters_stay_valid_in_every_format(brand, httpserver, receiver_url, clock, body_format):
    httpserver.expect_request("/people/" + "Jo%20%22JJ%22", method="POST").respond_with_data("ok")
    httpserver.expect_request("/people", method="POST").respond_with_data("ok")
    bodies = {
        "json": '{"name": "{{ person.first_name }}", "summary": "{{ person.summary }}"}',
        "xml": "<person><name>{{ person.first_name }}</name><summary>{{ person.summary }}</summary></person>",
        "form": "name={{ person.first_name }}&summary={{ person.summary }}",
    }
    sync = make_sync(brand, receiver_url)
    _only_create(
        sync,
        body_format=body_format,
        body=bodies[body_format],
        headers="X-Customer: {{ person.first_name }}",
        url=receiver_url + "/people?name={{ person.first_name }}",
    )
    factories.customer(brand, first_name=NASTY, summary="a&b=c<d>")
    run_all()
    ((request, _response),) = httpserver.log
    text = request.get_data(as_text=True)
    if body_format == "json":
        assert json.loads(text) == {"name": NASTY, "summary": "a&b=c<d>"}
        assert request.headers["Content-Type"] == "application/json"
    elif body_format == "xml":
        root = ET.fromstring(text)
        assert root.find("name").text == NASTY.replace("\r\n", "\n")  # XML normalizes CRLF
        assert root.find("summary").text == "a&b=c<d>"
        assert request.headers["Content-Type"] == "application/xml"
    else:
        assert parse_qs(text) == {"name": [NASTY], "summary": ["a&b=c<d>"]}
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.args["name"] == NASTY
    # CR/LF never start a new header: the value is flattened onto one line.
    assert "X-Injected" not in request.headers
    assert request.headers["X-Customer"].startswith('Jo "JJ" <O\'Brien> & Co')
    assert "X-Injected: yes" in request.headers["X-Customer"]
    assert Delivery.objects.get().state == "delivered"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/people", "a loopback address"),
        ("http://localhost:{port}/people", "a loopback address"),
        ("http://[::1]:{port}/people", "a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("http://10.20.30.40/people", "a private address"),
        ("http://192.168.1.1/people", "a private address"),
        ("http://100.64.0.1/people", "a shared (carrier-grade NAT) address"),
        ("http://0.0.0.0:{port}/people", "an unspecified address"),
    ],
)
def test_ssrf_guard_refuses_non_public_destinations_at_send_time(brand, httpserver, clock, settings, url, reason):
    settings.HUB_ALLOW_PRIVATE_DESTINATIONS = False
    httpserver.expect_request("/people").respond_with_data("should never be called")
    sync = make_sync(brand, "http://placeholder.invalid")
    _only_create(sync, url=url.format(port=httpserver.port))
    factories.customer(brand)
    run_all()
    attempt = DeliveryAttempt.objects.get()
    assert attempt.error.startswith("Refused: ")
    assert reason in attempt.error
    assert attempt.response_status is None
    assert Delivery.objects.get().state == "pending"  # logged as a delivery error and retried
    assert len(httpserver.log) == 0


def test_only_http_and_https(brand, clock):
    sync = make_sync(brand, "http://placeholder.invalid")
    _only_create(sync, url="file:///etc/passwd")
    factories.customer(brand)
    run_all()
    assert "must be an http or https address" in DeliveryAttempt.objects.get().error


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("224.0.0.1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("fe80::1", "a link-local address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("172.16.5.4", "a private address"),
    ],
)
def test_address_classification(address, problem):
    import ipaddress

    assert address_problem(ipaddress.ip_address(address)) == problem


def test_secrets_are_masked_in_the_attempt_log(brand, httpserver, receiver_url, clock):
    httpserver.expect_request("/people").respond_with_json({"id": 1, "echo": "pw-Secret-123"})
    sync = make_sync(brand, receiver_url, auth_type="basic", auth_username="svc", auth_password="pw-Secret-123")
    _only_create(
        sync,
        url=receiver_url + "/people?token=tok-in-url&plain=1",
        headers="X-Api-Token: tok-header-456\nX-Trace: visible",
        body='{"password": "pw-Secret-123", "name": "{{ person.name }}"}',
    )
    factories.customer(brand, first_name="Masked")
    run_all()
    ((request, _),) = httpserver.log
    assert request.authorization.password == "pw-Secret-123"  # the receiver gets the real credentials
    attempt = DeliveryAttempt.objects.get()
    stored = json.dumps(
        [attempt.url, attempt.request_headers, attempt.request_body, attempt.response_body, attempt.response_headers]
    )
    for secret in ("pw-Secret-123", "tok-in-url", "tok-header-456", "c3ZjOnB3LVNlY3JldC0xMjM="):
        assert secret not in stored
    assert attempt.request_headers["Authorization"] == MASK
    assert attempt.request_headers["X-Api-Token"] == MASK
    assert attempt.request_headers["X-Trace"] == "visible"
    assert "token=" + MASK in attempt.url.replace("%2A", "*")
    assert "plain=1" in attempt.url
    assert '"name": "Masked' in attempt.request_body


def test_api_key_and_bearer_authentication(brand, httpserver, receiver_url, clock):
    httpserver.expect_request("/people").respond_with_data("ok")
    sync = make_sync(brand, receiver_url, auth_type="api_key", api_key_header="X-CRM-Key", api_key="key-abc-123")
    _only_create(sync)
    factories.customer(brand)
    run_all()
    assert httpserver.log[0][0].headers["X-CRM-Key"] == "key-abc-123"
    assert DeliveryAttempt.objects.get().request_headers["X-CRM-Key"] == MASK
    sync.auth_type = "bearer"
    sync.save()
    factories.customer(brand)
    run_all()
    assert httpserver.log[1][0].headers["Authorization"] == "Bearer key-abc-123"


def test_signature_is_verified_by_the_standardwebhooks_library(brand, httpserver, receiver_url, clock):
    httpserver.expect_request("/people").respond_with_data("ok")
    sync = make_sync(brand, receiver_url)
    secret = crm.crm_sync_set_signing_secret(sync=sync)
    assert secret.startswith("whsec_")
    factories.customer(brand, first_name="Signed")
    run_all()
    ((request, _),) = httpserver.log
    payload = Webhook(secret).verify(request.get_data(as_text=True), dict(request.headers))
    assert payload["first_name"] == "Signed"
    assert request.headers["webhook-id"] == Delivery.objects.get().message_id
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(secret).verify(request.get_data(as_text=True).replace("Signed", "Forged"), dict(request.headers))
    assert DeliveryAttempt.objects.get().request_headers["webhook-signature"] == MASK
    sync.refresh_from_db()
    assert sync.signing_secret == secret  # encrypted at rest, readable by the engine


def test_secrets_are_encrypted_at_rest(brand, receiver_url):
    from django.db import connection

    sync = make_sync(brand, receiver_url, auth_type="bearer", api_key="bearer-token-xyz")
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM outbound_crmsync WHERE id = %s", [sync.pk])
        (stored,) = cursor.fetchone()
    assert "bearer-token-xyz" not in stored and stored.startswith("gAAAA")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:8080/x", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest", "a cloud metadata address"),
        ("https://[fd12::1]/x", "a private address"),
        ("http://localhost/x", "may not call localhost"),
    ],
)
def test_private_literal_addresses_are_refused_when_saving_too(settings, url, problem):
    from hooks.outbound.rendering import validate_config

    settings.HUB_ALLOW_PRIVATE_DESTINATIONS = False
    action = CrmSyncAction(action="create", url=url, body="{}")
    assert any(problem in message for message in validate_config(action)["url"])
    action.url = "https://crm.example.com/people/{{ remote_id }}"
    assert "url" not in validate_config(action)
    settings.HUB_ALLOW_PRIVATE_DESTINATIONS = True
    action.url = url
    assert "url" not in validate_config(action)
