"""Caching of source answers: hits, misses, stale-while-revalidate, one upstream
call per value (threads in one process, and a second process through the
shared cache's lock on Redis), and a configuration change dropping the cache."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.cache import caches
from django.test import override_settings

from hooks.sources import cache, chain, selectors
from hooks.sources.models import SourceCall
from hooks.sources.records import calls_flush
from hooks.sources.tags import LookupKey

from .conftest import CONTACT, found, make_source, wait_for
from .test_chain import m8com, omnidesk

PHONE = "+31201234567"
KEY = LookupKey("phone", PHONE)


def test_a_found_contact_is_served_from_the_cache_without_a_second_call(client, brand, crm, omnidesk_key):
    crm.route("/contacts/search", found())
    make_source(brand, crm, name="CRM", cache_seconds=300)
    first = omnidesk(client, omnidesk_key).json()
    second = omnidesk(client, omnidesk_key).json()
    assert first == second and first[0]["customerID"] == "crm-4711"
    assert len(crm.requests) == 1


def test_a_miss_is_remembered_for_the_negative_cache_time(client, brand, crm, m8com_key):
    crm.route("/contacts/search", {"results": []})
    make_source(brand, crm, name="CRM", negative_cache_seconds=60)
    assert m8com(client, m8com_key).status_code == 404
    crm.route("/contacts/search", found())  # the CRM learns the number; the miss is still remembered
    assert m8com(client, m8com_key).status_code == 404
    assert len(crm.requests) == 1


def test_without_a_negative_cache_every_miss_asks_again(client, brand, crm, m8com_key):
    crm.route("/contacts/search", {"results": []})
    make_source(brand, crm, name="CRM", negative_cache_seconds=0)
    assert m8com(client, m8com_key).status_code == 404
    crm.route("/contacts/search", found())
    assert m8com(client, m8com_key).status_code == 200
    assert len(crm.requests) == 2


def test_errors_and_timeouts_are_never_cached(client, brand, crm, m8com_key):
    crm.route("/contacts/search", {"error": "down"}, status=500)
    make_source(brand, crm, name="CRM")
    assert m8com(client, m8com_key).status_code == 404
    crm.route("/contacts/search", found())
    assert m8com(client, m8com_key).status_code == 200
    assert len(crm.requests) == 2


def test_a_stale_answer_is_served_at_once_and_refreshed_in_the_background(client, brand, crm, m8com_key):
    crm.route("/contacts/search", found(), delay=0.3)
    make_source(brand, crm, name="CRM", cache_seconds=1, stale_seconds=60)
    assert m8com(client, m8com_key).json()["displayName"] == "Ada Lovelace"
    time.sleep(1.05)  # past cache_seconds: stale now
    renamed = {**CONTACT, "properties": {**CONTACT["properties"], "firstname": "Augusta"}}
    crm.route("/contacts/search", found(renamed), delay=0.3)
    started = time.perf_counter()
    stale = m8com(client, m8com_key)
    assert time.perf_counter() - started < 0.25  # not waiting for the 300 ms source
    assert stale.json()["displayName"] == "Ada Lovelace"
    assert wait_for(lambda: len(crm.requests) == 2 and not chain._flights)
    assert m8com(client, m8com_key).json()["displayName"] == "Augusta Lovelace"
    assert len(crm.requests) == 2
    calls_flush()
    assert list(SourceCall.objects.order_by("started_at").values_list("reason", flat=True)) == ["lookup", "refresh"]


def test_concurrent_lookups_of_one_number_make_one_upstream_call(brand, crm):
    crm.route("/contacts/search", found(), delay=0.3)
    make_source(brand, crm, name="CRM")
    brand.refresh_from_db()
    specs = selectors.sources_for_brand(brand=brand)
    results = []
    barrier = threading.Barrier(8)

    def lookup():
        barrier.wait(timeout=5)
        results.append(chain.run(brand=brand, specs=specs, keys=[KEY]))

    threads = [threading.Thread(target=lookup) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 8
    assert all(r.match is not None and r.match.fetched.record["customer_id"] == "crm-4711" for r in results)
    assert len(crm.requests) == 1
    served = sorted(r.match.fetched.served for r in results)
    assert served.count("upstream") == 1 and served.count("same call as a concurrent lookup") == 7


REDIS = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:6379/7"}}


@pytest.fixture
def redis_cache():
    with override_settings(CACHES=REDIS):
        try:
            caches["default"].clear()
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"Redis at 127.0.0.1:6379/7 is needed for this test: {exc}")
        yield caches["default"]
        caches["default"].clear()


def test_another_process_asking_the_same_value_is_waited_for_not_repeated(brand, crm, redis_cache):
    """A second process holds the shared lock for this value (its call is in flight):
    this process waits for the answer it stores in Redis instead of calling too."""
    crm.route("/contacts/search", found())
    make_source(brand, crm, name="CRM")
    brand.refresh_from_db()
    specs = selectors.sources_for_brand(brand=brand)
    cache_key = cache.entry_key(specs[0], KEY)
    assert cache.lock(cache_key, specs[0])  # the other process takes the lock ...

    def other_process_answers():
        time.sleep(0.2)
        cache.store(cache_key, specs[0], {**_record(), "customer_id": "from-the-other-process"})
        cache.unlock(cache_key)

    threading.Thread(target=other_process_answers).start()
    result = chain.run(brand=brand, specs=specs, keys=[KEY])
    assert result.match is not None
    assert result.match.fetched.record["customer_id"] == "from-the-other-process"
    assert result.match.fetched.served == "another process's call"
    assert crm.requests == []
    # The answer is in Redis for everyone now: the next lookup is a cache hit.
    assert chain.run(brand=brand, specs=specs, keys=[KEY]).match.fetched.served == "cache"


def _record() -> dict:
    from hooks.sources.mapping import record_read

    from .conftest import MAPPING

    return record_read(found(), MAPPING)


def test_a_configuration_change_drops_the_cached_answers(client, brand, crm, omnidesk_key):
    crm.route("/contacts/search", found())
    source = make_source(brand, crm, name="CRM", cache_seconds=3600)
    assert omnidesk(client, omnidesk_key).json()[0]["customerFirstname"] == "Ada"
    assert omnidesk(client, omnidesk_key).json()[0]["customerFirstname"] == "Ada"
    assert len(crm.requests) == 1
    source.mapping = {**source.mapping, "first_name": "$.properties.jobtitle"}
    source.full_clean()
    source.save()
    assert omnidesk(client, omnidesk_key).json()[0]["customerFirstname"] == "Engineer"
    assert len(crm.requests) == 2


def test_a_late_answer_fills_the_cache_for_the_next_lookup(client, brand, crm, m8com_key):
    crm.route("/contacts/search", found(), delay=0.5)
    make_source(brand, crm, name="CRM", timeout_ms=1000)
    brand.lookup_budget_ms = 200
    brand.save()
    assert m8com(client, m8com_key).status_code == 404  # cut by the budget
    assert wait_for(lambda: not chain._flights)
    assert m8com(client, m8com_key).status_code == 200  # the late answer was kept
    assert len(crm.requests) == 1
