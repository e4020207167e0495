"""The brand's matching policy (issue 12, customers.matching) as the platforms see it:
which address types count as a phone, suffix matching, extensions, several matches,
the brand's own lines (M8Com direction), Omnidesk primaryID precedence, a policy
change visible at once, tenant isolation, inbound call-log matching, query counts."""

from __future__ import annotations

import json

import pytest

from customers.services import customer_update
from hooks.inbound.lookup_cache import lookup_cache
from hooks.inbound.models import InboundEvent
from hub.models import Brand
from hub.services import brand_update
from synclog.models import InboundRequest
from tests.factories import credential, customer

pytestmark = pytest.mark.django_db

MARIA = "+31612345678"
SWITCHBOARD = "+31205550100"
UNKNOWN = "+31600000001"

WENDY_CARD = {"displayName": "Wendy Wassup", "firstName": "Wendy", "lastName": "Wassup"}
# Her card once the brand counts WhatsApp as a phone: the number she was matched by is on it.
WENDY_CARD_WHATSAPP = {**WENDY_CARD, "phoneNumbers": [{"id": MARIA, "comment": "WhatsApp"}]}
WENDY_ELEMENT = {
    "addresses": [{"address": MARIA, "type": "whatsapp"}],
    "customerFirstname": "Wendy",
    "customerID": "W-1",
    "customerLastname": "Wassup",
    "customFields": [],
    "timeline": [],
}


@pytest.fixture(autouse=True)
def _fresh_cache():
    lookup_cache.clear()
    yield
    lookup_cache.clear()


@pytest.fixture
def m8com_secret(brand):
    return credential(brand, "m8com")


@pytest.fixture
def omnidesk_key(brand):
    return credential(brand, "omnidesk")


def policy(brand: Brand, **fields) -> Brand:
    """Change the policy the way the admin and config import do (validated, through the service)."""
    for name, value in fields.items():
        setattr(brand, name, value)
    brand.full_clean()
    return brand_update(brand=brand)


def m8com(client, secret, slug="acme", **numbers):
    return client.get(f"/hooks/m8com/{slug}/lookup", numbers, headers={"Authorization": f"Bearer {secret}"})


def omnidesk(client, key, slug="acme", **params):
    return client.get(f"/hooks/omnidesk/{slug}/customerlookup", {"key": key, **params})


def last_note() -> str:
    return InboundRequest.objects.order_by("-pk").first().note


def person(brand, customer_id, first_name, *numbers, kind="telephone"):
    return customer(
        brand,
        customer_id=customer_id,
        first_name=first_name,
        last_name="Test",
        addresses=[{"type": kind, "address": number} for number in numbers],
    )


# ---------------------------------------------------------------- address types


def test_a_whatsapp_number_is_found_only_when_the_brand_counts_it_as_a_phone(client, brand, m8com_secret, omnidesk_key):
    customer(
        brand,
        customer_id="W-1",
        first_name="Wendy",
        last_name="Wassup",
        addresses=[{"type": "whatsapp", "address": "+31 6 1234 5678"}],
    )
    # Default (telephone only): a normal miss on both platforms, and the misses are cached.
    response = m8com(client, m8com_secret, fromNumber=MARIA)
    assert (response.status_code, json.loads(response.content)) == (404, {"message": "No contact found"})
    assert omnidesk(client, omnidesk_key, channelAddressType="phoneNumber", address=MARIA).content == b"[]"

    # The brand counts WhatsApp as a phone: the very next lookups find her (the cached misses are not served).
    policy(brand, phone_address_types=["telephone", "whatsapp"])
    response = m8com(client, m8com_secret, fromNumber=MARIA)
    assert (response.status_code, json.loads(response.content)) == (200, WENDY_CARD_WHATSAPP)
    response = omnidesk(client, omnidesk_key, channelAddressType="phoneNumber", address=MARIA)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(response.content) == [WENDY_ELEMENT]

    # And back: WhatsApp is no phone again at once.
    policy(brand, phone_address_types=["telephone"])
    assert m8com(client, m8com_secret, fromNumber=MARIA).status_code == 404
    assert omnidesk(client, omnidesk_key, channelAddressType="phoneNumber", address=MARIA).content == b"[]"


def test_a_customer_holding_the_number_as_telephone_and_whatsapp_counts_once(client, brand, m8com_secret):
    policy(brand, phone_address_types=["telephone", "whatsapp"])
    customer(
        brand,
        first_name="Both",
        addresses=[{"type": "telephone", "address": MARIA}, {"type": "whatsapp", "address": MARIA}],
    )
    assert json.loads(m8com(client, m8com_secret, fromNumber=MARIA).content)["firstName"] == "Both"
    assert last_note() == "matched fromNumber"


# ---------------------------------------------------------------- suffix matching and extensions

STORED_WITHOUT_COUNTRY = "+31647012345"  # "06 4701 2345" typed without a country code: read as Dutch
BELGIAN = "+32647012345"  # the caller: the same last 9 digits


def test_suffix_matching_finds_a_number_stored_without_its_country_code_only_when_on(
    client, brand, m8com_secret, omnidesk_key
):
    bert = person(brand, "B-1", "Bert", "06 4701 2345")
    assert bert.addresses.get().normalized == STORED_WITHOUT_COUNTRY
    assert m8com(client, m8com_secret, fromNumber=BELGIAN).status_code == 404
    assert omnidesk(client, omnidesk_key, channelAddressType="phoneNumber", address=BELGIAN).content == b"[]"

    policy(brand, suffix_match_digits=9)
    response = m8com(client, m8com_secret, fromNumber=BELGIAN)
    assert response.status_code == 200
    assert json.loads(response.content)["firstName"] == "Bert"
    assert last_note() == "matched fromNumber by its last 9 digits"
    found = json.loads(omnidesk(client, omnidesk_key, channelAddressType="phoneNumber", address=BELGIAN).content)
    assert [c["customerID"] for c in found] == ["B-1"]
    assert last_note() == "matched address by its last 9 digits"

    # One digit off is a miss; 10 digits asked of a 9-digit match is a miss too.
    assert m8com(client, m8com_secret, fromNumber="+32647012346").status_code == 404
    policy(brand, suffix_match_digits=10)
    assert m8com(client, m8com_secret, fromNumber=BELGIAN).status_code == 404


def test_an_exact_match_wins_over_a_suffix_match_and_from_wins_over_to(client, brand, m8com_secret):
    policy(brand, suffix_match_digits=9)
    person(brand, "B-1", "Bert", "06 4701 2345")
    person(brand, "E-1", "Exact", "+33647012345")
    customer_update(customer=person(brand, "L-1", "Later", "+34647012345"), job_title="updated last")
    assert json.loads(m8com(client, m8com_secret, fromNumber="+33647012345").content)["firstName"] == "Exact"
    assert last_note() == "matched fromNumber"
    # An exact toNumber beats a suffix of fromNumber: every exact number is tried before any suffix.
    answer = m8com(client, m8com_secret, fromNumber=BELGIAN, toNumber="+33647012345")
    assert json.loads(answer.content)["firstName"] == "Exact"
    assert last_note() == "matched toNumber"
    # No exact holder: the suffix of fromNumber, which three share (the most recently updated shown).
    answer = m8com(client, m8com_secret, fromNumber=BELGIAN, toNumber=UNKNOWN)
    assert json.loads(answer.content)["firstName"] == "Later"
    assert last_note() == "matched fromNumber by its last 9 digits; 3 customers matched; most recently updated shown"


@pytest.mark.parametrize("extension", ["201", "12345", "12 345", "1-2"])
def test_extensions_are_never_looked_up(
    client, brand, m8com_secret, omnidesk_key, extension, django_assert_max_num_queries
):
    person(brand, "M-1", "Maria", MARIA)
    policy(brand, suffix_match_digits=6)
    # M8Com: an extension alone is the contract's miss; beside a number, the number is the customer.
    with django_assert_max_num_queries(3) as captured:  # key check, log row, key last-used: no lookup
        response = m8com(client, m8com_secret, fromNumber=extension)
    assert not [q for q in captured.captured_queries if "customers_address" in q["sql"]]
    assert (response.status_code, json.loads(response.content)) == (404, {"message": "No contact found"})
    assert json.loads(m8com(client, m8com_secret, fromNumber=extension, toNumber=MARIA).content)["firstName"] == (
        "Maria"
    )
    assert last_note() == "matched toNumber"
    # Omnidesk: 200 with an empty array (a 6-digit suffix of an extension never reaches a customer).
    with django_assert_max_num_queries(3) as captured:  # key check, log row, key last-used
        response = omnidesk(client, omnidesk_key, channelAddressType="phoneNumber", address=extension)
    assert not [q for q in captured.captured_queries if "customers_address" in q["sql"]]
    assert (response.status_code, response.content) == (200, b"[]")
    assert last_note() == "an extension (5 digits or fewer): not looked up"


def test_a_malformed_international_number_is_still_a_400_not_an_extension(client, brand, omnidesk_key):
    response = omnidesk(client, omnidesk_key, channelAddressType="phoneNumber", address="+31 612")
    assert response.status_code == 400
    assert json.loads(response.content)["error"]["fields"] == {"address": ["'+31 612' is not a valid phone number."]}


# ---------------------------------------------------------------- several matches


def test_several_matches_m8com_shows_the_most_recently_updated_and_the_log_says_so(client, brand, m8com_secret):
    first = person(brand, "S-1", "First", MARIA)
    middle = person(brand, "S-2", "Middle", MARIA)
    person(brand, "S-3", "Last", MARIA)
    customer_update(customer=middle, job_title="touched last")
    response = m8com(client, m8com_secret, fromNumber=MARIA)
    assert json.loads(response.content)["firstName"] == "Middle"
    row = InboundRequest.objects.get()
    assert (row.customers_returned, row.customer_id) == (1, middle.pk)
    assert row.note == "matched fromNumber; 3 customers matched; most recently updated shown"
    customer_update(customer=first, job_title="now me")
    assert json.loads(m8com(client, m8com_secret, fromNumber=MARIA).content)["firstName"] == "First"


def test_several_matches_omnidesk_gets_them_all_oldest_first_and_the_log_says_so(client, brand, omnidesk_key):
    ids = [person(brand, f"S-{i}", f"P{i}", MARIA).customer_id for i in range(3)]
    customer_update(customer=brand.customers.get(customer_id="S-1"), job_title="touched")
    response = omnidesk(client, omnidesk_key, channelAddressType="phoneNumber", address=MARIA, ticketID="77")
    assert [c["customerID"] for c in json.loads(response.content)] == ids
    row = InboundRequest.objects.get()
    assert (row.customers_returned, row.customer_id) == (3, None)
    assert row.note == "ticketID=77; 3 customers matched; all returned"


# ---------------------------------------------------------------- the brand's own lines (M8Com direction)


@pytest.fixture
def lines(brand):
    """The switchboard record that used to answer for every unknown caller, and Maria."""
    switchboard = person(brand, "SB", "Switchboard", SWITCHBOARD, "+31206660123")
    person(brand, "M-1", "Maria", MARIA)
    customer_update(customer=switchboard, job_title="the most recently updated")
    return policy(brand, own_lines=[SWITCHBOARD, "+3120666*"])


@pytest.mark.parametrize(
    ("numbers", "status", "first_name", "note"),
    [
        # An inbound call from an unknown caller to the brand's line: nobody (not the switchboard).
        ({"fromNumber": UNKNOWN, "toNumber": SWITCHBOARD}, 404, None, "own line: toNumber"),
        ({"fromNumber": UNKNOWN, "toNumber": "+31206660999"}, 404, None, "own line: toNumber"),
        # Inbound from Maria to the line, outbound from a line (a prefix) to Maria: Maria either way.
        ({"fromNumber": MARIA, "toNumber": SWITCHBOARD}, 200, "Maria", "matched fromNumber; own line: toNumber"),
        ({"fromNumber": "+31206660123", "toNumber": MARIA}, 200, "Maria", "matched toNumber; own line: fromNumber"),
        # Both are the brand's lines (an internal call): nothing is looked up.
        ({"fromNumber": SWITCHBOARD, "toNumber": "+31206660123"}, 404, None, "own line: fromNumber, toNumber"),
        ({"fromNumber": SWITCHBOARD}, 404, None, "own line: fromNumber"),
        # Neither is a known line: fromNumber, then toNumber (as before).
        ({"fromNumber": UNKNOWN, "toNumber": MARIA}, 200, "Maria", "matched toNumber"),
    ],
)
def test_own_lines_are_never_looked_up_and_the_other_number_is_the_customer(
    client, lines, m8com_secret, numbers, status, first_name, note
):
    response = m8com(client, m8com_secret, **numbers)
    assert response.status_code == status
    if first_name:
        assert json.loads(response.content)["firstName"] == first_name
    else:
        assert json.loads(response.content) == {"message": "No contact found"}
    assert last_note() == note


def test_without_own_lines_the_switchboard_record_answers_as_before(client, brand, m8com_secret):
    person(brand, "SB", "Switchboard", SWITCHBOARD)
    response = m8com(client, m8com_secret, fromNumber=UNKNOWN, toNumber=SWITCHBOARD)
    assert json.loads(response.content)["firstName"] == "Switchboard"


def test_an_own_line_is_no_customer_for_omnidesk_either(client, lines, omnidesk_key):
    response = omnidesk(client, omnidesk_key, channelAddressType="phoneNumber", address=SWITCHBOARD)
    assert (response.status_code, response.content) == (200, b"[]")


# ---------------------------------------------------------------- Omnidesk primaryID


def test_primary_id_beside_an_address_is_answered_by_the_primary_id(client, brand, omnidesk_key):
    customer(
        brand,
        customer_id="W-1",
        first_name="Wendy",
        last_name="Wassup",
        addresses=[{"type": "whatsapp", "address": MARIA}],
    )
    person(brand, "OTHER", "Other", "+31687654321")
    for params in (
        {"channelAddressType": "phoneNumber", "address": "+31687654321"},
        {"channelAddressType": "email", "address": "not an address"},  # not even read
        {"address": "+31687654321"},
        {"channelAddressType": "phoneNumber"},
    ):
        response = omnidesk(client, omnidesk_key, primaryID="W-1", ticketID="5", **params)
        assert response.status_code == 200, params
        assert response["Content-Type"] == "application/json; charset=utf-8"
        assert json.loads(response.content) == [WENDY_ELEMENT], params
    response = omnidesk(client, omnidesk_key, primaryID="nobody", channelAddressType="phoneNumber", address=MARIA)
    assert response.content == b"[]"
    # An empty primaryID beside an address: the address is the question.
    response = omnidesk(client, omnidesk_key, primaryID=" ", channelAddressType="phoneNumber", address="+31687654321")
    assert [c["customerID"] for c in json.loads(response.content)] == ["OTHER"]


# ---------------------------------------------------------------- tenant isolation


def test_another_brands_policy_and_lines_never_change_this_brands_answers(
    client, brand, other_brand, m8com_secret, omnidesk_key
):
    maria = person(brand, "M-1", "Maria", MARIA)
    customer(brand, customer_id="W-1", first_name="Wendy", addresses=[{"type": "whatsapp", "address": "+31611111111"}])
    person(brand, "B-1", "Bert", "06 4701 2345")
    # Brand B counts WhatsApp, matches suffixes and lists Maria's number as its own line.
    policy(
        other_brand,
        phone_address_types=["telephone", "whatsapp"],
        suffix_match_digits=9,
        own_lines=[MARIA, "+316111*"],
    )
    other_secret = credential(other_brand, "m8com")
    person(other_brand, "X-1", "Theirs", "+31611111111", kind="whatsapp")
    assert json.loads(m8com(client, m8com_secret, fromNumber=MARIA).content)["firstName"] == "Maria"
    assert m8com(client, m8com_secret, fromNumber="+31611111111").status_code == 404
    assert m8com(client, m8com_secret, fromNumber=BELGIAN).status_code == 404
    found = omnidesk(client, omnidesk_key, channelAddressType="phoneNumber", address=MARIA)
    assert [c["customerID"] for c in json.loads(found.content)] == [maria.customer_id]
    # Brand B's own key, with its own policy, never reaches brand A's customers.
    assert m8com(client, other_secret, slug="globex", fromNumber=MARIA).status_code == 404  # its own line
    assert m8com(client, other_secret, slug="globex", fromNumber=BELGIAN).status_code == 404  # Bert is brand A's
    assert m8com(client, other_secret, slug="globex", fromNumber="+31611111112", toNumber=MARIA).status_code == 404


# ---------------------------------------------------------------- inbound events (call logs)


def call(**fields):
    return {
        "fromNumber": UNKNOWN,
        "toNumber": MARIA,
        "duration": 60_000,
        "startTime": 1_763_800_000_000,
        "callType": "Inbound",
        "body": "Call type: Inbound",
        **fields,
    }


def post_call(client, secret, payload):
    return client.post(
        "/hooks/m8com/acme/calllog",
        data=json.dumps(payload),
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )


def test_call_logs_honour_the_address_type_policy(client, brand, m8com_secret):
    customer(brand, customer_id="W-1", first_name="Wendy", addresses=[{"type": "whatsapp", "address": MARIA}])
    assert post_call(client, m8com_secret, call()).json()["status"] == "unmatched"
    policy(brand, phone_address_types=["whatsapp", "telephone"])
    response = post_call(client, m8com_secret, call(startTime=1_763_800_100_000))
    assert (response.json()["status"], response.json()["customerID"]) == ("processed", "W-1")


def test_call_logs_follow_the_same_rules_as_the_lookup(client, brand, m8com_secret):
    """Suffix matching, several matches (the most recently updated) and own lines, as M8Com's lookup."""
    policy(brand, suffix_match_digits=9, own_lines=["+3120555*"], create_unknown_callers=True)
    person(brand, "B-1", "Bert", "06 4701 2345")
    older, newer = person(brand, "S-1", "Older", MARIA), person(brand, "S-2", "Newer", MARIA)
    customer_update(customer=newer, job_title="touched")
    customer_update(customer=older, job_title="touched last")
    assert post_call(client, m8com_secret, call(toNumber=BELGIAN)).json()["customerID"] == "B-1"
    assert post_call(client, m8com_secret, call(startTime=2)).json()["customerID"] == "S-1"
    # A call from the brand's line to an unknown number (callType is the contact's side:
    # Inbound, the contact was called): the unknown customer is created.
    outbound = call(fromNumber="+31205550199", toNumber="+31 6 2345 6789", startTime=3)
    assert post_call(client, m8com_secret, outbound).json()["status"] == "processed"
    assert InboundEvent.objects.get(payload__startTime=3).customer.addresses.get().normalized == "+31623456789"
    # Between two of the brand's lines: nobody is matched, and no customer is made for a line.
    inbound_to_line = call(fromNumber="+31205550199", toNumber="+31205550100", startTime=4)
    assert post_call(client, m8com_secret, inbound_to_line).json()["status"] == "unmatched"
    assert not brand.customers.filter(addresses__normalized__startswith="+3120555").exists()


# ---------------------------------------------------------------- the hot path's query budget

ALL_ON = {"phone_address_types": ["telephone", "whatsapp"], "suffix_match_digits": 9, "own_lines": ["+3120555*"]}


@pytest.mark.parametrize("settings_", [{}, ALL_ON], ids=["policy off", "policy on"])
def test_a_lookup_is_one_statement_whatever_the_policy(
    client, brand, m8com_secret, omnidesk_key, settings_, django_assert_max_num_queries
):
    if settings_:
        policy(brand, **settings_)
    person(brand, "M-1", "Maria", MARIA)
    cases = [
        (lambda: m8com(client, m8com_secret, fromNumber=UNKNOWN, toNumber=MARIA), 200),  # hit
        (lambda: m8com(client, m8com_secret, fromNumber=UNKNOWN, toNumber="+31600000002"), 404),  # miss
        (lambda: omnidesk(client, omnidesk_key, channelAddressType="phoneNumber", address=MARIA), 200),
        (lambda: omnidesk(client, omnidesk_key, channelAddressType="phoneNumber", address=UNKNOWN), 200),
    ]
    for ask, status in cases:
        # key check + one lookup statement + log row + key last-used time
        with django_assert_max_num_queries(4) as captured:
            assert ask().status_code == status
        lookups = [q["sql"] for q in captured.captured_queries if "customers_address" in q["sql"]]
        assert len(lookups) == 1, lookups
        with django_assert_max_num_queries(2):  # cached: key check + log row
            assert ask().status_code == status


# ---------------------------------------------------------------- admin and config as code


def test_the_brand_admin_edits_the_policy_with_validation(client, brand):
    from tests.factories import UserFactory

    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    root.set_password("pw")
    root.save()
    client.force_login(root)
    url = f"/admin/hub/brand/{brand.pk}/change/"
    page = client.get(url).content.decode()
    assert "Matching policy" in page and "Suffix matching (last N digits)" in page
    form = {
        "name": "Acme",
        "slug": "acme",
        "is_active": "on",
        "default_region": "NL",
        "time_zone": "Europe/Amsterdam",
        "more_info_url_template": "",
        "create_activity_urls": "[]",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "lookup_budget_ms": "2000",
        "lookup_priority_window_ms": "200",
        "phone_address_types": ["telephone", "whatsapp"],
        "suffix_match_digits": "9",
        "own_lines": "+31205550100\n+3120555*",
    }
    generation = brand.generation
    assert client.post(url, form).status_code == 302
    brand.refresh_from_db()
    assert (brand.phone_address_types, brand.suffix_match_digits, brand.own_lines) == (
        ["telephone", "whatsapp"],
        9,
        ["+31205550100", "+3120555*"],
    )
    assert brand.generation > generation  # cached answers of the old policy are never served
    bad = {**form, "suffix_match_digits": "4", "own_lines": "020 555 0100"}
    html = client.post(url, bad).content.decode()
    assert "0 (off) or 6 to 12 digits" in html
    assert "Not an E.164 number or prefix" in html
    brand.refresh_from_db()
    assert brand.suffix_match_digits == 9


def test_config_import_refuses_a_bad_policy_and_changes_nothing(brand, tmp_path):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    config = {
        "format": "hookhub-config",
        "version": 1,
        "brand": "acme",
        "brand_settings": {"phone_address_types": ["fax"], "suffix_match_digits": 3, "own_lines": ["+31*x"]},
    }
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(config))
    with pytest.raises(CommandError) as raised:
        call_command("import_config", str(path))
    message = str(raised.value)
    assert "brand_settings.phone_address_types" in message
    assert "brand_settings.suffix_match_digits" in message
    assert "brand_settings.own_lines" in message
    brand.refresh_from_db()
    assert (brand.phone_address_types, brand.suffix_match_digits, brand.own_lines) == (["telephone"], 0, [])
