"""The lookup chain: when the hub's store does not know a caller, the brand's
lookup sources are asked, in order (or in parallel with priority), each within
its own timeout and what is left of the brand's ``lookup_budget_ms``; the
answer comes from the first source that matches.

* Every upstream call runs in a worker thread of a bounded pool; the lookup
  waits for it at most until the source's timeout or the budget ends, then
  moves on. A late answer is still stored in the cache for the next lookup.
* One call at a time per (source, value): concurrent lookups of one number in
  this process wait for the same call (a Flight); other processes see the
  cache-level lock (hooks.sources.cache) and wait for the answer it stores.
* A fresh cached answer or miss costs no call; a stale answer is served at
  once and refreshed in the background.
* Worker threads never touch the database: call rows are queued
  (hooks.sources.records.call_record) and written by the request thread or
  the log flusher.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from django.utils import timezone

from hub.redaction import config_secrets, mask, redact_headers, redact_url

from . import cache, http, tags
from .mapping import record_read
from .models import CallOutcome
from .records import call_record

RAW_LIMIT = 16 * 1024
MASK = "********"
_executor = ThreadPoolExecutor(
    max_workers=int(getattr(settings, "HUB_LOOKUP_SOURCE_THREADS", 32)), thread_name_prefix="lookup-source"
)


@dataclass(frozen=True)
class SourceSpec:
    """What a worker thread needs of a LookupSource (plain values, no ORM)."""

    id: int
    brand_id: int
    name: str
    revision: int
    method: str
    url: str
    headers: str
    body: str
    auth_type: str
    auth_username: str
    auth_password: str
    api_key_header: str
    api_key: str
    verify_ssl: bool
    timeout_ms: int
    cache_seconds: int
    stale_seconds: int
    negative_cache_seconds: int
    keep_as_customer: bool
    mapping: Any
    kinds: frozenset[str]

    @classmethod
    def of(cls, source) -> SourceSpec:
        names = [name for name in cls.__dataclass_fields__ if name not in ("kinds",)]
        values = {name: getattr(source, name) for name in names}
        kinds = tags.source_kinds(url=source.url, headers=source.headers, body=source.body)
        return cls(**values, kinds=frozenset(kinds))

    def secrets(self) -> list[str]:
        """As they may appear on the wire (hub.redaction.config_secrets: Basic's base64 included)."""
        return config_secrets(self)


@dataclass
class Fetched:
    """What one source said about one value."""

    outcome: str
    record: dict | None = None
    served: str = "upstream"
    duration_ms: float = 0.0
    status: int | None = None
    raw: str = ""
    error: str = ""
    url: str = ""
    fetched_at: float = 0.0  # with the cache key, names the answer's content (services memo)


class Flight:
    """One upstream call that several lookups may wait for."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.done = threading.Event()
        self.result: Fetched | None = None
        self._listeners: list[threading.Event] = []
        self._lock = threading.Lock()

    @classmethod
    def finished(cls, result: Fetched) -> Flight:
        flight = cls()
        flight.finish(result)
        return flight

    def finish(self, result: Fetched) -> None:
        with self._lock:
            self.result = result
            self.done.set()
            listeners, self._listeners = self._listeners, []
        for event in listeners:
            event.set()

    def notify(self, event: threading.Event) -> None:
        with self._lock:
            if self.done.is_set():
                event.set()
            else:
                self._listeners.append(event)


_flights: dict[str, Flight] = {}
_flights_lock = threading.Lock()


def mask_secrets(text: str, spec: SourceSpec) -> str:
    """The source's own secrets masked in every wire form, then the usual patterns (hub.redaction)."""
    return mask(text, secrets=spec.secrets())


def _log_row(
    spec: SourceSpec,
    key: tags.LookupKey,
    plan: tags.PlannedRequest,
    reply: http.Reply,
    result: Fetched,
    reason: str,
    started_at,
) -> dict[str, Any]:
    body = reply.body[:RAW_LIMIT].decode("utf-8", "replace")
    return {
        "brand_id": spec.brand_id,
        "source_id": spec.id,
        "source_name": spec.name[:150],
        "started_at": started_at,
        "duration_ms": round(reply.duration_ms, 3),
        "reason": reason,
        "key_kind": key.kind,
        "key_value": key.value[:254],
        "method": plan.method,
        "url": redact_url(plan.url, secrets=spec.secrets()),
        "request_headers": redact_headers(plan.headers, secrets=spec.secrets()),
        "request_body": mask_secrets(plan.body, spec)[:RAW_LIMIT],
        "response_status": reply.status,
        "response_body": mask_secrets(body, spec),
        "outcome": result.outcome,
        "error": mask_secrets(result.error, spec),
    }


def ask(spec: SourceSpec, key: tags.LookupKey, *, region: str, reason: str) -> Fetched:
    """One call to the source, read with its mapping; logged (masked). Never raises."""
    started_at = timezone.now()
    plan = tags.plan_request(spec, key, region=region)
    reply = http.call(
        method=plan.method,
        url=plan.url,
        headers=plan.headers,
        body=plan.body,
        timeout_s=spec.timeout_ms / 1000,
        verify=spec.verify_ssl,
    )
    result = Fetched(outcome=CallOutcome.ERROR, duration_ms=reply.duration_ms, status=reply.status)
    result.url = redact_url(plan.url, secrets=spec.secrets())
    result.raw = mask_secrets(reply.body[:RAW_LIMIT].decode("utf-8", "replace"), spec)
    if reply.error:
        result.outcome = CallOutcome.TIMEOUT if reply.timed_out else CallOutcome.ERROR
        result.error = reply.error
    elif reply.status == 404:
        result.outcome = CallOutcome.MISS
    elif reply.status is None or not 200 <= reply.status < 300:
        result.error = f"The source answered HTTP {reply.status}."
    else:
        try:
            answer = orjson.loads(reply.body) if reply.body.strip() else None
        except orjson.JSONDecodeError as exc:
            result.error = f"The answer is not JSON: {exc}"
        else:
            result.record = record_read(answer, spec.mapping) if answer is not None else None
            result.outcome = CallOutcome.HIT if result.record is not None else CallOutcome.MISS
    if result.outcome in (CallOutcome.HIT, CallOutcome.MISS):
        result.fetched_at = cache.store(cache.entry_key(spec, key), spec, result.record)
        if reply.duration_ms > spec.timeout_ms:
            result.error = (
                f"Answered after {reply.duration_ms:.0f} ms (timeout {spec.timeout_ms} ms): too late for the "
                "lookup, kept in the cache for the next one."
            )
            result.outcome = CallOutcome.TIMEOUT
    call_record(_log_row(spec, key, plan, reply, result, reason, started_at))
    if result.outcome == CallOutcome.TIMEOUT and result.record is not None:
        result.outcome = CallOutcome.HIT  # for whoever still waits: the answer is good, only late
    return result


def _fly(flight: Flight, spec: SourceSpec, key: tags.LookupKey, cache_key: str, region: str, reason: str) -> None:
    result: Fetched | None = None
    try:
        if cache.lock(cache_key, spec):
            try:
                result = ask(spec, key, region=region, reason=reason)
            finally:
                cache.unlock(cache_key)
        else:
            result = _await_other_process(cache_key, spec)
    except Exception as exc:  # noqa: BLE001 - a failure is an outcome for the waiting lookups
        result = Fetched(outcome=CallOutcome.ERROR, error=f"{type(exc).__name__}: {exc}")
    finally:
        with _flights_lock:
            if _flights.get(cache_key) is flight:
                del _flights[cache_key]
        flight.finish(result or Fetched(outcome=CallOutcome.ERROR, error="No result."))


def _await_other_process(cache_key: str, spec: SourceSpec) -> Fetched:
    """Another process is asking the source about this value: wait for what it stores."""
    started = time.perf_counter()
    limit = spec.timeout_ms / 1000
    while time.perf_counter() - started < limit:
        entry = cache.read(cache_key)
        if entry is not None:
            return _from_entry(entry, served="another process's call", started=started)
        if not cache.locked(cache_key):
            break
        time.sleep(0.02)
    entry = cache.read(cache_key)
    if entry is not None:
        return _from_entry(entry, served="another process's call", started=started)
    return Fetched(
        outcome=CallOutcome.TIMEOUT,
        served="another process's call",
        duration_ms=(time.perf_counter() - started) * 1000,
        error="Another process asked the source about this value and got no answer in time.",
    )


def _from_entry(entry: tuple[float, Any], *, served: str, started: float | None = None) -> Fetched:
    record = entry[1]
    return Fetched(
        outcome=CallOutcome.HIT if record is not None else CallOutcome.MISS,
        record=record,
        fetched_at=entry[0],
        served=served,
        duration_ms=0.0 if started is None else (time.perf_counter() - started) * 1000,
    )


def begin(
    spec: SourceSpec, key: tags.LookupKey, *, region: str, reason: str, use_cache: bool = True
) -> tuple[Flight, bool]:
    """The source's answer about ``key``, now or later: (flight, joined another lookup's call)."""
    cache_key = cache.entry_key(spec, key)
    if use_cache:
        entry = cache.read(cache_key)
        if entry is not None:
            if cache.freshness(entry, spec) == "fresh":
                return Flight.finished(_from_entry(entry, served="cache")), False
            _refresh(spec, key, cache_key, region)
            return Flight.finished(_from_entry(entry, served="stale cache (refreshing)")), False
    with _flights_lock:
        flight = _flights.get(cache_key)
        if flight is not None:
            return flight, True
        flight = _flights[cache_key] = Flight()
    _executor.submit(_fly, flight, spec, key, cache_key, region, reason)
    return flight, False


def _refresh(spec: SourceSpec, key: tags.LookupKey, cache_key: str, region: str) -> None:
    """Renew a stale answer in the background (once, whoever else asks meanwhile)."""
    with _flights_lock:
        if cache_key in _flights:
            return
        flight = _flights[cache_key] = Flight()
    _executor.submit(_fly, flight, spec, key, cache_key, region, "refresh")


# ---------------------------------------------------------------- the chain


@dataclass
class Attempt:
    """One source in the chain, for the answer log and the "Test a lookup" page."""

    spec: SourceSpec
    key: tags.LookupKey
    fetched: Fetched | None = None
    skipped: str = ""
    matched: bool = False

    @property
    def outcome(self) -> str:
        return self.fetched.outcome if self.fetched else "skipped"


@dataclass
class ChainResult:
    attempts: list[Attempt] = field(default_factory=list)
    match: Attempt | None = None
    elapsed_ms: float = 0.0

    @property
    def note(self) -> str:
        if self.match is None:
            return ""
        fetched = self.match.fetched
        assert fetched is not None
        return f"from lookup source {self.match.spec.name!r} ({fetched.served})"[:300]


def _result_of(flight: Flight, joined: bool) -> Fetched:
    assert flight.result is not None
    if not joined:
        return flight.result
    return Fetched(**{**flight.result.__dict__, "served": "same call as a concurrent lookup"})


def _cut(spec: SourceSpec, waited_s: float, by_budget: bool) -> Fetched:
    reason = "the lookup budget ran out" if by_budget else f"its timeout ({spec.timeout_ms} ms)"
    return Fetched(
        outcome=CallOutcome.TIMEOUT,
        duration_ms=waited_s * 1000,
        error=f"No answer within {waited_s * 1000:.0f} ms: {reason}. A later answer is kept in the cache.",
    )


def _sequential(specs, key, *, region, reason, use_cache, deadline, attempts) -> Attempt | None:
    for spec in specs:
        attempt = Attempt(spec=spec, key=key)
        attempts.append(attempt)
        remaining = deadline - time.perf_counter()
        if remaining <= 0.005:
            attempt.skipped = "not asked: the lookup budget was spent"
            continue
        flight, joined = begin(spec, key, region=region, reason=reason, use_cache=use_cache)
        limit = spec.timeout_ms / 1000
        if joined:  # the call began with an earlier lookup: its timeout runs from then
            limit -= time.perf_counter() - flight.started
        wait = max(0.0, min(limit, remaining))
        if flight.done.wait(wait):
            attempt.fetched = _result_of(flight, joined)
        else:
            attempt.fetched = _cut(spec, wait, by_budget=remaining < limit)
        if attempt.fetched.outcome == CallOutcome.HIT:
            attempt.matched = True
            return attempt
    return None


def _parallel(specs, key, *, region, reason, use_cache, deadline, window_s, attempts) -> Attempt | None:
    """Superfecta's "multifecta": all sources at once; the first in order that matches
    wins, but a later one that matches first wins once the window has passed."""
    started = time.perf_counter()
    wake = threading.Event()
    running = []
    for spec in specs:
        flight, joined = begin(spec, key, region=region, reason=reason, use_cache=use_cache)
        flight.notify(wake)
        running.append((spec, flight, joined, min(started + spec.timeout_ms / 1000, deadline)))
    winner = None
    later_hit_at = None
    while True:
        wake.clear()  # before the scan: a call finishing from here on wakes the wait below
        now = time.perf_counter()
        pending = None
        later_hit = None
        for index, (_spec, flight, _joined, ends) in enumerate(running):
            if flight.done.is_set():
                assert flight.result is not None
                if flight.result.outcome == CallOutcome.HIT:
                    if pending is None:
                        winner = index
                        break
                    if later_hit is None:
                        later_hit = index
            elif now < ends and pending is None:
                pending = index
        if winner is not None or pending is None:
            if winner is None:
                winner = later_hit
            break
        waits = [running[pending][3] - now]
        if later_hit is not None:
            later_hit_at = later_hit_at or now
            if now - later_hit_at >= window_s:
                winner = later_hit
                break
            waits.append(later_hit_at + window_s - now)
        wake.wait(max(0.0, min(waits)))
    chosen = None
    for index, (spec, flight, joined, ends) in enumerate(running):
        attempt = Attempt(spec=spec, key=key)
        attempts.append(attempt)
        if flight.done.is_set():
            attempt.fetched = _result_of(flight, joined)
        elif winner is not None and index > winner:
            attempt.skipped = "not waited for: a source earlier in order matched"
        else:
            waited = min(time.perf_counter(), ends) - started
            attempt.fetched = _cut(spec, waited, by_budget=ends >= deadline)
        if index == winner:
            attempt.matched = True
            chosen = attempt
    return chosen


def run(
    *,
    brand,
    specs: list[SourceSpec],
    keys: list[tags.LookupKey],
    started: float | None = None,
    reason: str = "lookup",
    use_cache: bool = True,
) -> ChainResult:
    """Ask the sources about each key in turn until one matches, within the brand's budget."""
    began = time.perf_counter()
    deadline = (started if started is not None else began) + brand.lookup_budget_ms / 1000
    result = ChainResult()
    for key in keys:
        eligible = [spec for spec in specs if key.kind in spec.kinds]
        if not eligible:
            continue
        common = {
            "region": brand.default_region,
            "reason": reason,
            "use_cache": use_cache,
            "deadline": deadline,
            "attempts": result.attempts,
        }
        if brand.lookup_parallel and len(eligible) > 1:
            result.match = _parallel(eligible, key, window_s=brand.lookup_priority_window_ms / 1000, **common)
        else:
            result.match = _sequential(eligible, key, **common)
        if result.match is not None:
            break
    result.elapsed_ms = (time.perf_counter() - began) * 1000
    return result
