"""Property-based: the four platform endpoints under generated odd-but-valid and
hostile requests (Hypothesis, bounded: a few seconds).

Properties, for every request:
- no 5xx, ever;
- on an event endpoint (M8Com call log, service hooks) with a valid key, a
  JSON body is answered 2xx, and every 2xx names a stored InboundEvent whose
  body is the request body exactly as sent;
- a lookup (Omnidesk, M8Com) answers its contract's statuses, as JSON.

The bodies are built as JSON text, so they can hold what Python values cannot
produce through json.dumps: nesting to 1,024 levels, numbers beyond a double,
escaped NUL and lone surrogates.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks.inbound.lookup_cache import lookup_cache
from hooks.inbound.models import InboundEvent
from tests.factories import credential, customer

pytestmark = pytest.mark.django_db

BOUNDED = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------- generated JSON text

ODD_TIMES = [
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.9999999Z",
    "2022-03-08T07:39:47.6052457Z",
    "2022-02-30T00:00:00Z",
    "2022-03-08T25:00:00",
    "yesterday",
    "",
    "P1D",
]
ODD_NUMBERS = [
    "0",
    "-0",
    "-1",
    "1e308",
    "1e400",
    "-1e400",
    "1e-400",
    "123456789012345678901234567890",
    "18446744073709551616",
    "9" * 400,
    "253402300799999",
    "253402300800000",
    "0.5",
]
ODD_STRINGS = ['"Infinity"', '"-Infinity"', '"NaN"', '"\\u0000"', '"\\ud800"', '"a\\udfffb"', '"+31 6 1234 5678"']
FIELDS = [
    "fromNumber",
    "toNumber",
    "duration",
    "startTime",
    "callType",
    "body",
    "userId",
    "id",
    "customerPhoneNumber",
    "timeInQueue",
    "timeInQueueMs",
    "timestamp",
    "Timestamp",
    "queue",
    "agentID",
    "targetPhoneNumber",
    "mediaType",
    "isOutbound",
    "createdAt",
    "closedAt",
    "agent",
    "customerIdentifier",
    "customerId",
    "notes",
    "examples",
]


def _text(value: str) -> str:
    return json.dumps(value)


scalars = st.one_of(
    st.sampled_from(["null", "true", "false", '"Inbound"', '"Outbound"', '"+31612345678"', '"K-1001"']),
    st.sampled_from(ODD_NUMBERS),
    st.sampled_from(ODD_STRINGS),
    st.sampled_from(ODD_TIMES).map(_text),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.text(max_size=30).map(_text),
    st.text(max_size=10).map(lambda text: json.dumps(text, ensure_ascii=False)),
)


def _nest(depth: int, inner: str) -> str:
    return "[" * depth + inner + "]" * depth


values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(st.sampled_from(FIELDS) | st.text(max_size=8), children), max_size=3).map(
            lambda pairs: "{" + ",".join(f"{_text(k)}:{v}" for k, v in pairs) + "}"
        ),
    ),
    max_leaves=8,
)
deep_values = st.tuples(st.integers(min_value=200, max_value=1020), scalars).map(lambda pair: _nest(*pair))

bodies = st.one_of(
    # An object with some of the contracts' fields (and others), each maybe odd.
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), st.one_of(values, deep_values), max_size=8).map(
        lambda fields: "{" + ",".join(f"{_text(k)}:{v}" for k, v in fields.items()) + "}"
    ),
    values,
    deep_values,
    st.integers(min_value=1, max_value=1024).map(lambda depth: _nest(depth, "")),
)

# ---------------------------------------------------------------- the endpoints


@pytest.fixture
def keys(brand):
    customer(brand, customer_id="K-1001", addresses=[{"kind": "telephone", "value": "+31612345678"}])
    lookup_cache.clear()
    return {name: credential(brand, name) for name in ("omnidesk", "m8com", "servicehooks")}


EVENT_PATHS = [
    "/hooks/m8com/{slug}/calllog",
    "/hooks/servicehooks/{slug}/abandoned-conversation",
    "/hooks/servicehooks/{slug}/AbandonedConversation",
    "/hooks/servicehooks/{slug}/outbound-call",
    "/hooks/servicehooks/{slug}/workitem-closed/",
]
slugs = st.one_of(st.just("acme"), st.sampled_from(["ac%00me", "ACME", "acme%2F..", "%C3%A9", "-", "x" * 300]))


@BOUNDED
@given(path=st.sampled_from(EVENT_PATHS), slug=st.just("acme") | slugs, body=bodies)
def test_every_json_event_is_stored_and_answered_2xx(client, keys, path, slug, body):
    path = path.format(slug=slug)
    headers = {"Authorization": f"Bearer {keys['m8com']}"} if "/m8com/" in path else {"x-api-key": keys["servicehooks"]}
    response = client.post(path, data=body.encode(), content_type="application/json", headers=headers)
    if slug != "acme":
        assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found"), path
        return
    if response.status_code == 400:
        # The one refusal of valid JSON: deeper than the parser's 1,024 levels (documented).
        assert response.json()["error"]["message"] == "The body is nested deeper than 1,024 levels.", body[:200]
        return
    assert response.status_code in (200, 202), (response.status_code, response.content[:300], body[:300])
    answer = response.json()
    event = InboundEvent.objects.get(pk=answer["id"])
    assert event.state == answer["status"]
    if not answer["duplicate"]:
        assert event.body == body


params = st.lists(
    st.tuples(
        st.sampled_from(["channelAddressType", "address", "primaryID", "ticketID", "fromNumber", "toNumber", "key"])
        | st.text(max_size=6),
        st.one_of(
            st.sampled_from(["phoneNumber", "email", "+31612345678", "0612345678", "a@b.c", "\x00", " 316", ""]),
            st.text(max_size=40),
        ),
    ),
    max_size=6,
)


def _query(pairs: list[tuple[str, str]], crowd: int) -> str:
    encoded = [f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs]
    return "&".join(encoded + [f"p{i}=1" for i in range(crowd)])


@BOUNDED
@given(
    platform=st.sampled_from(["omnidesk", "m8com"]),
    slug=st.just("acme") | slugs,
    pairs=params,
    crowd=st.sampled_from([0, 0, 0, 1001]),
)
def test_lookups_never_answer_5xx(client, keys, platform, slug, pairs, crowd):
    if platform == "omnidesk":
        query = _query([("key", keys["omnidesk"]), *pairs], crowd)
        response = client.get(f"/hooks/omnidesk/{slug}/customerlookup?{query}")
        allowed = {200, 400, 401, 403, 404}
    else:
        query = _query(pairs, crowd)
        response = client.get(f"/hooks/m8com/{slug}/lookup?{query}", HTTP_AUTHORIZATION=f"Bearer {keys['m8com']}")
        allowed = {200, 400, 403, 404}
    assert response.status_code in allowed, (response.status_code, response.content[:300], slug, pairs, crowd)
    assert response["Content-Type"].startswith("application/json")
    if crowd:
        assert response.status_code in (400, 404)
