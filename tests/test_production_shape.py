"""The test run really uses the shape it claims: with REDIS_URL, Redis is
django-q2's broker and Django's cache (shared by every process); without it,
the ORM broker and a per-process memory cache. The first test runs in every
shape; the Redis ones run in the production shape (HUB_TEST_SHAPE=production,
where tests/production_shape.py refuses to start without Redis and PostgreSQL).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django_q.brokers import get_broker
from django_q.tasks import async_task

from hooks.inbound.lookup_cache import lookup_cache
from tests.factories import credential, customer

REDIS_URL = os.environ.get("REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="production shape only (REDIS_URL, HUB_TEST_SHAPE=production)")


@pytest.mark.production
@pytest.mark.django_db
def test_broker_and_cache_follow_redis_url():
    broker = get_broker()
    backend = caches["default"]
    if REDIS_URL:
        assert type(broker).__module__ == "django_q.brokers.redis_broker"
        assert settings.Q_CLUSTER["redis"] == REDIS_URL and "orm" not in settings.Q_CLUSTER
        assert isinstance(backend, RedisCache)  # django-prometheus's subclass, for the django_cache_* families
        assert lookup_cache.shared is True
    else:
        assert type(broker).__module__ == "django_q.brokers.orm"
        assert type(backend).__name__ == "LocMemCache"
        assert lookup_cache.shared is False


@pytest.mark.production
@needs_redis
def test_the_engine_enqueues_its_tasks_in_redis():
    """A task asked for by the hub is a list entry in the Redis database of REDIS_URL, nowhere else."""
    client = redis.Redis.from_url(REDIS_URL)
    queue = get_broker().list_key
    assert client.llen(queue) == 0
    async_task("math.floor", 1.5, task_name="shape probe")
    assert client.llen(queue) == 1
    cache_probe = "shape-probe"
    caches["default"].set(cache_probe, "seen", 30)
    assert any(cache_probe in key.decode() for key in client.keys("*"))


def _lookup_in_another_process(url: str, key: str) -> dict:
    """One Omnidesk lookup by a fresh interpreter (another web process): its answer and cache figures."""
    code = (
        "import json, django; django.setup()\n"
        "from django.db import connection\n"
        "from django.test import Client\n"
        "from django.test.utils import CaptureQueriesContext\n"
        "from hooks.inbound.lookup_cache import lookup_cache\n"
        "with CaptureQueriesContext(connection) as queries:\n"
        f"    response = Client().get({url!r}, {{'key': {key!r}, 'primaryID': 'SHARED-1'}})\n"
        "print(json.dumps({'status': response.status_code, 'body': json.loads(response.content), "
        "'hits': lookup_cache.hits, 'misses': lookup_cache.misses, 'queries': len(queries)}))\n"
    )
    s = connection.settings_dict
    database_url = f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "DATABASE_URL": database_url}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.production
@pytest.mark.cache
@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_lookup_cached_by_one_web_process_is_served_to_another_from_redis(brand):
    key = credential(brand, "omnidesk")
    customer(brand, customer_id="SHARED-1", first_name="Ann", addresses=[{"type": "email", "address": "a@x.org"}])
    url = "/hooks/omnidesk/acme/customerlookup"

    first = _lookup_in_another_process(url, key)
    second = _lookup_in_another_process(url, key)

    assert first["status"] == second["status"] == 200
    assert first["body"] == second["body"] and first["body"][0]["customerID"] == "SHARED-1"
    # The first process found nothing cached; the second, with an empty memory cache of its
    # own, was answered from Redis: no lookup query, only the key check and the log row.
    assert (first["hits"], first["misses"]) == (0, 1)
    assert (second["hits"], second["misses"]) == (1, 0)
    assert second["queries"] < first["queries"]
