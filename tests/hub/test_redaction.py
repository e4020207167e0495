"""Keys never reach a log unredacted: our rows, our logger output, the access log."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.servers.basehttp import WSGIRequestHandler

from hooks.inbound.lookup_cache import lookup_cache
from hub.redaction import MASK, RedactingFilter, config_secrets, mask, redact_query, redact_text, url_secret_problem
from synclog.models import InboundRequest
from tests.factories import credential, customer
from tests.secret_encodings import API_KEY, BASIC_PASSWORD, BASIC_USER, TELEGRAM_TOKEN, WEIRD_TOKEN, encodings, found_in


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


# ---------------------------------------------------------------- hub.redaction.mask, every encoding

SECRETS = {
    "telegram token": (TELEGRAM_TOKEN, None),
    'token with & % " \\ and non-ASCII': (WEIRD_TOKEN, None),
    "Basic password": (BASIC_PASSWORD, BASIC_USER),
    "API key": (API_KEY, None),
}
CASES = [
    pytest.param(secret, user, form, id=f"{label}: {name}")
    for label, (secret, user) in SECRETS.items()
    for name, form in encodings(secret, user=user).items()
]


@pytest.mark.parametrize(("secret", "user", "form"), CASES)
def test_mask_removes_every_encoding_of_a_known_secret(secret, user, form):
    config = SimpleNamespace(auth_username=user or "", auth_password=secret, api_key="", signing_secret="")
    text = f"before {form} after\n"
    masked = mask(text, secrets=config_secrets(config))
    assert MASK in masked
    assert masked.startswith("before ") and masked.endswith(" after\n")
    assert not found_in(masked, secret, user=user)


def test_mask_leaves_other_text_and_json_alone():
    body = '{"name": "Jo & Co", "token_count": 3, "url": "https://crm.example.com/p?id=7&x=1", "ok": true}'
    masked = mask(body, secrets=["not-in-the-text"])
    assert masked == body
    assert json.loads(mask('{"X-Api-Key": 12345678, "token": "a\\"b", "n": null}')) == {
        "X-Api-Key": MASK,
        "token": MASK,
        "n": None,
    }
    assert mask("short", secrets=["abc"]) == "short"  # too short to be masked as a known secret


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /x?k%65y=hh_1&a=1 HTTP/1.1", f"GET /x?k%65y={MASK}&a=1 HTTP/1.1"),
        ("/x?api%5Fkey=s1&TOKEN=s2&x=%6Bey", f"/x?api%5Fkey={MASK}&TOKEN={MASK}&x=%6Bey"),
        ("/x?k%2565y=double", f"/x?k%2565y={MASK}"),
        ("password=pw1&user=u", f"password={MASK}&user=u"),
        ("Authorization: Bearer tok.en=", f"Authorization: {MASK}"),
        ("sent with Basic c3ZjOnB3 to", f"sent with Basic {MASK} to"),
        ("Accept: json\nX-Api-Key: k1\nX-Trace: t", f"Accept: json\nX-Api-Key: {MASK}\nX-Trace: t"),
        ('{"Accept": "json", "X-Api-Key": "k1"}', f'{{"Accept": "json", "X-Api-Key": "{MASK}"}}'),
        ("https://bob:hunter2@crm.example.com/p", f"https://{MASK}@crm.example.com/p"),
        ("POST https://api.telegram.org/bot123:AA-b/send", f"POST https://api.telegram.org/bot{MASK}/send"),
        ("https://api.telegram.org/bot123%3AAA-b/send", f"https://api.telegram.org/bot{MASK}/send"),
        ("/bot123%3AAA-b/send", f"/bot{MASK}/send"),
    ],
)
def test_patterns_mask_secrets_nobody_named(text, expected):
    assert mask(text) == expected


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://user:pw@crm.example.com/hook", True),
        ("https://token@crm.example.com/hook", True),
        ("https://crm.example.com/hook?token=abc", True),
        ("https://crm.example.com/hook?a=1&API_KEY=abc", True),
        ("https://crm.example.com/hook?k%65y=abc", True),
        ("https://crm.example.com/hook?api%5Fkey=abc&x=1", True),
        ("https://crm.example.com/hook?token={{ secrets.api_key }}", False),
        ("https://{{ secrets.api_key }}@crm.example.com/hook", False),
        ("https://crm.example.com/hook?token=", False),
        ("https://crm.example.com/people/{{ remote_id }}?customer={customer_id}", False),
        ("https://crm.example.com/hook#token=fragment-is-not-sent", False),
        ("https://crm.example.com/a@b/hook", False),  # an @ in the path is not userinfo
    ],
)
def test_url_secret_problem(url, refused):
    assert (url_secret_problem(url, where_secrets_go="use the encrypted field.") is not None) is refused


def test_console_log_never_prints_a_key_sent_under_a_percent_encoded_name(console):
    """runserver's request line for ?k%65y=... (Django decodes the name to key and authenticates with it)."""
    handler = WSGIRequestHandler.__new__(WSGIRequestHandler)
    handler.requestline = "GET /hooks/omnidesk/acme/customerlookup?k%65y=hh_EncodedName&primaryID=42 HTTP/1.1"
    handler.request_version = "HTTP/1.1"
    handler.command = "GET"
    handler.path = handler.requestline.split()[1]
    handler.client_address = ("127.0.0.1", 5555)
    handler.request = None
    handler.server = None
    handler.log_message('"%s" %s %s', handler.requestline, "200", "2")
    logging.getLogger("hooks").exception("Failed for %s", "/x?api%5Fkey=hh_InTraceback", exc_info=ValueError("k=v"))
    output = console.getvalue()
    assert "hh_EncodedName" not in output and "hh_InTraceback" not in output
    assert f"k%65y={MASK}&primaryID=42" in output


def test_gunicorn_access_log_is_redacted(capsys):
    """gunicorn writes its access log through its own handlers (not settings.LOGGING's console)."""
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    config = Config()
    config.set("accesslog", "-")
    logger = Logger(config)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/hooks/x?k%65y=hh_Gunicorn&a=1", "SERVER_PROTOCOL": "HTTP/1.1"}
    environ["QUERY_STRING"] = "k%65y=hh_Gunicorn&a=1"
    response = SimpleNamespace(status="200 OK", sent=2, headers=[], response_length=2)
    request = SimpleNamespace(headers=[], path="/hooks/x", query="k%65y=hh_Gunicorn&a=1", uri=environ["RAW_URI"])
    logger.access(response, request, environ, timedelta(milliseconds=3))
    output = capsys.readouterr().out
    assert "/hooks/x" in output
    assert "hh_Gunicorn" not in output


def test_django_error_page_shows_no_key(rf, settings):
    """The DEBUG error page (and the error e-mail built from the same data). The
    secrets are joined at run time: the page quotes this file's source lines."""
    import sys

    from django.views.debug import technical_500_response

    names = ["hh", "hdr", "pw", "tok", "rd"]
    key, auth_token, password, token, redis_password = (f"{name}-{n}" for n, name in enumerate(names))
    settings.REDIS_URL_FOR_TEST = f"redis://:{redis_password}@cache.internal:6379/0"
    request = rf.get(
        f"/hooks/omnidesk/acme/customerlookup?k%65y={key}&primaryID=1",
        headers={"Authorization": f"Bearer {auth_token}"},
    )
    url = f"https://bob:{password}@crm.example.com/p?token={token}"
    try:
        raise ValueError(f"could not reach {url}")
    except ValueError:
        response = technical_500_response(request, *sys.exc_info())
    html = response.content.decode()
    assert "ValueError" in html and "crm.example.com" in html and "primaryID" in html
    for secret in (key, auth_token, password, token, redis_password):
        assert secret not in html, secret
