"""/metrics (hub.metrics): a scripted run — lookups on both platforms (a 401 and
a 404 among them), a call-log event, deliveries to a local receiver that succeed,
retry and fail — then one scrape from loopback, asserting each family's values.
Who may scrape (loopback, allowlist, bearer token; a local reverse proxy is not
loopback), and multiprocess mode: several processes, one scrape shows the sum.

The process-wide counters outlive a test, so values are compared as the change
between two scrapes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families
from werkzeug import Response

from hooks.outbound.models import Delivery
from tests import factories
from tests.hooks.outbound.conftest import make_sync, queue_purge
from tests.hooks.outbound.conftest import run_all as engine_run_all

pytestmark = pytest.mark.django_db

ROOT = Path(settings.BASE_DIR)
Samples = dict[tuple[str, frozenset], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client, **extra) -> Samples:
    response = client.get("/metrics", REMOTE_ADDR=extra.pop("REMOTE_ADDR", "127.0.0.1"), **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return parse(response.content.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def family_deltas(before: Samples, after: Samples, name: str) -> dict[frozenset, float]:
    changed = {}
    for (sample, labels), number in after.items():
        if sample == name and number != before.get((sample, labels), 0.0):
            changed[labels] = number - before.get((sample, labels), 0.0)
    return changed


# ------------------------------------------------------------------ the scripted run


@pytest.fixture(autouse=True)
def empty_broker():
    queue_purge()
    yield
    queue_purge()


def test_a_scripted_run_shows_every_family_with_its_values(client, brand, httpserver, clock, settings):
    settings.HUB_RETRY_INTERVAL_SECONDS = 60
    settings.HUB_RETRY_WINDOW_SECONDS = 120
    from hooks.inbound.lookup_cache import lookup_cache

    lookup_cache.clear()
    omnidesk_key = factories.credential(brand, "omnidesk")
    m8com_key = factories.credential(brand, "m8com")
    factories.customer(
        brand, customer_id="K-1", first_name="Maria", addresses=[{"kind": "telephone", "value": "+31 6 1234 5678"}]
    )
    before = scrape(client)

    # Lookups on both platforms, a 401 (wrong key) and a 404 (unknown brand) among them.
    answers = [
        (
            "omnidesk.lookup",
            client.get(
                "/hooks/omnidesk/acme/customerlookup",
                {"key": omnidesk_key, "channelAddressType": "phoneNumber", "address": "+31612345678"},
            ),
        ),
        ("omnidesk.lookup", client.get("/hooks/omnidesk/acme/customerlookup", {"key": "wrong", "primaryID": "K-1"})),
        ("omnidesk.lookup", client.get("/hooks/omnidesk/nobrand/customerlookup", {"key": omnidesk_key})),
        (
            "m8com.lookup",
            client.get(
                "/hooks/m8com/acme/lookup", {"phone": "+31612345678"}, headers={"Authorization": f"Bearer {m8com_key}"}
            ),
        ),
        ("m8com.lookup", client.get("/hooks/m8com/acme/lookup", {"phone": "+31612345678"})),
    ]
    call = {"fromNumber": "+31 6 1234 5678", "toNumber": "+46 8 123", "duration": 1000, "startTime": 1_763_800_000_000}
    calllog = client.post(
        "/hooks/m8com/acme/calllog",
        call,
        content_type="application/json",
        headers={"Authorization": f"Bearer {m8com_key}"},
    )
    answers.append(("m8com.calllog", calllog))
    answers.append(("other", client.post("/hooks/servicehooks/acme/no-such-type", {}, content_type="application/json")))
    statuses = Counter((endpoint, str(response.status_code)) for endpoint, response in answers)
    assert {"401", "404", "200"} <= {status for _, status in statuses}

    # Deliveries: the receiver takes Ada's create and refuses Bob's (retry, retry, failed).
    def people(request):
        if b"Bob" in request.get_data():
            return Response("down", status=500)
        return Response('{"id": "crm-1"}', status=201, content_type="application/json")

    httpserver.expect_request("/people", method="POST").respond_with_handler(people)
    make_sync(brand, httpserver.url_for("").rstrip("/"))
    factories.customer(brand, first_name="Ada")
    factories.customer(brand, first_name="Bob")
    queue_purge()
    engine_run_all()
    middle = scrape(client)
    assert value(middle, "hookhub_outbox_deliveries", state="pending") == 1  # Bob's, waiting for its retry
    assert value(middle, "hookhub_outbox_deliveries", state="in_flight") == 0
    assert value(middle, "hookhub_outbox_oldest_due_age_seconds") == 0  # not due yet

    clock.advance(seconds=90)  # Bob's retry has been due for 30 s
    lagging = scrape(client)
    assert value(lagging, "hookhub_outbox_oldest_due_age_seconds") == pytest.approx(30, abs=1)
    engine_run_all()  # second attempt: a retry again
    clock.advance(seconds=60)
    engine_run_all()  # at the deadline: failed
    assert sorted(Delivery.objects.values_list("state", flat=True)) == ["delivered", "failed"]
    after = scrape(client)

    # Platform calls by endpoint and status, and the latency histogram per endpoint.
    assert {
        (dict(labels)["endpoint"], dict(labels)["status"]): number
        for labels, number in family_deltas(before, after, "hookhub_inbound_requests_total").items()
    } == dict(statuses)
    per_endpoint = Counter(endpoint for endpoint, _ in answers)
    for endpoint, count in per_endpoint.items():
        assert delta(before, after, "hookhub_inbound_request_duration_seconds_count", endpoint=endpoint) == count
        assert (
            delta(before, after, "hookhub_inbound_request_duration_seconds_bucket", endpoint=endpoint, le="+Inf")
            == count
        )
    # The call log event, by source and state.
    assert family_deltas(before, after, "hookhub_inbound_events_total") == {
        frozenset({"source": "m8com.calllog", "state": calllog.json()["status"]}.items()): 1
    }
    # Attempts by outcome, per brand and destination kind.
    assert {
        dict(labels)["outcome"]: number
        for labels, number in family_deltas(before, after, "hookhub_delivery_attempts_total").items()
        if dict(labels)["brand"] == "acme" and dict(labels)["destination_kind"] == "crm_action"
    } == {"success": 1, "retry": 2, "failed": 1}
    assert delta(before, after, "hookhub_delivery_latency_seconds_count", destination_kind="crm_action") == 1
    # The outbox is empty again.
    assert value(after, "hookhub_outbox_deliveries", state="pending") == 0
    assert value(after, "hookhub_outbox_oldest_due_age_seconds") == 0
    # django-prometheus's families are there too.
    names = {name for name, _ in after}
    assert {"django_http_requests_total_by_view_transport_method_total", "django_db_execute_total"} <= names

    # No secret, URL or id in any label.
    receiver = httpserver.url_for("")
    for _, labels in after:
        for _, label_value in labels:
            for forbidden in (omnidesk_key, m8com_key, receiver, "http://", "127.0.0.1:"):
                assert forbidden not in label_value


# ------------------------------------------------------------------ who may scrape

OUTSIDE = "203.0.113.7"


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"])
def test_loopback_may_scrape(client, address):
    assert client.get("/metrics", REMOTE_ADDR=address).status_code == 200


def test_an_outside_address_is_refused_without_the_token(client, settings, caplog):
    settings.HUB_METRICS_TOKEN = "s3cret-metrics-token"
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE)
    assert response.status_code == 403
    assert b"hookhub_" not in response.content
    wrong = client.get("/metrics", REMOTE_ADDR=OUTSIDE, headers={"Authorization": "Bearer s3cret-metrics-tokeX"})
    assert wrong.status_code == 403
    basic = client.get("/metrics", REMOTE_ADDR=OUTSIDE, headers={"Authorization": "Basic s3cret-metrics-token"})
    assert basic.status_code == 403
    allowed = client.get("/metrics", REMOTE_ADDR=OUTSIDE, headers={"Authorization": "Bearer s3cret-metrics-token"})
    assert allowed.status_code == 200
    assert b"hookhub_inbound_requests_total" in allowed.content
    assert "s3cret-metrics-token" not in caplog.text


def test_no_token_configured_means_no_token_is_accepted(client, settings):
    settings.HUB_METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE, headers={"Authorization": "Bearer "}).status_code == 403


def test_an_allowed_network_may_scrape(client, settings):
    settings.HUB_METRICS_ALLOWED_CIDRS = ["10.0.0.0/8", "203.0.113.7"]
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="198.51.100.1").status_code == 403


def test_a_local_reverse_proxy_is_not_loopback(client, settings):
    """nginx on the same host forwards an outside caller from 127.0.0.1: refused
    unless the proxy is trusted, and then the forwarded address decides."""
    proxied = client.get("/metrics", REMOTE_ADDR="127.0.0.1", headers={"X-Forwarded-For": OUTSIDE})
    assert proxied.status_code == 403
    settings.HUB_TRUSTED_PROXY_COUNT = 1
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", headers={"X-Forwarded-For": OUTSIDE}).status_code == 403
    spoofed = client.get("/metrics", REMOTE_ADDR=OUTSIDE, headers={"X-Forwarded-For": "127.0.0.1"})
    assert spoofed.status_code == 200  # the trusted proxy (REMOTE_ADDR) vouches for its caller: operator's choice
    settings.HUB_TRUSTED_PROXY_COUNT = 0
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE, headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 403


def test_a_bad_allowlist_entry_is_a_configuration_error(client, settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.HUB_METRICS_ALLOWED_CIDRS = ["10.0.0.0/33"]
    with pytest.raises(ImproperlyConfigured, match="HUB_METRICS_ALLOWED_CIDRS"):
        client.get("/metrics", REMOTE_ADDR=OUTSIDE)


def test_only_get(client):
    assert client.post("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 405


# ------------------------------------------------------------------ multiprocess mode

WRITER = """
import os, sys, django
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings_test"
django.setup()
from hub import metrics
for _ in range(int(sys.argv[1])):
    metrics.inbound_call_observe(endpoint="omnidesk.lookup", status=200, seconds=0.003)
metrics.worker_heartbeat()
if sys.argv[2] == "stop":
    metrics.worker_heartbeat_end()
"""
SCRAPER = """
import os, django
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings_test"
django.setup()
from django.test import Client
response = Client().get("/metrics", REMOTE_ADDR="127.0.0.1")
assert response.status_code == 200, response.status_code
print(response.content.decode())
"""


def _run(code: str, *args: str, directory: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "DATABASE_URL": "sqlite:///:memory:"}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_two_processes_write_and_one_scrape_shows_the_sum(tmp_path):
    directory = tmp_path / "prometheus"  # created by the first process that starts
    _run(WRITER, "3", "stop", directory=directory)
    _run(WRITER, "4", "keep", directory=directory)
    samples = parse(_run(SCRAPER, directory=directory))
    assert value(samples, "hookhub_inbound_requests_total", endpoint="omnidesk.lookup", status="200") == 7
    assert value(samples, "hookhub_inbound_request_duration_seconds_count", endpoint="omnidesk.lookup") == 7
    assert (
        value(samples, "hookhub_inbound_request_duration_seconds_bucket", endpoint="omnidesk.lookup", le="0.005") == 7
    )
    # The process that ended its sweeper took its heartbeat with it; the other's stays (livemax).
    heartbeats = [labels for name, labels in samples if name == "hookhub_worker_heartbeat_timestamp_seconds"]
    assert len(heartbeats) == 1
    assert "django_http_requests_total_by_view_transport_method_total" in {name for name, _ in samples}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_qcluster_writes_attempts_and_its_heartbeat_for_the_web_to_scrape(brand, httpserver, tmp_path):
    """``manage.py qcluster`` (a Sentinel, two workers and the sweeper thread)
    with PROMETHEUS_MULTIPROC_DIR: a web process's scrape of the same directory
    shows the workers' attempts and the cluster's heartbeat; after a graceful
    stop the heartbeat is gone and the counters stay."""
    import signal
    import time

    from tests.hooks.outbound.test_worker import SharedDatabase, kill, start_worker, wait_for

    httpserver.expect_request("/people", method="POST").respond_with_json({"id": "crm-1"}, status=201)
    make_sync(brand, httpserver.url_for("").rstrip("/"))
    for name in ("Ada", "Bob", "Cy"):
        factories.customer(brand, first_name=name)
    directory = tmp_path / "prometheus"
    database = SharedDatabase(tmp_path)
    database.push()
    started = time.time()
    worker = start_worker(database, env={"PROMETHEUS_MULTIPROC_DIR": str(directory)})
    try:
        wait_for(lambda: Delivery.objects.filter(state="delivered").count() == 3, "three delivered", database)
        wait_for(lambda: any(directory.glob("gauge_livemax_*.db")), "the cluster's heartbeat")
        samples = parse(_run(SCRAPER, directory=directory))
        assert (
            value(
                samples,
                "hookhub_delivery_attempts_total",
                brand="acme",
                destination_kind="crm_action",
                outcome="success",
            )
            == 3
        )
        assert value(samples, "hookhub_delivery_latency_seconds_count", destination_kind="crm_action") == 3
        (beat,) = [v for (name, _), v in samples.items() if name == "hookhub_worker_heartbeat_timestamp_seconds"]
        assert started <= beat <= time.time()
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    finally:
        kill(worker)
    samples = parse(_run(SCRAPER, directory=directory))
    assert not [name for name, _ in samples if name == "hookhub_worker_heartbeat_timestamp_seconds"]
    assert (
        value(
            samples, "hookhub_delivery_attempts_total", brand="acme", destination_kind="crm_action", outcome="success"
        )
        == 3
    )


# ------------------------------------------------------------------ deploy/: alert rules and dashboard

DEPLOY = ROOT / "deploy"
METRIC_NAME = re.compile(r"\b((?:hookhub|django)_[a-z_]+)\b")


def deploy_expressions() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "hookhub-alerts.yml").read_text())
    expressions = []
    for group in rules["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["alert"] and rule["expr"] and rule["labels"]["severity"] and rule["annotations"]["summary"]
            expressions.append(rule["expr"])
    dashboard = json.loads((DEPLOY / "grafana" / "hookhub-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        expressions += [target["expr"] for target in panel["targets"]]
    return expressions


def test_the_alert_rules_and_the_dashboard_use_only_metrics_that_metrics_exposes(client, brand):
    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    families = list(text_string_to_metric_families(text))
    exposed = {family.name for family in families} | {s.name for family in families for s in family.samples}
    used = {name for expression in deploy_expressions() for name in METRIC_NAME.findall(expression)}
    unknown = {
        name for name in used if name not in exposed and re.sub(r"_(bucket|count|sum|total)$", "", name) not in exposed
    }
    assert unknown == set()
    assert {
        "hookhub_outbox_oldest_due_age_seconds",
        "hookhub_delivery_attempts_total",
        "hookhub_inbound_request_duration_seconds_bucket",
        "hookhub_worker_heartbeat_timestamp_seconds",
        "hookhub_delivery_latency_seconds_bucket",
    } <= used


def test_promtool_accepts_the_alert_rules():
    """Debian's prometheus package brings promtool; without it the structure and
    names are still checked by the test above."""
    promtool = shutil.which("promtool")
    if promtool is None:
        deploy_expressions()
        return
    rules = DEPLOY / "prometheus"
    result = subprocess.run(
        [promtool, "check", "rules", str(rules / "hookhub-alerts.yml")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    result = subprocess.run(
        [promtool, "test", "rules", str(rules / "hookhub-alerts.test.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=rules,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_database_outage_leaves_the_outbox_families_out_not_the_scrape(client, monkeypatch):
    from hub import metrics

    def down():
        raise OSError("connection refused")

    (outbox,) = [c for c in metrics._scrape_collectors if isinstance(c, metrics.OutboxCollector)]
    monkeypatch.setattr(outbox, "depth", down)
    samples = scrape(client)
    names = {name for name, _ in samples}
    assert "hookhub_outbox_deliveries" not in names
    assert "django_http_requests_total_by_view_transport_method_total" in names
