"""A second (or third) hub process for tests/hooks/test_credential_cache_processes.py.

Reads one JSON command a line on stdin, answers one JSON line on stdout:
``{"op": "get", "path": ..., "params": {...}, "headers": {...}}`` runs the request
through the hub's whole stack (Django's test client: URLs, middleware, views) and
answers its status, body and the number of database queries it made;
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
        if command["op"] == "get":
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


if __name__ == "__main__":
    main()
