"""A fake CRM on 127.0.0.1: a real HTTP server that records every request and
answers per path (JSON, status, delay), and lookup sources pointing at it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import caches

from hooks.inbound.lookup_cache import lookup_cache
from hooks.sources import chain, records, selectors
from hooks.sources.models import LookupSource
from tests.factories import credential

CONTACT = {
    "id": "crm-4711",
    "properties": {
        "firstname": "Ada",
        "lastname": "Lovelace",
        "email": "ada@example.org",
        "phone": "+31 20 123 4567",
        "company": "Analytical Engines BV",
        "jobtitle": "Engineer",
        "tier": "gold",
    },
    "deals": [
        {
            "id": "d-1",
            "name": "Renewal 2027",
            "note": "Price agreed",
            "amount": 1200.5,
            "currency": "EUR",
            "closedAt": "2026-11-20T10:00:00Z",
        }
    ],
}
MAPPING = {
    "record": "$.results[0]",
    "customer_id": "$.id",
    "first_name": "$.properties.firstname",
    "last_name": "$.properties.lastname",
    "email": "$.properties.email",
    "phone": "$.properties.phone",
    "company": "$.properties.company",
    "job_title": "$.properties.jobtitle",
    "custom_fields": {"tier": "$.properties.tier"},
    "activities": [
        {
            "type": "DEAL",
            "items": "$.deals[*]",
            "fields": {
                "externalID": "$.id",
                "header": "$.name",
                "body": "$.note",
                "amount": "$.amount",
                "currency": "$.currency",
                "timestamp": "$.closedAt",
                "closeDate": "$.closedAt",
            },
        }
    ],
}


class FakeCrm:
    """Routes: path -> (status, JSON body or bytes, delay seconds). Unknown path: 404 {"results": []}."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, object, float]] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                with crm.lock:
                    crm.requests.append(
                        {
                            "method": self.command,
                            "path": parts.path,
                            "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                            "headers": dict(self.headers),
                            "body": body,
                        }
                    )
                    status, payload, delay = crm.routes.get(parts.path, (404, {"results": []}, 0.0))
                if delay:
                    time.sleep(delay)
                raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _answer  # noqa: N815 - http.server's names
            do_POST = _answer  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def route(self, path: str, payload: object, *, status: int = 200, delay: float = 0.0) -> None:
        with self.lock:
            self.routes[path] = (status, payload, delay)

    def hits(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def crm():
    server = FakeCrm()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _fresh_chain_state():
    """Answers are cached by (brand, source, revision): ids come back after a rollback on SQLite."""
    caches["default"].clear()
    selectors._specs.clear()
    lookup_cache.clear()
    records._pending.clear()
    yield
    lookup_cache.clear()
    # Calls the lookups gave up on finish in the background: let them end inside this test.
    wait_for(lambda: not chain._flights, timeout=6.0)
    records.calls_flush()
    caches["default"].clear()
    selectors._specs.clear()
    with chain._flights_lock:
        chain._flights.clear()


def make_source(brand, crm: FakeCrm, path: str = "/contacts/search", **kwargs) -> LookupSource:
    values = {
        "name": kwargs.pop("name", f"CRM {path}"),
        "url": f"{crm.url}{path}?phone={{{{ phone }}}}",
        "mapping": MAPPING,
        "timeout_ms": 1000,
        "order": 10,
    }
    values.update(kwargs)
    source = LookupSource(brand=brand, **values)
    source.full_clean()
    source.save()
    return source


def found(contact: dict | None = None) -> dict:
    return {"results": [contact or CONTACT]}


@pytest.fixture
def omnidesk_key(brand):
    return credential(brand, "omnidesk")


@pytest.fixture
def m8com_key(brand):
    return credential(brand, "m8com")


def wait_for(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
