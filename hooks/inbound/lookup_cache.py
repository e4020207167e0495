"""The lookup answer cache: never stale, cheap to check.

Every key starts with ``(brand_id, brand.generation)``. The generation is
bumped in the same transaction as every change to a brand, its keys, its
customers, their addresses, custom fields and activities (hub.services.brand_touch),
and it comes with the checked key: from the credential cache while the
generation board shows it unchanged, else from the very query that checks the
caller's key (hooks.inbound.common, hub.generations). So a lookup that follows
a committed change always asks for a key no process has stored yet: the cache
can never answer with data older than the last commit, in this process or any
other. Old generations are never read again and age
out of the bounded LRU.

Level 1 is an in-process LRU (``HUB_LOOKUP_CACHE_SIZE`` entries, default
10 000; 0 turns caching off). Level 2 is Django's cache (Redis in production)
when ``HUB_LOOKUP_CACHE_SHARED`` is true, by default only when ``REDIS_URL`` is
set: in the embedded mode Django's cache is local memory, which level 1
already is.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from typing import Any

from django.conf import settings
from django.core.cache import caches

logger = logging.getLogger(__name__)

SHARED_TIMEOUT_SECONDS = 3600
_MISSING = object()


class LookupCache:
    """A bounded, thread-safe LRU with an optional shared second level."""

    def __init__(self, size: int, shared: bool) -> None:
        self.size = size
        self.shared = shared
        self._entries: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> Any:
        if self.size <= 0:
            return None
        with self._lock:
            value = self._entries.get(key, _MISSING)
            if value is not _MISSING:
                self._entries.move_to_end(key)
                self.hits += 1
                return value
        if self.shared:
            value = self._shared_get(key)
            if value is not None:
                self._put_local(key, value)
                self.hits += 1
                return value
        self.misses += 1
        return None

    def set(self, key: tuple, value: Any) -> None:
        if self.size <= 0:
            return
        self._put_local(key, value)
        if self.shared:
            try:
                caches["default"].set(_shared_key(key), value, SHARED_TIMEOUT_SECONDS)
            except Exception:  # noqa: BLE001 - a cache outage slows lookups, never fails them
                logger.warning("Lookup cache: shared cache write failed", exc_info=True)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _put_local(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    @staticmethod
    def _shared_get(key: tuple) -> Any:
        try:
            return caches["default"].get(_shared_key(key))
        except Exception:  # noqa: BLE001
            logger.warning("Lookup cache: shared cache read failed", exc_info=True)
            return None


def _shared_key(key: tuple) -> str:
    # Keys hold phone numbers and e-mail addresses: hash them, keep Redis free of personal data.
    return "hh:lookup:" + hashlib.sha256(repr(key).encode()).hexdigest()


def _build() -> LookupCache:
    size = int(getattr(settings, "HUB_LOOKUP_CACHE_SIZE", 10_000))
    shared = getattr(settings, "HUB_LOOKUP_CACHE_SHARED", None)
    if shared is None:
        shared = bool(getattr(settings, "REDIS_URL", ""))
    return LookupCache(size, bool(shared))


lookup_cache = _build()
