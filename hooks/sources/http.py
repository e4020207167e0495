"""The one place lookup sources reach the network: the SSRF-guarded session of
the outbound webhooks (hooks.outbound.transport: resolve, refuse private and
metadata addresses, connect to the checked address, no redirects), TLS
verification, a bounded read. Never raises: the Reply says what happened.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field

import requests
from django.conf import settings

from hooks.outbound import transport
from hub.net import address_problem

RESPONSE_LIMIT = 256 * 1024
USER_AGENT = "Hookhub-Lookup/1.0"


@dataclass
class Reply:
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""
    timed_out: bool = False
    duration_ms: float = 0.0


def literal_host_problem(host: str) -> str | None:
    """Save-time check of a URL's host written as an address (or localhost): why it may
    not be called, or None. Names are checked again, resolved, on every call."""
    if settings.HUB_ALLOW_PRIVATE_DESTINATIONS:
        return None
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return "a loopback address"
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None
    return address_problem(ip)


def call(*, method: str, url: str, headers: dict[str, str], body: str, timeout_s: float, verify: bool) -> Reply:
    """One request: connect and read each within ``timeout_s`` (the caller bounds the total)."""
    reply = Reply()
    started = time.perf_counter()
    response = None
    fully_read = False
    try:
        response = transport.session().request(
            method,
            url,
            data=body.encode() if body else None,
            headers={"User-Agent": USER_AGENT, **headers},
            timeout=(timeout_s, timeout_s),
            verify=verify,
            allow_redirects=False,
            stream=True,
        )
        raw = response.raw.read(RESPONSE_LIMIT + 1, decode_content=True) or b""
        reply.status = response.status_code
        reply.headers = dict(response.headers)
        if len(raw) > RESPONSE_LIMIT:
            reply.body = raw[:RESPONSE_LIMIT]
            reply.error = f"The answer is larger than {RESPONSE_LIMIT // 1024} KB; it was not read."
        else:
            reply.body = raw
            fully_read = True
    except transport.DestinationRefused as exc:
        reply.error = str(exc)
    except requests.exceptions.SSLError as exc:
        reply.error = f"TLS failure: {_short(exc)}"
    except (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout):
        reply.error = f"No answer within {timeout_s * 1000:.0f} ms"
        reply.timed_out = True
    except requests.exceptions.ConnectionError as exc:
        reply.error = f"Connection failed: {_short(exc)}"
    except Exception as exc:  # noqa: BLE001 - a source's failure is an outcome, never a crash of the lookup
        reply.error = f"Request failed: {type(exc).__name__}: {_short(exc)}"
    finally:
        if response is not None:
            if fully_read:
                response.raw.release_conn()  # keep the connection for the next lookup
            else:
                response.close()
        reply.duration_ms = (time.perf_counter() - started) * 1000
    return reply


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 400 else text[:400] + "…"
