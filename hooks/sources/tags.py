"""The request a source is asked with: its tags filled in for one lookup value.

Tags are a closed list (``{{ phone }}``, ``{{ phone_national }}``, ``{{ email }}``,
``{{ customer_id }}``) filled in by plain substitution, escaped for where they
stand: percent-encoded in the URL, JSON-escaped in the body, line breaks removed
in headers. Nothing else in the text is interpreted. ``fill`` is the one
function that renders them (the template runtime can take it over).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import phonenumbers

TAGS = ("phone", "phone_national", "email", "customer_id")
# Which lookups a tag serves: a source is asked only for the kinds its tags name.
KIND_TAGS = {"phone": {"phone", "phone_national"}, "email": {"email"}, "customer_id": {"customer_id"}}
KINDS = tuple(KIND_TAGS)
_TAG = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
SAMPLE = {"phone": "+31612345678", "phone_national": "0612345678", "email": "a@example.com", "customer_id": "K-1"}


@dataclass(frozen=True)
class LookupKey:
    """What is looked up: kind (phone, email, customer_id) and the normalized value."""

    kind: str
    value: str


# The adapters' names for what they look up -> the chain's kinds.
_ADAPTER_KINDS = {"telephone": "phone", "whatsapp": "phone", "phoneNumber": "phone", "primaryID": "customer_id"}


def key_for(kind: str, value: str) -> LookupKey:
    """The chain's key for an adapter's parsed lookup (address type or "primaryID", normalized value)."""
    return LookupKey(_ADAPTER_KINDS.get(kind, kind), value)


@dataclass(frozen=True)
class PlannedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: str


def tags_in(text: str) -> set[str]:
    return {match.group(1) for match in _TAG.finditer(text or "")}


def template_problems(text: str) -> list[str]:
    """Why a text is not a valid tag template (unknown tags, other template syntax)."""
    problems = [f"Unknown tag {{{{ {name} }}}}: use {', '.join(TAGS)}." for name in sorted(tags_in(text) - set(TAGS))]
    rest = _TAG.sub("", text or "")
    if any(mark in rest for mark in ("{{", "}}", "{%", "{#")):
        problems.append(
            "Only the tags {{ phone }}, {{ phone_national }}, {{ email }} and {{ customer_id }} are "
            "filled in; other template syntax is not allowed."
        )
    return problems


def fill(template: str, values: dict[str, str], escape: Callable[[str], str]) -> str:
    """The template with each known tag replaced by its escaped value (unknown ones by nothing)."""
    return _TAG.sub(lambda match: escape(values.get(match.group(1), "")), template)


def url_escape(value: str) -> str:
    return quote(value, safe="")


def json_escape(value: str) -> str:
    return json.dumps(value)[1:-1]


def header_escape(value: str) -> str:
    return value.replace("\r", "").replace("\n", "")


def tag_values(key: LookupKey, *, region: str) -> dict[str, str]:
    values = dict.fromkeys(TAGS, "")
    if key.kind == "phone":
        values["phone"] = key.value
        try:
            parsed = phonenumbers.parse(key.value, region)
            national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
            values["phone_national"] = re.sub(r"[^0-9+]", "", national)
        except phonenumbers.NumberParseException:
            values["phone_national"] = key.value
    elif key.kind in values:
        values[key.kind] = key.value
    return values


def source_kinds(*, url: str, headers: str, body: str) -> set[str]:
    """The lookup kinds a source can answer: those whose tags it uses."""
    used = tags_in(url) | tags_in(headers) | tags_in(body)
    return {kind for kind, tags in KIND_TAGS.items() if used & tags}


def header_lines(text: str) -> list[tuple[str, str]]:
    lines = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        name, _, value = line.partition(":")
        lines.append((name.strip(), value.strip()))
    return lines


def plan_request(source, key: LookupKey, *, region: str) -> PlannedRequest:
    """The exact request for one lookup (source: a LookupSource or anything with its fields)."""
    values = tag_values(key, region=region)
    headers = {"Accept": "application/json"}
    for name, value in header_lines(source.headers):
        headers[name] = fill(value, values, header_escape)
    body = ""
    if source.method == "POST":
        body = fill(source.body, values, json_escape)
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    if source.auth_type == "basic":
        token = base64.b64encode(f"{source.auth_username}:{source.auth_password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    elif source.auth_type == "bearer":
        headers["Authorization"] = f"Bearer {source.api_key}"
    elif source.auth_type == "api_key":
        headers[source.api_key_header.strip()] = source.api_key
    return PlannedRequest(
        method=source.method, url=fill(source.url, values, url_escape).strip(), headers=headers, body=body
    )
