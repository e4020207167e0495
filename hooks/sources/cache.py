"""Answers and misses of lookup sources in Django's cache (Redis in production,
local memory or the database in the embedded mode), per (brand, source, key).

An entry is ``(fetched_at, record or None)``. A record is fresh for the source's
``cache_seconds`` and then served stale for ``stale_seconds`` more while it is
refreshed; a miss (None) lives ``negative_cache_seconds``. Keys carry the
source's ``revision``, so a changed configuration never meets its old answers.
Keys are hashed: no phone number or e-mail address is written into Redis key
names. A ``:lock`` key, taken with ``add``, lets one process at a time ask the
source about one value.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

from django.core.cache import caches

logger = logging.getLogger(__name__)


def _cache():
    return caches["default"]


def entry_key(spec, key) -> str:
    raw = f"{spec.brand_id}|{spec.id}|{spec.revision}|{key.kind}|{key.value}"
    return "hh:src:" + hashlib.sha256(raw.encode()).hexdigest()


def read(cache_key: str) -> tuple[float, Any] | None:
    try:
        return _cache().get(cache_key)
    except Exception:  # noqa: BLE001 - a cache outage means asking the source, never a failed lookup
        logger.warning("Lookup sources: cache read failed", exc_info=True)
        return None


def store(cache_key: str, spec, record: dict | None) -> float:
    """Keep the answer (or miss) for its time; returns the time it is stamped with."""
    fetched_at = time.time()
    seconds = spec.cache_seconds + spec.stale_seconds if record is not None else spec.negative_cache_seconds
    if (record is not None and spec.cache_seconds <= 0) or seconds <= 0:
        return fetched_at
    try:
        _cache().set(cache_key, (fetched_at, record), seconds)
    except Exception:  # noqa: BLE001
        logger.warning("Lookup sources: cache write failed", exc_info=True)
    return fetched_at


def freshness(entry: tuple[float, Any], spec, now: float | None = None) -> str:
    """ "fresh" or "stale" (the cache drops entries past their time itself)."""
    fetched_at, record = entry
    if record is None:
        return "fresh"
    age = (time.time() if now is None else now) - fetched_at
    return "fresh" if age < spec.cache_seconds else "stale"


def lock(cache_key: str, spec) -> bool:
    """Take the right to ask the source about this value (any process); False when taken."""
    try:
        return bool(_cache().add(cache_key + ":lock", 1, math.ceil(spec.timeout_ms / 1000) + 2))
    except Exception:  # noqa: BLE001 - without the shared lock, each process still asks once
        logger.warning("Lookup sources: cache lock failed", exc_info=True)
        return True


def unlock(cache_key: str) -> None:
    try:
        _cache().delete(cache_key + ":lock")
    except Exception:  # noqa: BLE001
        logger.warning("Lookup sources: cache unlock failed", exc_info=True)


def locked(cache_key: str) -> bool:
    try:
        return _cache().get(cache_key + ":lock") is not None
    except Exception:  # noqa: BLE001
        return False
