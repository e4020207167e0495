"""The admin form (validated on save, secrets write-only), call counts on the
source's page, the "Test a lookup" page, and config as code."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from hooks.outbound.configio import ConfigError, config_export, config_import
from hooks.sources.models import LookupSource
from hooks.sources.records import calls_flush

from .conftest import MAPPING, found, make_source
from .test_chain import m8com

ADD_URL = "/admin/sources/lookupsource/add/"


def form_data(brand, **overrides):
    data = {
        "brand": brand.pk,
        "name": "CRM",
        "enabled": "on",
        "order": 10,
        "kind": "http",
        "method": "GET",
        "url": "https://crm.example.com/api/contacts/search?phone={{ phone }}",
        "headers": "Accept: application/json",
        "body": "",
        "verify_ssl": "on",
        "timeout_ms": 800,
        "auth_type": "bearer",
        "auth_username": "",
        "auth_password": "",
        "api_key_header": "X-API-Key",
        "api_key": "tok-abcdef123456",
        "mapping": json.dumps(MAPPING),
        "cache_seconds": 300,
        "stale_seconds": 600,
        "negative_cache_seconds": 60,
    }
    data.update(overrides)
    return data


def test_a_valid_source_is_saved_with_its_secret_encrypted_and_never_shown(admin_client, brand):
    response = admin_client.post(ADD_URL, form_data(brand))
    assert response.status_code == 302, response.context["adminform"].form.errors
    source = LookupSource.objects.get()
    assert source.api_key == "tok-abcdef123456"
    page = admin_client.get(f"/admin/sources/lookupsource/{source.pk}/change/").content.decode()
    assert "tok-abcdef123456" not in page and "A value is stored (hidden)" in page
    # Saving again with the secret left blank keeps it.
    again = admin_client.post(f"/admin/sources/lookupsource/{source.pk}/change/", form_data(brand, api_key=""))
    assert again.status_code == 302
    source.refresh_from_db()
    assert source.api_key == "tok-abcdef123456" and source.revision == 2


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("url", "ftp://crm.example.com/x?p={{ phone }}", "Only http and https"),
        ("url", "https://crm.example.com/search", "Use at least one tag"),
        ("url", "https://crm.example.com/s?phone={{ phone }}&api_key=abc", "looks like a secret"),
        ("url", "https://user:pw@crm.example.com/s?phone={{ phone }}", "No user name or password"),
        ("url", "https://crm.example.com/s?phone={{ phone | upper }}", "Unknown tag"),
        ("url", "https://crm.example.com/s?phone={{ phone }}{% if 1 %}", "other template syntax"),
        ("url", "http://169.254.169.254/latest?phone={{ phone }}", "cloud metadata"),
        ("url", "http://127.0.0.1:8000/s?phone={{ phone }}", "loopback"),
        ("url", "http://10.0.0.5/s?phone={{ phone }}", "private"),
        ("headers", "Authorization: Bearer abc", "carries a secret"),
        ("headers", "not a header line", "Not a"),
        ("body", '{"phone": "{{ phone }}"}', "Only POST sends a body"),
        ("mapping", json.dumps({**MAPPING, "first_name": "$..["}), "not a JSONPath"),
        ("mapping", json.dumps({"first_name": "$.name"}), "customer_id: required"),
        ("mapping", json.dumps({**MAPPING, "colour": "$.c"}), "unknown key"),
        (
            "mapping",
            json.dumps({**MAPPING, "activities": [{"type": "CALL", "items": "$.x[*]", "fields": {"amount": "$.a"}}]}),
            "not a CALL field",
        ),
        ("timeout_ms", "20000", "less than or equal to 10000"),
    ],
)
def test_bad_configurations_are_refused_with_the_reason(admin_client, brand, settings, field, value, message):
    settings.HUB_ALLOW_PRIVATE_DESTINATIONS = False
    response = admin_client.post(ADD_URL, form_data(brand, **{field: value}))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors.get(field, [])), errors
    assert not LookupSource.objects.exists()


def test_post_body_must_be_json_with_sample_values(admin_client, brand):
    response = admin_client.post(ADD_URL, form_data(brand, method="POST", body='{"phone": {{ phone }}}'))
    assert "not JSON" in " ".join(response.context["adminform"].form.errors["body"])


def test_the_sources_page_shows_its_call_counts(client, admin_client, brand, crm, m8com_key):
    crm.route("/contacts/search", found())
    crm.route("/down", {"x": 1}, status=500)
    source = make_source(brand, crm, name="CRM", order=2, negative_cache_seconds=0)
    make_source(brand, crm, "/down", name="Down", order=1)
    m8com(client, m8com_key)
    crm.route("/contacts/search", {"results": []})
    m8com(client, m8com_key, from_number="+31 6 5555 4444")
    calls_flush()
    page = admin_client.get(f"/admin/sources/lookupsource/{source.pk}/change/").content.decode()
    assert 'data-stat="calls"><b>2</b>' in page
    assert 'data-stat="found"><b>1</b>' in page
    assert 'data-stat="not found"><b>1</b>' in page
    listing = admin_client.get("/admin/sources/lookupsource/").content.decode()
    assert "2: 0 found, 0 not found, 0 timeouts, 2 errors" in listing  # Down
    assert "Test a lookup" in listing
    dashboard = admin_client.get(reverse("hub-dashboard", args=[brand.slug]))
    assert 'id="hh-lookup-sources"' in dashboard.content.decode()
    rows = {row["source_name"]: row for row in dashboard.context["lookup_sources"]}
    assert (rows["CRM"]["calls"], rows["CRM"]["hits"], rows["CRM"]["misses"]) == (2, 1, 1)
    assert (rows["Down"]["calls"], rows["Down"]["errors"]) == (2, 2)
    calls = admin_client.get(f"/admin/sources/sourcecall/?source__id__exact={source.pk}")
    assert calls.status_code == 200 and calls.context["cl"].result_count == 2


def test_the_test_page_shows_the_chain_and_the_exact_response(admin_client, brand, crm):
    crm.route("/contacts/search", found())
    make_source(brand, crm, name="CRM", auth_type="bearer", api_key="tok-abcdef123456")
    page = admin_client.get(
        "/admin/sources/lookupsource/test-lookup/",
        {"brand": brand.pk, "platform": "omnidesk", "value": "+31 20 123 4567"},
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-source="CRM" data-outcome="hit"' in html
    assert "✔ matched" in html
    assert "&quot;customerID&quot;: &quot;crm-4711&quot;" in html
    assert "tok-abcdef123456" not in html
    assert len(crm.requests) == 1
    assert not brand.customers.exists()  # a test never keeps a customer


def test_config_as_code_exports_sources_with_secret_references_and_imports_them(brand, other_brand, crm):
    make_source(brand, crm, name="CRM", auth_type="bearer", api_key="tok-abcdef123456", keep_as_customer=True)
    brand.lookup_budget_ms = 1500
    brand.save()
    data = config_export(brand=brand)
    assert data["brand_settings"]["lookup_budget_ms"] == 1500
    (item,) = data["lookup_sources"]
    assert item["api_key"] == {"env": "HOOKHUB_ACME_SOURCE_CRM_API_KEY"}
    assert "tok-abcdef123456" not in json.dumps(data)
    assert item["mapping"] == MAPPING and item["keep_as_customer"] is True
    # Into another brand, with the secret from the environment.
    changed = config_import(data=data, brand_slug="globex", environ={"HOOKHUB_ACME_SOURCE_CRM_API_KEY": "tok-from-env"})
    assert changed >= 1
    copy = LookupSource.objects.get(brand=other_brand)
    assert (copy.name, copy.api_key, copy.mapping) == ("CRM", "tok-from-env", MAPPING)
    # Importing the same file again changes nothing.
    assert (
        config_import(data=data, brand_slug="globex", environ={"HOOKHUB_ACME_SOURCE_CRM_API_KEY": "tok-from-env"}) == 0
    )


def test_config_import_refuses_a_bad_source_whole(brand, crm):
    data = config_export(brand=brand)
    data["lookup_sources"] = [
        {"name": "Bad", "url": "gopher://x", "mapping": {"first_name": "$["}, "api_key": "clear-text"},
    ]
    with pytest.raises(ConfigError) as caught:
        config_import(data=data)
    text = " ".join(caught.value.errors)
    assert "lookup_sources[0].url" in text and "lookup_sources[0].mapping" in text
    assert "never the value itself" in text
    assert not LookupSource.objects.exists()


def test_source_calls_are_listed_under_logs_and_the_test_page_under_lookup_sources(admin_client, brand):
    apps = admin_client.get("/admin/").context["app_list"]
    models = {app["app_label"]: [m["object_name"] for m in app["models"]] for app in apps}
    assert "SourceCall" in models["synclog"] and "SourceCall" not in models["sources"]
    assert "TestLookup" in models["sources"]
    assert admin_client.get("/admin/sources/lookupsource/test-lookup/").status_code == 200


def test_old_source_calls_are_purged_with_the_other_logs(brand):
    from datetime import timedelta

    from django.utils import timezone

    from hooks.sources.models import SourceCall
    from synclog.services import logs_purge
    from tests import factories

    source = factories.lookup_source(brand)
    old = factories.source_call(source)
    SourceCall.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(days=120))
    recent = factories.source_call(source)
    assert logs_purge(older_than_days=90)["sources.SourceCall"] == 1
    assert list(SourceCall.objects.values_list("pk", flat=True)) == [recent.pk]
