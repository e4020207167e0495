"""Hookhub's Prometheus metrics: every ``hookhub_*`` family, the ``/metrics``
view and who may read it, and the multiprocess setup (docs/metrics.md).

Every family is defined here and nowhere else; the apps only call the small
recording functions below (one call where the thing happens). Labels are low
cardinality by construction: brand slugs, destination kinds, declared endpoint
names, states and outcomes. Never ids, URLs, keys or message ids.

Multiprocess mode: with PROMETHEUS_MULTIPROC_DIR set (before the process
starts: prometheus_client picks its value store at import), every gunicorn and
qcluster process writes its samples to files there and a scrape sums them
(prometheus_client.multiprocess). Unset, the process's own registry is
exported (embedded mode, tests).

The outbox families are not counters: they are read from the database at
scrape time (:class:`OutboxCollector`, one cheap indexed query each), through
functions the outbound app registers (hub uses no app).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

from .net import client_ip

logger = logging.getLogger(__name__)

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if MULTIPROC_DIR:
    # Created where the process starts; emptied only by whoever starts the
    # host's processes (a live process's files must never be deleted under it).
    os.makedirs(MULTIPROC_DIR, exist_ok=True)

# ---------------------------------------------------------------- the families

DELIVERY_ATTEMPTS = Counter(
    "hookhub_delivery_attempts_total",
    "Outbound delivery attempts by outcome: success (delivered), retry (failed, another attempt scheduled), "
    "failed (failed, given up).",
    ["brand", "destination_kind", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "hookhub_delivery_latency_seconds",
    "From the change's commit (the delivery's creation) to its successful attempt's answer.",
    ["destination_kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400),
)
INBOUND_REQUESTS = Counter(
    "hookhub_inbound_requests_total",
    "Platform calls (lookups, call logs, service hooks) by endpoint and HTTP status.",
    ["endpoint", "status"],
)
INBOUND_DURATION = Histogram(
    "hookhub_inbound_request_duration_seconds",
    "Time to answer a platform call, by endpoint (from the view's start to its answer).",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5),
)
INBOUND_EVENTS = Counter(
    "hookhub_inbound_events_total",
    "Inbound events accepted, by source and the state they were stored in (duplicate: a retry of a stored event).",
    ["source", "state"],
)
WORKER_HEARTBEAT = Gauge(
    "hookhub_worker_heartbeat_timestamp_seconds",
    "Unix time of the last sweep of each qcluster (its sweeper thread beats every HUB_SWEEP_INTERVAL_SECONDS).",
    ["cluster"],
    multiprocess_mode="livemax",
)

OUTCOMES = {"delivered": "success", "pending": "retry", "failed": "failed"}
OTHER_ENDPOINT = "other"
_endpoints: set[str] = set()
_brand_slugs: dict[int, str] = {}

# ---------------------------------------------------------------- recording (one call at each place)


def endpoints_declare(*names: str) -> None:
    """Platform endpoints that get their own label value; any other name
    (e.g. a misspelt service-hook type in a URL) is counted as "other"."""
    _endpoints.update(names)


def inbound_call_observe(*, endpoint: str, status: int, seconds: float) -> None:
    """hooks.inbound.common.InboundCall.finish: one platform call answered."""
    label = endpoint if endpoint in _endpoints else OTHER_ENDPOINT
    INBOUND_REQUESTS.labels(label, str(status)).inc()
    INBOUND_DURATION.labels(label).observe(seconds)


def inbound_event_observe(*, source: str, state: str, duplicate: bool) -> None:
    """The accept path stored (or recognised) an inbound event."""
    INBOUND_EVENTS.labels(source, "duplicate" if duplicate else state).inc()


def deliveries_recorded(*, deliveries: Iterable[Any], moment: datetime) -> None:
    """The engine recorded these deliveries' attempts (their new state is set):
    count each by outcome, and time the successful ones from their commit."""
    deliveries = [d for d in deliveries if d.state in OUTCOMES]
    if not deliveries:
        return
    slugs = _brand_slugs_for({d.brand_id for d in deliveries})
    for delivery in deliveries:
        outcome = OUTCOMES[delivery.state]
        kind = delivery.source_kind
        DELIVERY_ATTEMPTS.labels(slugs.get(delivery.brand_id, ""), kind, outcome).inc()
        if outcome == "success":
            DELIVERY_LATENCY.labels(kind).observe(max((moment - delivery.created_at).total_seconds(), 0.0))


def _brand_slugs_for(ids: set[int]) -> dict[int, str]:
    """Brand slugs, read once per process (a renamed brand keeps its old label until a restart)."""
    missing = [pk for pk in ids if pk not in _brand_slugs]
    if missing:
        from .models import Brand

        if len(_brand_slugs) > 10_000:
            _brand_slugs.clear()
        _brand_slugs.update(Brand.objects.filter(pk__in=missing).values_list("pk", "slug"))
    return _brand_slugs


def cluster_label() -> str:
    name = os.environ.get("Q_CLUSTER_NAME") or settings.Q_CLUSTER.get("name", "")
    return f"{socket.gethostname()}/{name}"


def worker_heartbeat() -> None:
    """The sweeper thread of a qcluster process is alive (one beat per sweep)."""
    WORKER_HEARTBEAT.labels(cluster_label()).set(time.time())


def worker_heartbeat_end() -> None:
    """The sweeper stopped: this cluster's heartbeat series goes away (in
    multiprocess mode with the process's live files)."""
    if MULTIPROC_DIR:
        multiprocess.mark_process_dead(os.getpid(), MULTIPROC_DIR)
    else:
        try:
            WORKER_HEARTBEAT.remove(cluster_label())
        except KeyError:
            pass


# ---------------------------------------------------------------- scrape-time collectors


class OutboxCollector:
    """Outbox depth and lag, read from the database at scrape time.

    ``depth`` returns the number of open deliveries by state; ``oldest_due_age``
    the seconds the oldest due, unsent delivery has waited since it became due
    (0 when none is). Registered by the outbound app (:func:`outbox_register`).
    """

    def __init__(self, *, depth: Callable[[], dict[str, int]], oldest_due_age: Callable[[], float]):
        self.depth = depth
        self.oldest_due_age = oldest_due_age

    def collect(self) -> Iterator[Metric]:
        try:
            depth, age = self.depth(), self.oldest_due_age()
        except Exception:  # noqa: BLE001 - a database outage leaves the families out, never the scrape
            logger.exception("Could not read the outbox for /metrics")
            return
        family = GaugeMetricFamily(
            "hookhub_outbox_deliveries", "Deliveries not finished yet, by state (the outbox depth).", labels=["state"]
        )
        for state, count in sorted(depth.items()):
            family.add_metric([state], count)
        yield family
        yield GaugeMetricFamily(
            "hookhub_outbox_oldest_due_age_seconds",
            "How long the oldest due, unsent delivery has been waiting (0 when none is due): the outbox lag.",
            value=age,
        )


_scrape_collectors: list[Any] = []


def outbox_register(*, depth: Callable[[], dict[str, int]], oldest_due_age: Callable[[], float]) -> None:
    """The outbound app's queries for the outbox families (called from its AppConfig.ready)."""
    _scrape_collectors[:] = [c for c in _scrape_collectors if not isinstance(c, OutboxCollector)]
    _scrape_collectors.append(OutboxCollector(depth=depth, oldest_due_age=oldest_due_age))


class _Scrape:
    """What one scrape exports: every process's samples (multiprocess mode) or
    this process's registry, plus the scrape-time collectors."""

    def collect(self) -> Iterator[Metric]:
        if MULTIPROC_DIR:
            yield from multiprocess.MultiProcessCollector(None, MULTIPROC_DIR).collect()
        else:
            yield from REGISTRY.collect()
        for collector in _scrape_collectors:
            yield from collector.collect()


def exposition() -> bytes:
    """The text a scrape returns."""
    return generate_latest(_Scrape())  # type: ignore[arg-type]  # generate_latest only calls collect()


# ---------------------------------------------------------------- who may read /metrics

PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"HUB_METRICS_ALLOWED_CIDRS: {cidr!r} is not an address or network.") from None
    return tuple(networks)


def allowed_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return _networks(tuple(c for c in getattr(settings, "HUB_METRICS_ALLOWED_CIDRS", []) if c.strip()))


def token_matches(request: HttpRequest) -> bool:
    """``Authorization: Bearer HUB_METRICS_TOKEN``, compared in constant time."""
    token = getattr(settings, "HUB_METRICS_TOKEN", "")
    if not token:
        return False
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    # Digests of equal length: the comparison's time says nothing about the token, its length included.
    digest = hashlib.sha256(given.strip().encode()).digest()
    return scheme.lower() == "bearer" and hmac.compare_digest(digest, hashlib.sha256(token.encode()).digest())


def access_allowed(request: HttpRequest) -> bool:
    """Loopback callers, callers in HUB_METRICS_ALLOWED_CIDRS, and callers with
    the bearer token. A loopback REMOTE_ADDR carrying a proxy header while no
    proxy is trusted (HUB_TRUSTED_PROXY_COUNT=0) is a reverse proxy on this host
    forwarding an outside caller: not loopback."""
    if token_matches(request):
        return True
    try:
        address = ipaddress.ip_address(client_ip(request).split("%", 1)[0])
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    proxied = not settings.HUB_TRUSTED_PROXY_COUNT and any(request.META.get(h) for h in PROXY_HEADERS)
    if address.is_loopback and not proxied:
        return True
    return any(address in network for network in allowed_networks())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: the Prometheus text format, or 403 for anybody else."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponse("Method not allowed\n", status=405, content_type="text/plain", headers={"Allow": "GET"})
    if not access_allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
