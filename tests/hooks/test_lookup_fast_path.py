"""The lookup fast path (hooks.inbound.fastpath, config/wsgi.py) answers exactly as Django does.

Every case sends the same WSGI environ to the hub's application
(config.wsgi.application's class: the fast path) and to Django's plain
WSGIHandler (middleware stack, URL resolver), and compares what a client and an
operator see: status line, headers (in order), body, the request log row and the
hookhub_* metrics. Transactional: both handlers send request_started /
request_finished, which close stale database connections as in production.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import override_settings

from hooks.inbound import fastpath
from hooks.inbound.lookup_cache import lookup_cache
from hub import metrics
from hub.services import credential_issue, credential_revoke
from synclog import writer
from synclog.models import InboundRequest
from tests.factories import credential, customer
from tests.wsgi_client import wsgi_call, wsgi_environ

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_lookup_cache")]

OMNIDESK = "/hooks/omnidesk/acme/customerlookup"
M8COM = "/hooks/m8com/acme/lookup"
# What the request log row says, without what differs between two calls (id, time, latency).
LOG_FIELDS = [
    "brand_id",
    "endpoint",
    "method",
    "path",
    "query",
    "credential_prefix",
    "status",
    "customers_returned",
    "customer_id",
    "remote_addr",
    "request_body",
    "response_body",
    "note",
]


@pytest.fixture
def handlers():
    fast = fastpath.LookupWSGIHandler()
    assert fast.fast_path is not None, "the fast path must be on with the hub's settings"
    return fast, WSGIHandler()


@pytest.fixture
def keys(brand):
    customer(
        brand,
        customer_id="C-1",
        first_name="Maria",
        last_name="Andersson",
        addresses=[
            {"type": "telephone", "address": "+31612312312"},
            {"type": "email", "address": "maria@example.org"},
        ],
    )
    return {"omnidesk": credential(brand, "omnidesk"), "m8com": credential(brand, "m8com")}


def observed(handler, env: dict, endpoint: str) -> dict:
    """What one call shows: the answer, its log row and the hookhub_* counts it added."""
    writer.flush()
    before_rows = set(InboundRequest.objects.values_list("pk", flat=True))
    before = {status: _count(endpoint, status) for status in STATUSES}
    status, headers, body = wsgi_call(handler, env)
    writer.flush()
    rows = list(InboundRequest.objects.exclude(pk__in=before_rows).values(*LOG_FIELDS))
    counted = {status: _count(endpoint, status) - before[status] for status in STATUSES}
    return {
        "status": status,
        "headers": headers,
        "body": body,
        "log": rows,
        "metrics": {status: n for status, n in counted.items() if n},
    }


STATUSES = ["200", "400", "401", "403", "404", "405", "500"]


def _count(endpoint: str, status: str) -> float:
    return metrics.INBOUND_REQUESTS.labels(endpoint, status)._value.get()


def both(handlers, env: dict, endpoint: str, *, cached: bool) -> tuple[dict, dict]:
    """The same request through Django and the fast path; ``cached``: both answered from a warm cache."""
    fast, django = handlers
    lookup_cache.clear()
    if cached:
        wsgi_call(fast, env)
    through_django = observed(django, env, endpoint)
    if not cached:
        lookup_cache.clear()
    through_fast = observed(fast, env, endpoint)
    return through_django, through_fast


def omnidesk_query(key: str, **params: str) -> str:
    return urlencode({"key": key, **params})


CASES = {
    # name: (method, path, query (the Omnidesk key is added), headers ("m8com": the Bearer key), status)
    "omnidesk phone hit": (
        "GET",
        OMNIDESK,
        "channelAddressType=phoneNumber&address=%2B31612312312&ticketID=7",
        {},
        200,
    ),
    "omnidesk phone miss": ("GET", OMNIDESK, "channelAddressType=phoneNumber&address=%2B31699999999", {}, 200),
    "omnidesk e-mail hit": ("GET", OMNIDESK, "channelAddressType=email&address=Maria%40Example.org", {}, 200),
    "omnidesk primaryID": ("GET", OMNIDESK, "primaryID=C-1", {}, 200),
    "omnidesk unencoded plus": ("GET", OMNIDESK, "channelAddressType=phoneNumber&address=+31612312312", {}, 200),
    "omnidesk missing parameters": ("GET", OMNIDESK, "", {}, 400),
    "omnidesk bad address type": ("GET", OMNIDESK, "channelAddressType=fax&address=1", {}, 400),
    "omnidesk NUL in a parameter": ("GET", OMNIDESK, "primaryID=C%00-1", {}, 400),
    "omnidesk invalid UTF-8": ("GET", OMNIDESK, "channelAddressType=email&address=%FF%FE%40x.org", {}, 400),
    "omnidesk trailing slash": ("GET", OMNIDESK + "/", "primaryID=C-1", {}, 200),
    "omnidesk two trailing slashes": ("GET", OMNIDESK + "//", "primaryID=C-1", {}, 200),
    "omnidesk wrong method": ("POST", OMNIDESK, "primaryID=C-1", {}, 405),
    "omnidesk HEAD": ("HEAD", OMNIDESK, "primaryID=C-1", {}, 405),
    "omnidesk unknown brand": ("GET", "/hooks/omnidesk/nobody/customerlookup", "primaryID=C-1", {}, 404),
    "omnidesk non-ASCII brand": ("GET", "/hooks/omnidesk/acm\u00c3\u00a9/customerlookup", "primaryID=C-1", {}, 404),
    "omnidesk percent-encoded NUL in the brand": ("GET", "/hooks/omnidesk/ac\x00me/customerlookup", "", {}, 404),
    "m8com hit": ("GET", M8COM, "fromNumber=%2B31612312312&toNumber=%2B31201234567", "m8com", 200),
    "m8com spaced number": ("GET", M8COM, "fromNumber=%2B31+6+1231+2312", "m8com", 200),
    "m8com miss": ("GET", M8COM, "fromNumber=%2B31699999999", "m8com", 404),
    "m8com extension": ("GET", M8COM, "fromNumber=1234", "m8com", 404),
    "m8com missing fromNumber": ("GET", M8COM, "toNumber=%2B31612312312", "m8com", 400),
    "m8com no header": ("GET", M8COM, "fromNumber=%2B31612312312", {}, 401),
    "m8com wrong secret": ("GET", M8COM, "fromNumber=%2B31612312312", {"Authorization": "Bearer wrong"}, 403),
    "m8com not bearer": ("GET", M8COM, "fromNumber=%2B31612312312", {"Authorization": "Basic eDp5"}, 403),
    "m8com wrong method": ("DELETE", M8COM, "fromNumber=%2B31612312312", "m8com", 405),
    "m8com trailing slash miss": ("GET", M8COM + "/", "fromNumber=%2B31699999999", "m8com", 404),
    "m8com unknown brand": ("GET", "/hooks/m8com/nobody/lookup", "fromNumber=%2B31612312312", "m8com", 404),
}


def case_environ(name: str, keys: dict) -> tuple[dict, str]:
    method, path, query, headers, _ = CASES[name]
    if path.startswith("/hooks/omnidesk/"):
        query = "&".join(part for part in (f"key={keys['omnidesk']}", query) if part)
        endpoint = "omnidesk.lookup"
    else:
        endpoint = "m8com.lookup"
    if headers == "m8com":
        headers = {"Authorization": f"Bearer {keys['m8com']}"}
    # WSGI servers hand PATH_INFO over decoded, as latin-1 code points of the bytes sent.
    return wsgi_environ(method, path, query, headers), endpoint


@pytest.mark.parametrize("cached", [False, True], ids=["not cached", "cached"])
@pytest.mark.parametrize("name", list(CASES))
def test_the_fast_path_answers_and_logs_exactly_as_django(handlers, keys, name, cached):
    env, endpoint = case_environ(name, keys)
    through_django, through_fast = both(handlers, env, endpoint, cached=cached)
    assert int(through_fast["status"][:3]) == CASES[name][-1], through_fast["body"]
    assert through_fast == through_django
    # Each call is logged and counted once, whichever way it went.
    assert len(through_fast["log"]) == 1
    assert sum(through_fast["metrics"].values()) == 1


def test_the_answers_carry_django_s_security_headers(handlers, keys):
    fast, _ = handlers
    env, _ = case_environ("omnidesk phone hit", keys)
    status, headers, body = wsgi_call(fast, env)
    assert status == "200 OK"
    names = dict(headers)
    assert names["Content-Type"] == "application/json; charset=utf-8"
    assert names["X-Frame-Options"] == "DENY"
    assert names["X-Content-Type-Options"] == "nosniff"
    assert names["Content-Length"] == str(len(body))
    assert [item["customerID"] for item in json.loads(body)] == ["C-1"]


@pytest.mark.parametrize(
    "settings_change",
    [
        {"SECURE_SSL_REDIRECT": True},  # production: a plain-http call is redirected
        {"SECURE_HSTS_SECONDS": 3600, "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")},
        {"ALLOWED_HOSTS": ["hub.example.com"]},  # a Host not allowed: Django's 400
        {"X_FRAME_OPTIONS": "SAMEORIGIN", "SECURE_REFERRER_POLICY": "no-referrer"},
    ],
    ids=["ssl redirect", "hsts behind a proxy", "disallowed host", "other header values"],
)
def test_django_s_security_settings_apply_on_the_fast_path(keys, settings_change):
    with override_settings(**settings_change):
        fast = fastpath.LookupWSGIHandler()
        assert fast.fast_path is not None
        handlers = (fast, WSGIHandler())
        for proto in ("http", "https"):
            env, endpoint = case_environ("omnidesk phone hit", keys)
            env["HTTP_X_FORWARDED_PROTO"] = proto
            through_django, through_fast = both(handlers, env, endpoint, cached=False)
            assert through_fast == through_django


def test_script_name_is_respected(handlers, keys):
    """Mounted under /hub: the route is the path after SCRIPT_NAME, the log keeps the full path."""
    env, endpoint = case_environ("omnidesk phone hit", keys)
    env["SCRIPT_NAME"] = "/hub"
    through_django, through_fast = both(handlers, env, endpoint, cached=False)
    assert through_fast == through_django
    assert through_fast["status"] == "200 OK"
    assert through_fast["log"][0]["path"] == "/hub" + OMNIDESK


def test_a_revoked_key_is_refused_by_the_very_next_fast_path_call(handlers, brand, keys):
    fast, django = handlers
    credential_row, secret = credential_issue(brand=brand, integration="omnidesk")
    env = wsgi_environ("GET", OMNIDESK, omnidesk_query(secret, primaryID="C-1"))
    assert wsgi_call(fast, env)[0] == "200 OK"
    assert wsgi_call(fast, env)[0] == "200 OK"  # the key and the answer from the caches now
    credential_revoke(credential=credential_row)
    through_django, through_fast = both(handlers, env, "omnidesk.lookup", cached=False)
    assert through_fast["status"] == "403 Forbidden"
    assert through_fast == through_django


def test_requests_the_fast_path_does_not_answer_go_through_django(handlers, keys, monkeypatch):
    """Other URLs, and a lookup carrying cookies (sessions, CSRF and messages would
    read them), are served by Django's full stack: same answers either way."""
    fast, _ = handlers
    served_fast = []

    def chain(request):
        served_fast.append(request.path)
        raise AssertionError("served by the fast path")

    monkeypatch.setattr(fast.fast_path, "chain", chain)
    for env in (
        wsgi_environ("GET", "/healthz"),
        wsgi_environ("GET", "/hooks/omnidesk/acme/lookup"),  # not an endpoint: the JSON 404
        wsgi_environ("GET", OMNIDESK, omnidesk_query(keys["omnidesk"], primaryID="C-1"), {"Cookie": "sessionid=x"}),
        wsgi_environ("GET", OMNIDESK + "/extra", omnidesk_query(keys["omnidesk"], primaryID="C-1")),
    ):
        through_django, through_fast = both(handlers, env, "omnidesk.lookup", cached=False)
        assert through_fast == through_django
    assert served_fast == []


def test_an_exception_outside_the_view_s_own_handling_is_django_s_500(handlers, keys, monkeypatch):
    """The views answer their own failures as JSON 500s (tests of each adapter); what
    escapes them gets Django's 500 on both paths."""
    from hooks.inbound import common

    def broken(request):
        raise RuntimeError("boom")

    monkeypatch.setattr(common, "client_ip", broken)
    env, endpoint = case_environ("omnidesk phone hit", keys)
    through_django, through_fast = both(handlers, env, endpoint, cached=False)
    assert through_fast["status"] == "500 Internal Server Error"
    assert through_fast == through_django


def test_a_failing_lookup_is_the_view_s_json_500_on_the_fast_path(handlers, keys, monkeypatch):
    from hooks.inbound import omnidesk

    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(omnidesk, "omnidesk_customers_find", broken)
    env, endpoint = case_environ("omnidesk phone hit", keys)
    through_django, through_fast = both(handlers, env, endpoint, cached=False)
    assert through_fast["status"] == "500 Internal Server Error"
    assert json.loads(through_fast["body"])["error"]["code"] == "server_error"
    assert through_fast == through_django


def test_django_prometheus_request_families_do_not_see_fast_path_lookups(handlers, keys):
    """Documented (docs/benchmarks.md): the hookhub_inbound_* families count every lookup,
    django-prometheus's request families only the ones Django served."""
    from django_prometheus.middleware import Metrics

    by_view = Metrics.get_instance().requests_by_view_transport_method
    fast, django = handlers
    env, endpoint = case_environ("omnidesk phone hit", keys)

    def view_count() -> float:
        return by_view.labels("omnidesk-customer-lookup", "http", "GET")._value.get()

    start, counted = view_count(), _count(endpoint, "200")
    wsgi_call(django, env)
    assert view_count() == start + 1
    wsgi_call(fast, env)
    assert view_count() == start + 1
    assert _count(endpoint, "200") == counted + 2


@pytest.mark.parametrize(
    "settings_change",
    [
        {"HUB_LOOKUP_FAST_PATH": False},
        {"MIDDLEWARE": ["tests.hooks.test_lookup_fast_path.some_middleware"]},
        {"WHITENOISE_ROOT": "<tmp_path>"},
    ],
    ids=["turned off", "a middleware it does not know", "WhiteNoise serving the root"],
)
def test_the_fast_path_stays_off_when_it_cannot_promise_django_s_answers(settings_change, tmp_path):
    settings_change = {k: str(tmp_path) if v == "<tmp_path>" else v for k, v in settings_change.items()}
    with override_settings(**settings_change):
        assert fastpath.LookupWSGIHandler().fast_path is None


def some_middleware(get_response):
    return get_response


def test_the_hub_s_wsgi_application_is_the_fast_path_handler():
    from config.wsgi import application

    assert isinstance(application, fastpath.LookupWSGIHandler)
