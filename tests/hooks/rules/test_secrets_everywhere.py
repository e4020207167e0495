"""No secret is ever shown again, in any encoding (issue 9, docs/security.md §3).

The attack: rules and a CRM sync whose secrets are full of URL-special
characters (a Telegram bot token, a token with ``&`` ``%`` ``"`` ``\\`` and
non-ASCII letters, a Basic password, an API key header, signing secrets) send
through the real delivery engine to a real receiver on 127.0.0.1 that echoes
everything back in every way it can (raw URI, decoded URI, JSON with ``\\u``
and ``\\/`` escapes, response headers), and to a closed port (the error message
names the URL). Then every table of the database is dumped raw (encrypted
columns as stored) and every page an auditor can open is fetched, and no form
of any secret (tests/secret_encodings.py, built independently of
hub.redaction) may appear anywhere.
"""

from __future__ import annotations

import base64
import html
import json
import re
import socket
from datetime import date, datetime
from decimal import Decimal
from urllib.parse import unquote

import pytest
from django.db import connection
from django.urls import reverse
from werkzeug import Response

from hooks.inbound.models import InboundEvent
from hooks.outbound import crm
from hooks.outbound.models import CrmSync, CrmSyncAction, Delivery
from hooks.rules.models import EventRule
from hooks.rules.services import rule_create
from synclog.models import DeliveryAttempt
from tests.factories import customer
from tests.secret_encodings import (
    API_KEY,
    BASIC_PASSWORD,
    BASIC_USER,
    CRM_PASSWORD,
    TELEGRAM_TOKEN,
    WEIRD_TOKEN,
    found_in,
)

from .conftest import run_all

pytestmark = pytest.mark.django_db

RULE_SIGNING = "whsec_" + base64.b64encode(b"rule-signing-key-0123456789ab").decode()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _echo(request) -> Response:
    """A receiver that repeats the request back every way it can."""
    raw_uri = request.environ.get("RAW_URI", request.full_path)
    seen = {
        "uri": raw_uri,
        "decoded": unquote(raw_uri),
        "headers": dict(request.headers),
        "body": request.get_data(as_text=True),
    }
    text = "\n".join(
        [
            json.dumps(seen),  # \uXXXX escapes
            json.dumps(seen, ensure_ascii=False).replace("/", "\\/"),  # PHP-style \/
            raw_uri,
            seen["decoded"],
        ]
    )
    headers = {"X-Echo-Uri": raw_uri, "X-Echo-Auth": request.headers.get("Authorization", "")}
    return Response(text, status=200, headers=headers, content_type="text/plain; charset=utf-8")


def _secrets() -> list[tuple[str, str | None]]:
    """(secret, Basic user or None) for every secret of the scenario."""
    sync = CrmSync.objects.get()
    return [
        (TELEGRAM_TOKEN, None),
        (WEIRD_TOKEN, None),
        (BASIC_PASSWORD, BASIC_USER),
        (API_KEY, None),
        (CRM_PASSWORD, BASIC_USER),
        (RULE_SIGNING, None),
        (sync.signing_secret, None),
    ]


@pytest.fixture
def sent(brand, maria, post_event, httpserver, settings):
    """Every kind of secret sent by the real engine, delivered or failed."""
    settings.HUB_ALLOW_PRIVATE_DESTINATIONS = True
    httpserver.expect_request(re.compile(".*")).respond_with_handler(_echo)
    base = httpserver.url_for("").rstrip("/")
    common = {"enabled": True, "event_types": ["conversation.abandoned"], "conditions": {}, "timeout_seconds": 2}
    body = '{"who": "{{ customer.name }}", "echo": "{{ secrets.api_key }}"}'
    rules = {
        "Telegram": {
            "url": base + "/bot{{ secrets.api_key|raw }}/sendMessage",
            "api_key": TELEGRAM_TOKEN,
            "body": body,
            "signing_secret": RULE_SIGNING,
        },
        "Token in the query": {
            "url": base + "/hook?token={{ secrets.api_key }}&chat={{ customer.customer_id }}",
            "api_key": WEIRD_TOKEN,
            "body": body,
        },
        "Form body": {
            "url": base + "/form",
            "body_format": "form",
            "body": "text={{ customer.name }}&key={{ secrets.api_key }}",
            "api_key": WEIRD_TOKEN,
        },
        "Basic": {
            "url": base + "/basic",
            "auth_type": "basic",
            "auth_username": BASIC_USER,
            "auth_password": BASIC_PASSWORD,
        },
        "API key header": {
            "url": base + "/apikey",
            "auth_type": "api_key",
            "api_key_header": "X-Custom-Auth",
            "api_key": API_KEY,
        },
        "Unreachable": {
            "url": f"http://127.0.0.1:{_closed_port()}/bot{{{{ secrets.api_key|raw }}}}/x?t={{{{ secrets.api_key }}}}",
            "api_key": WEIRD_TOKEN,
        },
    }
    for name, fields in rules.items():
        rule_create(brand=brand, name=name, **common, **fields)
    sync = CrmSync.objects.create(
        brand=brand, name="CRM", auth_type="basic", auth_username=BASIC_USER, auth_password=CRM_PASSWORD
    )
    CrmSyncAction.objects.create(
        sync=sync, action="create", enabled=True, method="POST", url=base + "/people", body='{"n": "{{ person.name }}"}'
    )
    crm.crm_sync_set_signing_secret(sync=sync)
    customer(brand, first_name="Jo", last_name="Created")  # the CRM sync's create webhook
    post_event("servicehooks/abandoned-conversation", {"customerPhoneNumber": "+31612345678", "queue": "Sales"})
    run_all()
    received = [request for request, _ in httpserver.log]
    # The receiver got the real secrets (the attack is on what the hub keeps and shows).
    assert any(TELEGRAM_TOKEN in unquote(r.environ["RAW_URI"]) for r in received)
    assert any(WEIRD_TOKEN in r.args.get("token", "") for r in received)
    assert any(r.form.get("key") == WEIRD_TOKEN for r in received)
    assert any(r.authorization and r.authorization.password == BASIC_PASSWORD for r in received)
    assert any(r.headers.get("X-Custom-Auth") == API_KEY for r in received)
    assert any(r.authorization and r.authorization.password == CRM_PASSWORD for r in received)
    assert any("webhook-signature" in r.headers for r in received)
    assert DeliveryAttempt.objects.filter(succeeded=True).count() == 6
    unreachable = DeliveryAttempt.objects.get(succeeded=False)
    assert unreachable.error  # refused: the error text is stored (masked)
    return sync


def _cells(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (dict, list)):  # a JSON column decoded by the driver (PostgreSQL)
        return [json.dumps(value, ensure_ascii=False), json.dumps(value)]
    if isinstance(value, (bytes, memoryview)):
        raw = bytes(value)
        return [raw.decode("utf-8", "replace"), raw.decode("latin-1")]
    if isinstance(value, (int, float, Decimal, date, datetime)):
        return []
    return [str(value)]


def _dump_every_table() -> dict[str, list[str]]:
    """Every cell of every table, as stored (encrypted columns as ciphertext)."""
    dump: dict[str, list[str]] = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - names from the schema
            dump[table] = [cell for row in cursor.fetchall() for value in row for cell in _cells(value)]
    return dump


def test_no_encoding_of_any_secret_is_stored_in_any_table(sent):
    dump = _dump_every_table()
    # The dump is the raw database: the encrypted columns hold ciphertext, and the logs are there.
    assert any(cell.startswith("gAAAA") for cell in dump["outbound_crmsync"])
    assert any(cell.startswith("gAAAA") for cell in dump["rules_eventrule"])
    assert len(dump["synclog_deliveryattempt"]) > 7 * 5
    assert any("Maria Andersson" in cell for cell in dump["synclog_deliveryattempt"])
    leaks = [
        (table, secret[:12], forms)
        for table, cells in dump.items()
        for secret, user in _secrets()
        for cell in cells
        if (forms := found_in(cell, secret, user=user))
    ]
    assert leaks == []


def test_no_page_or_export_shows_any_encoding(sent, maria, admin_client):
    rule = EventRule.objects.get(name="Telegram")
    event = InboundEvent.objects.get()
    delivery = Delivery.objects.filter(source_kind="rule").first()
    pages = [
        reverse("synclog-logs"),
        reverse("synclog-logs-export"),
        reverse("admin:synclog_deliveryattempt_changelist"),
        reverse("admin:synclog_deliveryattempt_export"),
        reverse("admin:outbound_delivery_changelist"),
        reverse("admin:outbound_delivery_change", args=[delivery.pk]),
        reverse("admin:rules_eventrule_changelist"),
        reverse("admin:outbound_crmsync_change", args=[sent.pk]),
        reverse("admin:outbound_crmsync_test", args=[sent.pk]) + f"?action=create&customer={maria.customer_id}",
        reverse("admin:hub_configuration_changes"),
    ]
    for each in EventRule.objects.all():
        pages += [
            reverse("admin:rules_eventrule_change", args=[each.pk]),
            reverse("admin:rules_eventrule_history", args=[each.pk]),
            reverse("admin:rules_eventrule_preview", args=[each.pk]) + f"?event={event.pk}",
            reverse("admin:rules_eventrule_preview", args=[each.pk]) + f"?customer={maria.customer_id}",
        ]
    pages += [
        reverse("admin:synclog_deliveryattempt_change", args=[pk])
        for pk in DeliveryAttempt.objects.values_list("pk", flat=True)
    ]
    leaks = []
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        text = b"".join(response).decode() if response.streaming else response.content.decode()
        for shown in (text, html.unescape(text)):
            for secret, user in _secrets():
                if forms := found_in(shown, secret, user=user):
                    leaks.append((page, secret[:12], forms))
    assert leaks == []
    preview = admin_client.get(reverse("admin:rules_eventrule_preview", args=[rule.pk]) + f"?event={event.pk}")
    assert "/bot********/sendMessage" in html.unescape(preview.content.decode())
