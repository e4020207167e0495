"""A second (or third) hub process for tests/hooks/test_credential_cache_processes.py.

Reads one JSON command a line on stdin, answers one JSON line on stdout:
``{"op": "get", "path": ..., "params": {...}, "headers": {...}}`` runs the request
through the hub's whole stack (Django's test client: URLs, middleware, views), or
with ``"via": "wsgi"`` through the WSGI application gunicorn serves
(config.wsgi: the lookup fast path), and answers its status, body and the number
of database queries it made;
``{"op": "revoke", "prefix": ...}`` revokes a key, ``{"op": "rename", "customer_id":
..., "first_name": ...}`` changes a customer, both through the services.
The request log is buffered as in production (SYNCLOG_FLUSH_INTERVAL > 0).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402


def main() -> None:
    from customers.models import Customer
    from customers.services import customer_update
    from hub.models import Credential
    from hub.services import credential_revoke

    setup_test_environment()
    settings.SYNCLOG_FLUSH_INTERVAL = 3600
    client = Client()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "get" and command.get("via") == "wsgi":
            with CaptureQueriesContext(connection) as queries:
                status, body = wsgi_get(command["path"], command.get("params", {}), command.get("headers", {}))
            from config.wsgi import application

            answer = {
                "status": status,
                "body": body,
                "queries": len(queries),
                "fast": application.fast_path is not None,
            }
        elif command["op"] == "get":
            with CaptureQueriesContext(connection) as queries:
                response = client.get(command["path"], command.get("params", {}), headers=command.get("headers", {}))
            answer = {"status": response.status_code, "body": response.content.decode(), "queries": len(queries)}
        elif command["op"] == "revoke":
            credential_revoke(credential=Credential.objects.get(prefix=command["prefix"]))
            answer = {"done": True}
        elif command["op"] == "rename":
            customer = Customer.objects.get(customer_id=command["customer_id"])
            customer_update(customer=customer, first_name=command["first_name"])
            answer = {"done": True}
        else:
            answer = {"error": f"unknown op {command['op']!r}"}
        print(json.dumps(answer), flush=True)


def wsgi_get(path: str, params: dict, headers: dict) -> tuple[int, str]:
    """A GET through config.wsgi.application, as a WSGI server calls it."""
    from urllib.parse import urlencode

    from config.wsgi import application
    from tests.wsgi_client import wsgi_call, wsgi_environ

    status, _, body = wsgi_call(application, wsgi_environ("GET", path, urlencode(params), headers))
    return int(status[:3]), body.decode()


if __name__ == "__main__":
    main()
