"""Sending one rendered request: SSRF guard, signing, bounded response.

* SSRF guard at send time (not only at save time, so DNS rebinding cannot slip
  through): the host is resolved, every address must be public
  (``hub.net.address_problem``, shared with the save-time check: not private,
  loopback, link-local, multicast, reserved, unspecified, shared/CGNAT or a
  cloud-metadata address), and the connection goes to the checked address
  (the Host header and TLS SNI keep the name), unless
  ``settings.HUB_ALLOW_PRIVATE_DESTINATIONS``. Only http and https.
  requests-hardened's adapter does the same pinning but checks one address and
  says only "forbidden IP", so this is a small adapter of our own on the same
  technique, with reasons an admin can act on.
* Redirects are never followed (EddyDesk: 2xx/3xx counts as delivered).
* Standard Webhooks signatures (webhook-id, webhook-timestamp,
  webhook-signature) when a signing secret is set; ``Idempotency-Key`` and
  ``webhook-id`` carry the delivery's message id on every attempt.
* The response body is read with a size cap.
* Webhooks go out through urllib3 directly (one keep-alive pool per thread and
  destination): requests, on top of the same urllib3, cost three to four times
  the CPU per request (0.84–1.03 ms against 0.26–0.27 ms on the benchmark
  machine; docs/benchmarks.md, "Where the CPU goes"), more than half of a
  delivery's. The lookup sources (hooks.sources.http) keep the requests
  session below, with the same guard.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import certifi
import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from standardwebhooks.webhooks import Webhook
from urllib3 import exceptions as u3

from hub.net import address_problem

from .rendering import RenderedRequest

BODY_LIMIT = 32 * 1024
USER_AGENT = "Hookhub-Webhooks/1.0"


class DestinationRefused(requests.RequestException):
    """The SSRF guard refused the destination; the message says why."""


def resolve_checked(host: str, port: int) -> str:
    """Resolve ``host`` and return the address to connect to; raises DestinationRefused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise requests.ConnectionError(f"DNS lookup of {host} failed: {exc}") from exc
    addresses = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = sockaddr[0]
        assert isinstance(address, str)  # an int only from a Python built with --disable-ipv6 (typeshed)
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise requests.ConnectionError(f"DNS lookup of {host} returned no address")
    if settings.HUB_ALLOW_PRIVATE_DESTINATIONS:
        return str(addresses[0])
    for ip in addresses:
        problem = address_problem(ip)
        if problem:
            raise DestinationRefused(
                f"Refused: {host} resolves to {ip}, {problem}. Webhooks may only call public addresses "
                "(HUB_ALLOW_PRIVATE_DESTINATIONS is off)."
            )
    return str(addresses[0])


class GuardedAdapter(HTTPAdapter):
    """Connects to the address the guard checked; Host header and TLS name stay the URL's."""

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        request.headers = CaseInsensitiveDict(request.headers or {})
        hostname = host_params["host"]
        port = host_params["port"] or (443 if host_params["scheme"] == "https" else 80)
        host_header = f"[{hostname}]" if ":" in hostname else hostname
        if host_params["port"] is not None:
            host_header += f":{host_params['port']}"
        request.headers["Host"] = host_header
        if host_params["scheme"] == "https":
            pool_kwargs["assert_hostname"] = hostname
            pool_kwargs["server_hostname"] = hostname
        host_params["host"] = resolve_checked(hostname, port)
        return host_params, pool_kwargs


_local = threading.local()


def session() -> requests.Session:
    """One keep-alive session per thread (a worker reuses connections across deliveries)."""
    current = getattr(_local, "session", None)
    if current is None:
        current = requests.Session()
        current.trust_env = False  # never a proxy from the environment
        adapter = GuardedAdapter(pool_connections=20, pool_maxsize=20, max_retries=0)
        current.mount("http://", adapter)
        current.mount("https://", adapter)
        _local.session = current
    return current


# What requests sent besides our headers; kept so receivers see the same request.
DEFAULT_HEADERS = {"Accept-Encoding": "gzip, deflate", "Accept": "*/*", "Connection": "keep-alive"}


def _pools() -> urllib3.PoolManager:
    """One urllib3 pool manager per thread (a worker reuses connections across deliveries)."""
    current = getattr(_local, "pools", None)
    if current is None:
        current = urllib3.PoolManager(num_pools=20, maxsize=1, retries=False)
        _local.pools = current
    return current


def _open(rendered: RenderedRequest, headers: dict[str, str], *, verify_ssl: bool, timeout: float):
    """Send through the guard: resolve and check the host, connect to the checked
    address, keep the URL's name for the Host header and TLS (SNI, certificate)."""
    url = urllib3.util.parse_url(rendered.url)  # percent-encodes what a URL may not hold, as requests did
    scheme = (url.scheme or "").lower()
    hostname = (url.host or "").strip("[]")
    if not hostname:
        raise u3.LocationParseError(rendered.url)
    port = url.port or (443 if scheme == "https" else 80)
    host_header = f"[{hostname}]" if ":" in hostname else hostname
    if url.port is not None:
        host_header += f":{url.port}"
    pool_kwargs: dict = {}
    if scheme == "https" and verify_ssl:
        pool_kwargs = {"server_hostname": hostname, "assert_hostname": hostname, "cert_reqs": "CERT_REQUIRED"}
        pool_kwargs["ca_certs"] = certifi.where()
    elif scheme == "https":
        pool_kwargs = {"server_hostname": hostname, "assert_hostname": False, "cert_reqs": "CERT_NONE"}
    pool = _pools().connection_from_host(resolve_checked(hostname, port), port, scheme, pool_kwargs=pool_kwargs)
    return pool.urlopen(
        rendered.method,
        url.request_uri,
        body=rendered.body.encode() if rendered.body else None,
        headers={**DEFAULT_HEADERS, **headers, "Host": host_header},
        timeout=urllib3.Timeout(connect=min(timeout, 10), read=timeout),
        retries=False,
        redirect=False,
        assert_same_host=False,
        preload_content=False,
        decode_content=True,
    )


SECRET_PREFIX = "whsec_"  # Standard Webhooks: the prefix, then the key in base64


def signing_secret_new() -> str:
    """A new Standard Webhooks signing secret: whsec_ + 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_secret_errors(secret: str) -> list[str]:
    """What is wrong with ``secret`` as a signing secret ([] when nothing): the prefix
    and 24 to 64 bytes of base64, as the hub generates them."""
    if not secret.startswith(SECRET_PREFIX):
        return [f'a Standard Webhooks secret starts with "{SECRET_PREFIX}" (generate one in the admin).']
    try:
        size = len(base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True))
    except (binascii.Error, ValueError):
        return [f'the part after "{SECRET_PREFIX}" must be base64.']
    return [] if 24 <= size <= 64 else [f"the secret must be 24 to 64 bytes, not {size}."]


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    from datetime import UTC, datetime

    return Webhook(secret).sign(msg_id=message_id, timestamp=datetime.fromtimestamp(timestamp, tz=UTC), data=body)


@dataclass
class Outcome:
    started_at: float
    duration_ms: float
    request_headers: dict[str, str]
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    error: str = ""
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        """EddyDesk: "If the server responds with an HTTP code 2XX/3XX then the request is considered successful"."""
        return self.status is not None and 200 <= self.status < 400 and not self.error


def wire_headers(
    rendered: RenderedRequest, *, message_id: str, signing_secret: str = "", now: float | None = None
) -> dict[str, str]:
    timestamp = int(now if now is not None else time.time())
    headers = {"User-Agent": USER_AGENT, **rendered.headers}
    headers["Idempotency-Key"] = message_id
    headers["webhook-id"] = message_id
    headers["webhook-timestamp"] = str(timestamp)
    if signing_secret:
        headers["webhook-signature"] = sign(signing_secret, message_id, timestamp, rendered.body)
    return headers


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def send(
    rendered: RenderedRequest,
    *,
    message_id: str,
    signing_secret: str = "",
    verify_ssl: bool = True,
    timeout: float = 10,
) -> Outcome:
    """Send once. Never raises for network or HTTP failures: they are in the Outcome."""
    headers = wire_headers(rendered, message_id=message_id, signing_secret=signing_secret)
    started = time.time()
    clock = time.perf_counter()
    outcome = Outcome(started_at=started, duration_ms=0.0, request_headers=headers)
    scheme = urlsplit(rendered.url).scheme.lower()
    if scheme not in ("http", "https"):
        outcome.error = f"Refused: only http and https URLs are called, not {scheme or 'this'}."
        return outcome
    response = None
    fully_read = False
    try:
        response = _open(rendered, headers, verify_ssl=verify_ssl, timeout=timeout)
        raw = response.read(BODY_LIMIT + 1, decode_content=True) or b""
        fully_read = len(raw) <= BODY_LIMIT
        outcome.status = response.status
        outcome.response_headers = dict(response.headers)
        encoding = get_encoding_from_headers(response.headers)  # what requests' Response.encoding said
        text = raw[:BODY_LIMIT].decode(encoding or "utf-8", errors="replace")
        outcome.response_body = text + ("\n[truncated]" if len(raw) > BODY_LIMIT else "")
        if response.status in (429, 503):
            outcome.retry_after = parse_retry_after(response.headers.get("Retry-After"))
    except DestinationRefused as exc:
        outcome.error = str(exc)
    except u3.SSLError as exc:
        outcome.error = f"TLS failure: {_short(exc)}"
    except (u3.NewConnectionError, u3.ProtocolError) as exc:  # NewConnectionError is a ConnectTimeoutError too
        outcome.error = f"Connection failed: {_short(_reason(exc))}"
    except u3.ConnectTimeoutError:
        outcome.error = f"Timed out connecting after {min(timeout, 10):g} s"
    except u3.ReadTimeoutError:
        outcome.error = f"No answer within {timeout:g} s"
    except requests.exceptions.ConnectionError as exc:  # the DNS lookup in resolve_checked
        outcome.error = f"Connection failed: {_short(exc)}"
    except (u3.HTTPError, requests.RequestException) as exc:
        outcome.error = f"Request failed: {_short(exc)}"
    except Exception as exc:  # noqa: BLE001 - the engine records any failure as an attempt
        outcome.error = f"Request failed: {type(exc).__name__}: {_short(exc)}"
    finally:
        if response is not None:
            if fully_read:
                response.release_conn()  # keep the connection for the next delivery
            else:
                response.close()
                response.release_conn()
        outcome.duration_ms = (time.perf_counter() - clock) * 1000
    return outcome


def _reason(exc: Exception) -> Exception | str:
    """urllib3 starts a connection error with the connection object's repr; keep what it says."""
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("<") and ": " in text else exc


def _short(exc: object) -> str:
    text = str(exc)
    return text if len(text) < 400 else text[:400] + "…"
