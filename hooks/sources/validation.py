"""Save-time checks of a lookup source (admin form and config import alike)."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlsplit

from hub.redaction import SECRET_PARAM_NAMES, is_secret_header

from . import tags
from .http import literal_host_problem
from .mapping import mapping_errors

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
SECRET_ADVICE = "Put credentials in Authentication, where they are encrypted and never shown or logged."


def url_errors(url: str) -> list[str]:
    errors = tags.template_problems(url)
    sample = tags.fill(url or "", tags.SAMPLE, tags.url_escape).strip()
    parts = urlsplit(sample)
    if parts.scheme.lower() not in ("http", "https"):
        errors.append("Only http and https URLs are called.")
        return errors
    if not parts.hostname:
        errors.append("The URL needs a host name.")
        return errors
    if "{{" in (urlsplit(url).netloc or ""):
        errors.append("Tags may stand in the path and query, not in the host.")
    if parts.username or parts.password:
        errors.append(f"No user name or password in the URL. {SECRET_ADVICE}")
    secret_params = sorted(
        {
            name
            for name, _ in parse_qsl(parts.query, keep_blank_values=True)
            if name.strip().lower() in SECRET_PARAM_NAMES
        }
    )
    if secret_params:
        errors.append(f"The query parameter {', '.join(secret_params)} looks like a secret. {SECRET_ADVICE}")
    if problem := literal_host_problem(parts.hostname):
        errors.append(f"Refused: {parts.hostname} is {problem}. Lookup sources may only call public addresses.")
    return errors


def header_errors(text: str) -> list[str]:
    errors = tags.template_problems(text)
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        name, colon, _ = line.partition(":")
        if not colon or not _HEADER_NAME.match(name.strip()):
            errors.append(f'Not a "Name: value" line: {line[:60]!r}.')
        elif is_secret_header(name.strip()):
            errors.append(f"{name.strip()} carries a secret. {SECRET_ADVICE}")
    return errors


def body_errors(method: str, body: str) -> list[str]:
    if method != "POST":
        return ["Only POST sends a body."] if (body or "").strip() else []
    errors = tags.template_problems(body)
    if (body or "").strip() and not errors:
        try:
            json.loads(tags.fill(body, tags.SAMPLE, tags.json_escape))
        except ValueError as exc:
            errors.append(f"With sample values the body is not JSON ({exc}); write tags inside JSON strings.")
    return errors


def source_errors(source) -> dict[str, list[str]]:
    """Every problem of a source, by field."""
    errors: dict[str, list[str]] = {}

    def add(field: str, messages: list[str]) -> None:
        if messages:
            errors.setdefault(field, []).extend(messages)

    add("url", url_errors(source.url))
    add("headers", header_errors(source.headers))
    add("body", body_errors(source.method, source.body))
    if not errors.get("url") and not tags.source_kinds(url=source.url, headers=source.headers, body=source.body):
        add(
            "url",
            [
                "Use at least one tag ({{ phone }}, {{ phone_national }}, {{ email }} or {{ customer_id }}): "
                "it is what the source is asked for."
            ],
        )
    if source.auth_type == "basic" and not source.auth_username:
        add("auth_username", ["A username is needed for username and password authentication."])
    if source.auth_type == "api_key" and not (source.api_key_header or "").strip():
        add("api_key_header", ["Name the header that carries the API key."])
    if source.auth_type == "api_key" and not _HEADER_NAME.match((source.api_key_header or "x").strip()):
        add("api_key_header", ["Not a header name."])
    if source.auth_type in ("bearer", "api_key") and not source.api_key:
        add("api_key", ["A token or API key is needed for this authentication."])
    add("mapping", mapping_errors(source.mapping))
    return errors
