"""M8Com number lookup, exact to contracts/m8com-insights-webhook.txt ("Number Lookup")."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from customers.services import activity_record, customer_update
from hooks.inbound import m8com
from hooks.inbound.lookup_cache import lookup_cache
from hub.services import credential_issue, credential_revoke
from synclog.models import InboundRequest
from tests.factories import credential, customer

URL = "/hooks/m8com/acme/lookup"
T0 = datetime(2020, 11, 27, 15, 25, 11, 729000, tzinfo=UTC)
MS = 1606490711729  # T0 in Unix milliseconds, as in the contract's examples


@pytest.fixture(autouse=True)
def _fresh_cache():
    lookup_cache.clear()
    yield
    lookup_cache.clear()


@pytest.fixture
def secret(brand):
    return credential(brand, "m8com")


def lookup(client, secret, **params):
    headers = {} if secret is None else {"Authorization": f"Bearer {secret}"}
    return client.get(URL, params, headers=headers)


ALL_TYPES = [
    {
        "kind": "NOTE",
        "occurred_at": T0,
        "header": "Previous contact",
        "body": "Maria Andersson, an Insights Engineer at Acme Inc., has previously been in communication.",
        "associated_user": "adam.webb@emca.inc",
        "link_url": "https://link.to.note",
    },
    {
        "kind": "TASK",
        "occurred_at": T0 - timedelta(seconds=1),
        "status": "Pending",
        "header": "New Integration",
        "custom_description": "Details",
        "body": "Verify the integration.",
        "due_date": T0 + timedelta(days=1),
        "assigned_user": "adam.webb@emca.inc",
        "link_url": "https://link.to.task",
    },
    {
        "kind": "CALL",
        "occurred_at": T0 - timedelta(seconds=2),
        "body": "Call type: Inbound",
        "from_number": "+46701234567",
        "to_number": "+46812345678",
        "duration_ms": 93000,
        "start_time": T0 - timedelta(minutes=2),
    },
    {
        "kind": "TICKET",
        "occurred_at": T0 - timedelta(seconds=3),
        "body": "**Broken** router",
        "markdown": True,
        "created_date": T0 - timedelta(days=2),
        "priority": "HIGH",
        "pipeline": "Support",
        "pipeline_stage": "Open",
    },
    {
        "kind": "DEAL",
        "occurred_at": T0 - timedelta(seconds=4),
        "body": "Renewal",
        "close_date": T0 + timedelta(days=30),
        "currency": "SEK",
        "amount": Decimal("1250.50"),
        "done": False,
    },
    {
        "kind": "APPOINTMENT",
        "occurred_at": T0 - timedelta(seconds=5),
        "body": "Site visit",
        "start_date": T0 + timedelta(days=3),
        "end_date": T0 + timedelta(days=3, hours=1),
        "venue": "Stockholm office",
        "all_day": False,
    },
    {"kind": "EVENT", "occurred_at": T0 + timedelta(days=1), "body": "Omnidesk-only event"},
]


@pytest.fixture
def maria(brand):
    return customer(
        brand,
        customer_id="C-42",
        first_name="Maria",
        last_name="Andersson",
        company_name="Acme Inc.",
        job_title="Insights Engineer",
        avatar_url="https://img.example.com/maria.png",
        cover_photo_url="https://img.example.com/cover.png",
        more_info_url="https://crm.example.com/contact/maria-andersson",
        addresses=[
            {"type": "email", "address": "maria@acme.example", "comment": "Work"},
            {"type": "email", "address": "maria@home.example"},
            {"type": "telephone", "address": "+46 70 123 45 67", "comment": "Mobile"},
            {"type": "twitter", "address": "maria"},
        ],
        custom_fields=[{"customerType": "unlimited"}, {"customerSince": "2019-12-24"}],
        activities=ALL_TYPES,
    )


def test_contact_is_exactly_the_contract_shape(client, secret, maria):
    response = lookup(client, secret, fromNumber="+46 70 123 45 67", toNumber="+46812345678")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(response.content) == {
        "displayName": "Maria Andersson",
        "firstName": "Maria",
        "lastName": "Andersson",
        "avatarUrl": "https://img.example.com/maria.png",
        "coverPhotoUrl": "https://img.example.com/cover.png",
        "emails": [{"id": "maria@acme.example", "comment": "Work"}, {"id": "maria@home.example"}],
        "phoneNumbers": [{"id": "+46701234567", "comment": "Mobile"}],
        "companyInfo": {"name": "Acme Inc.", "title": "Insights Engineer"},
        "fields": [
            {"title": "customerType", "comment": "unlimited"},
            {"title": "customerSince", "comment": "2019-12-24"},
        ],
        "moreInfoUrl": "https://crm.example.com/contact/maria-andersson",
        "activities": [
            {
                "type": "NOTE",
                "body": "Maria Andersson, an Insights Engineer at Acme Inc., has previously been in communication.",
                "timestamp": MS,
                "header": "Previous contact",
                "associatedUser": "adam.webb@emca.inc",
                "link": "https://link.to.note",
            },
            {
                "type": "TASK",
                "body": "Verify the integration.",
                "timestamp": MS - 1000,
                "dueDate": MS + 86_400_000,
                "header": "New Integration",
                "customDescription": "Details",
                "status": "Pending",
                "assignedUser": "adam.webb@emca.inc",
                "link": "https://link.to.task",
            },
            {
                "type": "CALL",
                "body": "Call type: Inbound",
                "timestamp": MS - 2000,
                "toNumber": "+46812345678",
                "fromNumber": "+46701234567",
                "duration": 93000,
                "startTime": MS - 120_000,
            },
            {
                "type": "TICKET",
                "body": "**Broken** router",
                "timestamp": MS - 3000,
                "createdDate": MS - 2 * 86_400_000,
                "priority": "HIGH",
                "pipeline": "Support",
                "pipelineStage": "Open",
                "markdown": True,
            },
            {
                "type": "DEAL",
                "body": "Renewal",
                "timestamp": MS - 4000,
                "closeDate": MS + 30 * 86_400_000,
                "currency": "SEK",
                "amount": 1250.5,
                "done": False,
            },
            {
                "type": "APPOINTMENT",
                "body": "Site visit",
                "timestamp": MS - 5000,
                "startDate": MS + 3 * 86_400_000,
                "endDate": MS + 3 * 86_400_000 + 3_600_000,
                "allDay": False,
                "venue": "Stockholm office",
            },
        ],
    }


def test_minimal_contact_omits_empty_optional_fields(client, secret, brand):
    customer(
        brand,
        first_name="",
        last_name="",
        company_name="Solo AB",
        addresses=[{"type": "telephone", "address": "+31612345678"}],
    )
    body = json.loads(lookup(client, secret, fromNumber="+31612345678").content)
    assert body == {
        "displayName": "Solo AB",
        "phoneNumbers": [{"id": "+31612345678"}],
        "companyInfo": {"name": "Solo AB"},
    }


def test_at_most_ten_activities_per_type_newest_first(client, secret, brand):
    start = datetime(2024, 5, 1, tzinfo=UTC)
    activities = [
        {"kind": kind, "occurred_at": start + timedelta(minutes=i * 3 + offset), "body": f"{kind} {i}"}
        for i in range(14)
        for offset, kind in enumerate(("NOTE", "CALL", "EVENT"))
    ]
    customer(brand, addresses=[{"type": "telephone", "address": "+31612345678"}], activities=activities)
    got = json.loads(lookup(client, secret, fromNumber="+31612345678").content)["activities"]
    assert [a["body"] for a in got if a["type"] == "NOTE"] == [f"NOTE {i}" for i in range(13, 3, -1)]
    assert [a["body"] for a in got if a["type"] == "CALL"] == [f"CALL {i}" for i in range(13, 3, -1)]
    assert {a["type"] for a in got} == {"NOTE", "CALL"}  # EVENT is not an M8Com type
    stamps = [a["timestamp"] for a in got]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps[0] == int((start + timedelta(minutes=13 * 3 + 1)).timestamp() * 1000)


@pytest.mark.parametrize(
    "spelling", ["+46701234567", "+46 70 123 45 67", "0046701234567", "+46 (0)70-123 45 67", " 46 70 123 45 67"]
)
def test_number_spellings(client, secret, maria, spelling):
    response = lookup(client, secret, fromNumber=spelling)
    assert response.status_code == 200
    assert json.loads(response.content)["displayName"] == "Maria Andersson"


def test_unencoded_plus_in_raw_query_string(client, secret, maria):
    response = client.get(f"{URL}?fromNumber=+46 70 123 45 67", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200


def test_to_number_is_tried_when_from_number_finds_nobody(client, secret, maria):
    response = lookup(client, secret, fromNumber="+31600000001", toNumber="+46701234567")
    assert json.loads(response.content)["displayName"] == "Maria Andersson"
    assert InboundRequest.objects.get().note == "matched toNumber"


def test_a_user_id_instead_of_a_number_is_a_normal_miss(client, secret, maria):
    response = lookup(client, secret, fromNumber="usr_8f3a2c1b-9d", toNumber="+46701234567")
    assert response.status_code == 200
    response = lookup(client, secret, fromNumber="usr_8f3a2c1b-9d")
    assert response.status_code == 404
    assert json.loads(response.content) == {"message": "No contact found"}


def test_miss_is_404_no_contact_found(client, secret, maria):
    response = lookup(client, secret, fromNumber="+31600000001", toNumber="+31600000002")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(response.content) == {"message": "No contact found"}
    row = InboundRequest.objects.get()
    assert (row.status, row.customers_returned) == (404, 0)


def test_several_matches_answer_the_most_recently_updated_customer(client, secret, brand):
    older = customer(brand, first_name="Older", addresses=[{"type": "telephone", "address": "+31612345678"}])
    newer = customer(brand, first_name="Newer", addresses=[{"type": "telephone", "address": "+31612345678"}])
    assert json.loads(lookup(client, secret, fromNumber="+31612345678").content)["firstName"] == "Newer"
    customer_update(customer=older, job_title="Boss")
    assert json.loads(lookup(client, secret, fromNumber="+31612345678").content)["firstName"] == "Older"
    assert newer.pk != older.pk


def test_user_object_and_unknown_parameters_are_ignored(client, secret, maria):
    response = lookup(
        client,
        secret,
        fromNumber="+46701234567",
        **{"user[firstName]": "Adam", "user[userIds][0][type]": "email", "user": '{"id": "u1"}', "newThing": "1"},
    )
    assert response.status_code == 200


def test_brand_link_templates(client, secret, brand, maria):
    brand.create_activity_urls = [
        {"name": "New note", "url": "https://crm.example.com/customers/{{ customer.customer_id }}/notes/new"},
        {"name": "Mail", "url": "mailto:{{ customer.email }}?subject={{ customer.name|urlencode }}"},
        {"name": "Broken", "url": "https://crm.example.com/{{ customer.nope.deeper }}"},
        {"name": "", "url": "https://ignored.example.com"},
    ]
    brand.more_info_url_template = "https://crm.example.com/customers/{{ customer.customer_id }}"
    brand.save()
    body = json.loads(lookup(client, secret, fromNumber="+46701234567").content)
    assert body["createActivityUrls"] == [
        {"name": "New note", "url": "https://crm.example.com/customers/C-42/notes/new"},
        {"name": "Mail", "url": "mailto:maria@acme.example?subject=Maria%20Andersson"},
    ]
    # The customer's own more-info URL wins over the brand's template.
    assert body["moreInfoUrl"] == "https://crm.example.com/contact/maria-andersson"
    customer_update(customer=maria, more_info_url="")
    body = json.loads(lookup(client, secret, fromNumber="+46701234567").content)
    assert body["moreInfoUrl"] == "https://crm.example.com/customers/C-42"
    # A template change shows in the next lookup (the templates are part of the cache key).
    brand.more_info_url_template = "https://other.example.com/c/{{ customer.id }}"
    brand.save()
    body = json.loads(lookup(client, secret, fromNumber="+46701234567").content)
    assert body["moreInfoUrl"] == f"https://other.example.com/c/{maria.pk}"


def test_templates_run_in_the_sandbox(client, secret, brand, maria):
    brand.create_activity_urls = [{"name": "Evil", "url": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}]
    brand.save()
    response = lookup(client, secret, fromNumber="+46701234567")
    assert response.status_code == 200
    assert "createActivityUrls" not in json.loads(response.content)


def test_no_authorization_header_is_401(client, maria):
    response = lookup(client, None, fromNumber="+46701234567")
    assert response.status_code == 401
    assert json.loads(response.content) == {"message": "No authorization header provided"}


@pytest.mark.parametrize("which", ["wrong", "revoked", "other brand", "omnidesk key", "basic scheme", "empty bearer"])
def test_bad_secrets_are_403_invalid_secret(client, brand, other_brand, maria, which):
    headers = {}
    if which == "wrong":
        headers["Authorization"] = "Bearer hh_" + "y" * 43
    elif which == "revoked":
        cred, secret = credential_issue(brand=brand, integration="m8com")
        credential_revoke(credential=cred)
        headers["Authorization"] = f"Bearer {secret}"
    elif which == "other brand":  # tenant isolation
        headers["Authorization"] = f"Bearer {credential(other_brand, 'm8com')}"
    elif which == "omnidesk key":
        headers["Authorization"] = f"Bearer {credential(brand, 'omnidesk')}"
    elif which == "basic scheme":
        headers["Authorization"] = f"Basic {credential(brand, 'm8com')}"
    else:
        headers["Authorization"] = "Bearer "
    response = client.get(URL, {"fromNumber": "+46701234567"}, headers=headers)
    assert response.status_code == 403
    assert json.loads(response.content) == {"message": "Invalid secret"}


def test_outside_the_keys_networks_is_403(client, brand, maria):
    _, secret = credential_issue(brand=brand, integration="m8com", allowed_networks=["198.51.100.0/24"])
    assert lookup(client, secret, fromNumber="+46701234567").status_code == 403
    inside = client.get(
        URL, {"fromNumber": "+46701234567"}, headers={"Authorization": f"Bearer {secret}"}, REMOTE_ADDR="198.51.100.7"
    )
    assert inside.status_code == 200


def test_unknown_brand_is_404(client, secret):
    response = client.get(
        "/hooks/m8com/nope/lookup", {"fromNumber": "+46701234567"}, headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 404
    assert json.loads(response.content) == {"error": {"code": "not_found", "message": "No such brand."}}


@pytest.mark.parametrize("params", [{}, {"fromNumber": ""}, {"fromNumber": "  "}, {"toNumber": "+46701234567"}])
def test_from_number_is_required(client, secret, maria, params):
    response = lookup(client, secret, **params)
    assert response.status_code == 400
    assert json.loads(response.content) == {
        "error": {
            "code": "invalid",
            "message": "fromNumber is required.",
            "fields": {"fromNumber": ["fromNumber is required."]},
        }
    }


def test_unexpected_failure_is_a_json_500(client, secret, maria, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(m8com, "phone_match", explode)
    response = lookup(client, secret, fromNumber="+46701234567")
    assert response.status_code == 500
    assert json.loads(response.content) == {
        "error": {"code": "server_error", "message": "An unexpected error occurred."}
    }


def test_every_call_is_logged_without_the_secret(client, brand, secret, maria):
    lookup(client, secret, fromNumber="+46 70 123 45 67")
    row = InboundRequest.objects.get()
    assert (row.brand, row.endpoint, row.status, row.customers_returned) == (brand, "m8com.lookup", 200, 1)
    assert row.customer_id == maria.pk
    assert row.credential_prefix == secret[:10]
    assert row.query == "fromNumber=%2B46+70+123+45+67"  # as sent
    assert row.note == "matched fromNumber"
    for value in InboundRequest.objects.values().get().values():
        assert secret not in str(value)


@pytest.mark.cache
def test_a_new_activity_shows_in_the_very_next_lookup(client, secret, maria):
    before = json.loads(lookup(client, secret, fromNumber="+46701234567").content)
    lookup(client, secret, fromNumber="+46701234567")
    assert lookup_cache.hits == 1
    activity_record(
        customer=maria,
        kind="CALL",
        occurred_at=T0 + timedelta(days=2),
        body="Call type: Inbound",
        from_number="+46701234567",
        to_number="+46812345678",
        duration_ms=1000,
        source="m8com",
        external_id="c-9",
    )
    after = json.loads(lookup(client, secret, fromNumber="+46701234567").content)
    assert len(after["activities"]) == len(before["activities"]) + 1
    assert after["activities"][0]["timestamp"] == MS + 2 * 86_400_000
    customer_update(customer=maria, addresses=[{"type": "telephone", "address": "+46709999999"}])
    assert lookup(client, secret, fromNumber="+46701234567").status_code == 404


def test_query_budget_does_not_grow_with_activities(client, secret, brand, django_assert_max_num_queries):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    kinds = ["NOTE", "TASK", "CALL", "TICKET", "DEAL", "APPOINTMENT"]
    customer(
        brand,
        addresses=[{"type": "telephone", "address": "+31612345678"}],
        activities=[
            {"kind": kinds[i % 6], "occurred_at": start + timedelta(minutes=i), "body": "x"} for i in range(150)
        ],
    )
    # key check + one lookup for fromNumber and toNumber + log row + key last-used time
    with django_assert_max_num_queries(4):
        response = lookup(client, secret, fromNumber="+31600000001", toNumber="+31612345678")
    assert len(json.loads(response.content)["activities"]) == 60
