"""Keys never reach a log unredacted: our rows, our logger output, the access log."""

from __future__ import annotations

import io
import logging

import pytest
from django.core.servers.basehttp import WSGIRequestHandler

from hooks.inbound.lookup_cache import lookup_cache
from hub.redaction import MASK, RedactingFilter, redact_query, redact_text
from synclog.models import InboundRequest
from tests.factories import credential, customer


@pytest.fixture
def console():
    """The configured console handler (settings.LOGGING), writing into a buffer."""
    handler = next(h for h in logging.getLogger().handlers if any(isinstance(f, RedactingFilter) for f in h.filters))
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    yield buffer
    handler.setStream(old)


def test_redact_query_masks_keys_only():
    # The query as sent (never re-encoded), only secret values masked.
    assert redact_query("key=hh_abc123&channelAddressType=email&address=a%40b.nl&ticketID=9") == (
        f"key={MASK}&channelAddressType=email&address=a%40b.nl&ticketID=9"
    )
    # A secret parameter's name written percent-encoded or in another case is still a secret.
    assert redact_query("k%65y=hh_1&KEY=hh_2&token=t&x=1&flag") == f"k%65y={MASK}&KEY={MASK}&token={MASK}&x=1&flag"
    assert redact_query("") == ""
    assert (
        redact_query("API_KEY=1&token=2&fromNumber=%2B46701234567")
        == f"API_KEY={MASK}&token={MASK}&fromNumber=%2B46701234567"
    )


def test_redact_text_masks_query_keys_and_bearer_tokens():
    line = 'GET /hooks/omnidesk/acme/customerlookup?key=hh_Secret-123&primaryID=1 HTTP/1.1 "Bearer hh_tok.en="'
    assert (
        redact_text(line) == f'GET /hooks/omnidesk/acme/customerlookup?key={MASK}&primaryID=1 HTTP/1.1 "Bearer {MASK}"'
    )


def test_access_log_of_the_development_server_is_redacted(console):
    """runserver's access log goes through logger django.server, as WSGIRequestHandler writes it."""
    handler = WSGIRequestHandler.__new__(WSGIRequestHandler)
    handler.requestline = "GET /hooks/omnidesk/acme/customerlookup?key=hh_TopSecretValue&primaryID=42 HTTP/1.1"
    handler.request_version = "HTTP/1.1"
    handler.command = "GET"
    handler.path = handler.requestline.split()[1]
    handler.client_address = ("127.0.0.1", 5555)
    handler.request = None
    handler.server = None
    handler.log_message('"%s" %s %s', handler.requestline, "200", "2")
    output = console.getvalue()
    assert "hh_TopSecretValue" not in output
    assert f"key={MASK}&primaryID=42" in output


@pytest.mark.django_db
def test_lookup_calls_leave_no_key_in_any_log(client, brand, console):
    lookup_cache.clear()
    key = credential(brand, "omnidesk")
    secret = credential(brand, "m8com")
    customer(brand, addresses=[{"type": "telephone", "address": "+31612345678"}])
    client.get(f"/hooks/omnidesk/acme/customerlookup?key={key}&channelAddressType=fax&address=1")  # 400, logged
    client.get(f"/hooks/omnidesk/acme/customerlookup?key={key}&primaryID=1")
    client.get("/hooks/m8com/acme/lookup?fromNumber=%2B31612345678", headers={"Authorization": f"Bearer {secret}"})
    client.get("/hooks/m8com/acme/lookup", headers={"Authorization": f"Bearer {secret}"})  # 400
    logging.getLogger("hooks").warning("Called with key=%s and Authorization: Bearer %s", key, secret)
    output = console.getvalue()
    assert "Bad Request: /hooks/omnidesk/acme/customerlookup" in output
    assert key not in output and secret not in output
    rows = list(InboundRequest.objects.values())
    assert len(rows) == 4
    for row in rows:
        for value in row.values():
            assert key not in str(value) and secret not in str(value)
            assert key[10:] not in str(value) and secret[10:] not in str(value)
