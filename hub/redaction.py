"""Masking of secrets before anything is logged or stored."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "********"
SECRET_PARAM_NAMES = {
    "key",
    "api_key",
    "apikey",
    "api-key",
    "token",
    "access_token",
    "secret",
    "password",
    "pass",
    "pwd",
    "signature",
    "sig",
    "auth",
}
SECRET_HEADER_NAMES = {
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "apikey",
    "cookie",
    "set-cookie",
    "webhook-signature",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-signature",
    "x-auth-token",
}
_QUERY_SECRET = re.compile(
    r"(?i)((?:^|[?&;\s,(\"'])(?:" + "|".join(re.escape(name) for name in sorted(SECRET_PARAM_NAMES)) + r")=)[^&\s\"';]*"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_HEADER_NAMES or "token" in lowered or "secret" in lowered or "password" in lowered


def redact_text(text: str) -> str:
    """Mask secrets in query strings and Authorization values inside free text."""
    return _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, text))


def redact_query(query: str) -> str:
    """The query string as sent, with the value of every secret parameter masked.

    It runs on every platform call (the request log), so it splits the raw
    string instead of decoding and re-encoding every pair; a parameter name
    written percent-encoded (``k%65y``) is decoded before it is compared."""
    if not query:
        return ""
    out = []
    for part in query.split("&"):
        name, _, _ = part.partition("=")
        plain = unquote_plus(name) if ("%" in name or "+" in name) else name
        out.append(f"{name}={MASK}" if plain.strip().lower() in SECRET_PARAM_NAMES else part)
    return "&".join(out)


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    return urlunsplit((parts.scheme, netloc, parts.path, redact_query(parts.query), parts.fragment))


def redact_headers(headers) -> dict[str, str]:
    return {name: (MASK if is_secret_header(name) else str(value)) for name, value in dict(headers).items()}


class RedactingFilter(logging.Filter):
    """Logging filter: no key, token or password reaches a log handler (access log included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is still logged, unredacted args dropped
            message = str(record.msg)
        redacted = redact_text(message)
        if redacted != message or record.args:
            record.msg = redacted
            record.args = None
        return True
