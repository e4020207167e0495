"""A WSGI application called in-process, as a WSGI server (gunicorn's sync worker)
calls it: the environ a server builds, the body iterated and closed (which sends
Django's request_finished). Used by the lookup fast-path tests, the hub process of
tests/hooks/test_credential_cache_processes.py and bench/lookup_cpu.py."""

from __future__ import annotations

import io
import sys


def wsgi_environ(method: str, path: str, query: str = "", headers: dict | None = None, **extra) -> dict:
    """A server's environ; PATH_INFO as servers pass it (the bytes sent, percent-decoded, as latin-1)."""
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    environ.update(extra)
    return environ


def wsgi_call(application, environ: dict) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers in order, body) of one call; the environ is not consumed."""
    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    body = application({**environ, "wsgi.input": io.BytesIO(b"")}, start_response)
    try:
        content = b"".join(body)
    finally:
        body.close()
    return seen["status"], seen["headers"], content
