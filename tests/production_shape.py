"""The production shape of the test run (README: ``HUB_TEST_SHAPE=production``).

``make test`` with ``HUB_TEST_SHAPE=production`` runs the engine, worker, cache
and fault tests on PostgreSQL with Redis (``REDIS_URL``) as django-q2's broker
and Django's cache. This plugin refuses to start that run in any other shape
(so it can never pass on SQLite or the ORM broker by accident), and empties
the Redis database before each test: Redis is not rolled back with the test
database, and a task or cache entry left by one test must not reach the next.
"""

from __future__ import annotations

import os

import pytest


def production_shape() -> bool:
    return os.environ.get("HUB_TEST_SHAPE", "").strip().lower() == "production"


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "").strip()


def pytest_configure(config: pytest.Config) -> None:
    if not production_shape():
        return
    problems = []
    if not redis_url():
        problems.append("REDIS_URL is not set")
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        problems.append("DATABASE_URL is not a PostgreSQL URL")
    if problems:
        raise pytest.UsageError(f"HUB_TEST_SHAPE=production needs PostgreSQL and Redis: {'; '.join(problems)}.")


@pytest.fixture(autouse=True)
def _empty_redis_between_tests():
    """With REDIS_URL, each test starts on an empty Redis database (queued tasks, cache entries)."""
    if redis_url():
        import redis

        client = redis.Redis.from_url(redis_url())
        client.flushdb()
        client.close()
    yield
