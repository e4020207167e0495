"""A stand-in CRM for the demo (`make run` starts it beside the hub): the
receiving end of the demo brand's CRM sync, so a change to a demo customer in
the admin travels the whole way and shows in the sync's Logs tab.

It answers like a typical CRM REST API (Deskpro's example shape):
``POST /people`` -> 201 ``{"id": "crm-<n>"}``, ``PUT|PATCH /people/<id>`` -> 200,
``DELETE /people/<id>`` -> 204, and ``POST /events`` -> 202 for dispatcher
rules. Each request is printed on one line. State lives in memory only.
Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_ids = itertools.count(1)
PERSON = re.compile(r"^/people/([^/?]+)")


class Handler(BaseHTTPRequestHandler):
    server_version = "DemoCRM/1.0"

    def _answer(self, status: int, payload: dict | None = None) -> None:
        body = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode("utf-8", "replace") if length else ""

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self._read()
        if self.path.startswith("/people"):
            remote_id = f"crm-{next(_ids)}"
            self._note(f"created person {remote_id}", body)
            return self._answer(201, {"id": remote_id})
        if self.path.startswith("/events"):
            self._note("event received", body)
            return self._answer(202, {"ok": True})
        return self._answer(404, {"error": "not found"})

    def do_PUT(self):  # noqa: N802
        match = PERSON.match(self.path)
        body = self._read()
        if not match:
            return self._answer(404, {"error": "not found"})
        self._note(f"updated person {match.group(1)}", body)
        return self._answer(200, {"id": match.group(1)})

    do_PATCH = do_PUT  # noqa: N815

    def do_DELETE(self):  # noqa: N802
        match = PERSON.match(self.path)
        if not match:
            return self._answer(404, {"error": "not found"})
        self._note(f"deleted person {match.group(1)}", "")
        return self._answer(204)

    def _note(self, what: str, body: str) -> None:
        signed = "signed" if self.headers.get("webhook-signature") else "unsigned"
        print(f"demo CRM: {self.command} {self.path} -> {what} ({signed}) {' '.join(body.split())[:200]}", flush=True)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"demo CRM listening on http://127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
