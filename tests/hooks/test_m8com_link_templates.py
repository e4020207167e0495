"""M8Com link templates (moreInfoUrl, createActivityUrls) tried as a hostile
brand admin and a hostile customer record would: refused on save, and when
stored anyway (a direct database write) left out of the answer, never a 500,
never a slow lookup."""

from __future__ import annotations

import gc
import json
import logging
import time
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ValidationError

from customers.services import customer_update
from hooks.outbound.configio import ConfigError, config_import
from hub.models import Brand
from tests import factories
from tests.hooks.test_m8com_lookup import _fresh_cache, lookup, maria, secret  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

GOOD = {"name": "New note", "url": "https://crm.example.com/customers/{{ customer.customer_id }}/notes/new"}
THREE_LOOPS = (
    "https://crm.example.com/{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}"
    "{% endfor %}{% endfor %}{% endfor %}"
)
TWO_LOOPS = (
    "https://crm.example.com/{% for i in range(1000) %}{% for j in range(1000) %}{{ i }}{% endfor %}{% endfor %}"
)


def store_anyway(brand, **fields):
    """What a direct database write (or a template saved before validation existed) leaves behind."""
    Brand.objects.filter(pk=brand.pk).update(**fields)


def contact(response):
    assert response.status_code == 200, response.content[:300]
    return json.loads(response.content)


def test_a_failing_link_is_refused_on_save(brand):
    brand.create_activity_urls = [GOOD, {"name": "Broken", "url": "https://crm.example.com/{{ 1/0 }}"}]
    brand.more_info_url_template = "https://crm.example.com/{{ customer.nope.deeper }}"
    with pytest.raises(ValidationError) as caught:
        brand.full_clean()
    errors = caught.value.message_dict
    assert errors["create_activity_urls"] == [
        "Link 2 (Broken): Template error in the link: ZeroDivisionError: division by zero (checked with sample values)"
    ]
    assert "has no attribute 'nope'" in errors["more_info_url_template"][0]


@pytest.mark.parametrize(
    ("links", "message"),
    [
        # Cut by the iteration count, or by the time budget first on a busy machine.
        ([{"name": "Loop", "url": TWO_LOOPS}], "The link template was stopped"),
        ([{"name": "Loop", "url": THREE_LOOPS}], "The link template was stopped"),
        ([{"name": "Big", "url": 'https://x.example/{{ ("x" * 10**8)|length }}'}], "larger than"),
        ([{"name": "Pad", "url": 'https://x.example/{{ "x"|center(10**9) }}'}], "larger than"),
        ([{"name": "Evil", "url": "javascript:alert(document.cookie)"}], "must start with http://"),
        ([{"name": "Secret", "url": "https://x.example/{{ secrets.api_key|reverse }}"}], "a secret may only"),
        ([{"url": "https://x.example/"}], 'write {"name": ..., "url": ...}'),
        ([GOOD] * 21, "At most 20 links."),
        ({"name": "x"}, 'A list of {"name": ..., "url": ...}.'),
    ],
)
def test_stalling_or_bad_links_are_refused_on_save_promptly(brand, links, message):
    brand.create_activity_urls = links
    started = time.perf_counter()
    with pytest.raises(ValidationError) as caught:
        brand.full_clean()
    assert time.perf_counter() - started < 1.0
    assert message in " ".join(caught.value.message_dict["create_activity_urls"])


def test_a_link_failing_at_lookup_is_left_out_and_logged(client, secret, brand, maria, caplog):  # noqa: F811
    store_anyway(
        brand,
        create_activity_urls=[GOOD, {"name": "Broken", "url": "https://crm.example.com/{{ 1/0 }}"}],
        more_info_url_template="https://crm.example.com/{{ 1/0 }}",
    )
    customer_update(customer=maria, more_info_url="")
    with caplog.at_level(logging.WARNING, logger="hooks.inbound.m8com"):
        body = contact(lookup(client, secret, fromNumber="+46701234567"))
    assert body["createActivityUrls"] == [
        {"name": "New note", "url": "https://crm.example.com/customers/C-42/notes/new"}
    ]
    assert "moreInfoUrl" not in body
    messages = [record.getMessage() for record in caplog.records]
    assert "M8Com lookup: brand acme: link 'Broken' left out: Template error in the link: ZeroDivisionError: " in (
        " ".join(messages)
    )
    assert any("link 'moreInfoUrl' left out" in message for message in messages)


def test_stalling_links_cannot_slow_the_lookup(client, secret, brand, maria):  # noqa: F811
    """Two nested loops made one lookup take 4 s (M8Com gives up at 3 s); three never finished.
    The links of one answer share one small time budget, however many there are."""
    exponential = (
        "https://x.example/{% macro f(n) %}{% if n < 19 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}"
        "{{ f(0) }}"
    )
    stalling = [
        {"name": f"Slow {n}", "url": url} for n, url in enumerate([TWO_LOOPS, THREE_LOOPS] + [exponential] * 18)
    ]
    store_anyway(brand, create_activity_urls=[*stalling, GOOD])
    lookup(client, secret, fromNumber="+31600000000")  # warm up the view (a miss renders no link)
    gc.collect()
    gc.disable()  # a full collection of the test process is not the lookup's work
    try:
        cpu, wall = time.thread_time(), time.perf_counter()
        body = contact(lookup(client, secret, fromNumber="+46701234567"))
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        # Cached: the next lookups of the number never render (nor compile) again.
        again = time.thread_time()
        contact(lookup(client, secret, fromNumber="+46701234567"))
        again = time.thread_time() - again
    finally:
        gc.enable()
    assert body["createActivityUrls"] == [
        {"name": "New note", "url": "https://crm.example.com/customers/C-42/notes/new"}
    ]
    assert cpu < 0.25, f"{cpu * 1000:.0f} ms of CPU"  # compiling the 3 distinct templates included
    assert wall < 2.0
    assert again < 0.05


def test_a_customer_id_cannot_change_the_link_path(client, secret, brand):  # noqa: F811
    attack = "1/../../logout?next=//evil.example#"
    factories.customer(
        brand, customer_id=attack, addresses=[{"type": "telephone", "address": "+46709999999", "comment": ""}]
    )
    brand.create_activity_urls = [{"name": "Note", "url": "https://crm.example.com/c/{{ customer.customer_id }}/notes"}]
    brand.more_info_url_template = "https://crm.example.com/c/{{ customer.customer_id }}?tab=info"
    brand.full_clean()
    brand.save()
    body = contact(lookup(client, secret, fromNumber="+46709999999"))
    note, more = urlsplit(body["createActivityUrls"][0]["url"]), urlsplit(body["moreInfoUrl"])
    encoded = "1%2F..%2F..%2Flogout%3Fnext%3D%2F%2Fevil.example%23"
    assert (note.netloc, note.path, note.query, note.fragment) == ("crm.example.com", f"/c/{encoded}/notes", "", "")
    assert (more.netloc, more.path, more.query, more.fragment) == ("crm.example.com", f"/c/{encoded}", "tab=info", "")


def test_the_brand_admin_returns_promptly_with_a_form_error_for_a_looping_link(client, brand):
    root = factories.UserFactory(username="root", is_superuser=True, is_staff=True)
    root.set_password("pw")
    root.save()
    client.force_login(root)
    form = {
        "name": "Acme",
        "slug": "acme",
        "is_active": "on",
        "default_region": "NL",
        "time_zone": "Europe/Amsterdam",
        "more_info_url_template": THREE_LOOPS,
        "create_activity_urls": json.dumps([{"name": "Loop", "url": TWO_LOOPS}]),
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    started = time.perf_counter()
    response = client.post(f"/admin/hub/brand/{brand.pk}/change/", form)
    assert time.perf_counter() - started < 2.0
    assert response.status_code == 200  # the form again, with the errors
    html = response.content.decode()
    assert html.count("The link template was stopped") == 2
    brand.refresh_from_db()
    assert brand.more_info_url_template == "" and brand.create_activity_urls == []


def test_config_import_refuses_a_stalling_link(brand):
    data = {
        "format": "hookhub-config",
        "version": 1,
        "brand": "acme",
        "brand_settings": {"create_activity_urls": [{"name": "Loop", "url": THREE_LOOPS}]},
    }
    with pytest.raises(ConfigError) as caught:
        config_import(data=data)
    assert any(
        error.startswith("brand_settings.create_activity_urls: Link 1 (Loop): The link template was stopped")
        for error in caught.value.errors
    ), caught.value.errors
    brand.refresh_from_db()
    assert brand.create_activity_urls == []
