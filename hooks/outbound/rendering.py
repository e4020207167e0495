"""From a request configuration and a token context to the exact HTTP request.

Templates are admin-authored Jinja2, run in the sandbox with an output size cap
(ARCHITECTURE.md, security model). Every ``{{ value }}`` is escaped for where it
lands, so a customer named ``Jo "J" <b>&\\n`` still yields valid data:

* URL: percent-encoded (a path segment or query value);
* headers: CR, LF and other control characters become spaces, so a value can
  never start a new header;
* JSON body: escaped as the inside of a JSON string (write ``"{{ x }}"``);
  lists and objects are written as JSON;
* XML body: XML text escaping (``&amp;`` ``&lt;`` ``&gt;`` ``&quot;`` ``&apos;``);
* form body: ``application/x-www-form-urlencoded`` encoding (EddyDesk: ``&``
  separates the variables, so write ``name={{ person.name }}&email=...``).

``{{ x|tojson }}`` and ``{{ x|raw }}`` are written as they are (the admin takes
responsibility). EddyDesk writes its tags with single braces (``{link_staff}``,
``.../tickets/{customer.customer_id}/comments/``): ``{name}`` or ``{a.b}`` whose
first part is a token (``TAG_ROOTS``) is the same as ``{{ name }}``; any other
single-brace text is sent as written, and an unknown tag in the URL is refused
when the configuration is saved.
A JSON or XML body that does not parse after rendering is a
:class:`RenderError` (logged as a delivery error, never a crash).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote_plus, urlsplit, urlunsplit
from xml.sax.saxutils import escape as xml_escape

from defusedxml import ElementTree as SafeET
from django.conf import settings

from hub.redaction import is_secret_header
from hub.templating import (
    TEXT_KIND,
    URL_KIND,
    TemplateKind,
    TemplateRenderError,
    plain_text,
    template_compile,
    template_render,
)

CONTENT_TYPES = {
    "json": "application/json",
    "xml": "application/xml",
    "form": "application/x-www-form-urlencoded",
}
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Headers the engine sets itself; a template cannot override them.
RESERVED_HEADERS = {"host", "content-length", "webhook-id", "webhook-timestamp", "webhook-signature", "idempotency-key"}


# The request could not be built; ``reason`` says why in words an admin understands.
RenderError = TemplateRenderError


@dataclass
class RenderedRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""

    def as_text(self) -> str:
        """The request as it goes on the wire (for previews)."""
        lines = [f"{self.method} {self.url}"] + [f"{k}: {v}" for k, v in self.headers.items()]
        return "\n".join(lines) + "\n\n" + self.body


# ------------------------------------------------------------------ escaping


def _json_escape(value: Any) -> str:
    if isinstance(value, (dict, list, tuple, bool)):
        return plain_text(value)  # JSON already, written bare
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)[1:-1]


# One kind of template per part of the request (the URL's kind lives in the runtime: M8Com links share it).
KINDS: dict[str, TemplateKind] = {
    "url": URL_KIND,
    "header": TemplateKind("header", lambda v: _CONTROL.sub(" ", plain_text(v))),
    "json": TemplateKind("json", _json_escape),
    "xml": TemplateKind("xml", lambda v: xml_escape(plain_text(v), {'"': "&quot;", "'": "&apos;"})),
    "form": TemplateKind("form", lambda v: quote_plus(plain_text(v))),
    "text": TEXT_KIND,
}


# EddyDesk's {tag}: a single-brace name whose first part is a token of the hub's
# contexts. Anything else in single braces ({ viewer { login } }, GraphQL, a JS
# object, a receiver's own "Hello {name}" template) is literal text, and text
# inside {{ }}, {% %}, {# #} and {% raw %} blocks is never touched.
TAG_ROOTS = frozenset(
    {"person", "user", "customer", "customer_id", "remote_id", "event", "call", "brand", "hub", "link_staff"}
)
_SINGLE_BRACE_TAG = re.compile(r"(?<![{$\w])\{\s*([A-Za-z_]\w*(?:\.\w+)*)\s*\}(?!\})")
_JINJA_PARTS = re.compile(r"(\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}|\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})", re.S)


def _single_brace_names(source: str) -> list[str]:
    """Every ``{name}`` / ``{a.b}`` of a template outside Jinja's own syntax."""
    return [match.group(1) for text in _JINJA_PARTS.split(source)[::2] for match in _SINGLE_BRACE_TAG.finditer(text)]


def single_brace_tags(source: str) -> list[str]:
    """The EddyDesk tags of a template (outside Jinja's own syntax)."""
    return [name for name in _single_brace_names(source) if name.split(".")[0] in TAG_ROOTS]


@lru_cache(maxsize=2048)
def jinja_source(source: str) -> str:
    """EddyDesk's ``{tag}`` written as Jinja's ``{{ tag }}`` (known token names only)."""
    if "{" not in source:
        return source

    def tag(match: re.Match) -> str:
        name = match.group(1)
        return "{{ " + name + " }}" if name.split(".")[0] in TAG_ROOTS else match.group(0)

    parts = _JINJA_PARTS.split(source)
    for index in range(0, len(parts), 2):  # even items are plain text, odd ones Jinja's own
        parts[index] = _SINGLE_BRACE_TAG.sub(tag, parts[index])
    return "".join(parts)


def render_template(part: str, source: str, context: dict[str, Any], *, limit: int | None = None) -> str:
    """Render one template with the escaping of ``part`` (within the runtime's budget); raises RenderError."""
    if not source:
        return ""
    return template_render(kind=KINDS[part], source=jinja_source(source), context=context, limit=limit)


# ------------------------------------------------------------------ request


def token_context(context: dict[str, Any]) -> dict[str, Any]:
    """Deskpro uses ``user.`` as an alias of ``person.`` (its own example mixes
    them); EddyDesk's ``link_staff`` is the admin link to the customer, or to
    the stored event when no customer matched."""
    ctx = dict(context)
    if "person" in ctx:
        ctx.setdefault("user", ctx["person"])
    if "link_staff" not in ctx:
        for key in ("customer", "event"):
            value = ctx.get(key)
            if isinstance(value, dict) and value.get("admin_url"):
                ctx["link_staff"] = value["admin_url"]
                break
    return ctx


def header_lines(text: str) -> list[tuple[str, str]]:
    """Headers as ``Name: value`` lines, or as a JSON object ``{"Name": "value"}``
    (Deskpro: "additional headers ... must be in JSON format"); values may hold
    tags. Raises RenderError for a malformed line or object."""
    if text.lstrip().startswith("{"):
        return _json_headers(text)
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not HEADER_NAME.match(name):
            raise RenderError(f'Header line {number} is not "Name: value": {line[:80]!r}')
        pairs.append((name, value.strip()))
    return pairs


def _json_headers(text: str) -> list[tuple[str, str]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RenderError(
            f'The headers are not a valid JSON object ({exc}); write {{"Name": "value"}} or one "Name: value" per line.'
        ) from exc
    if not isinstance(data, dict):
        raise RenderError('The headers must be a JSON object {"Name": "value"} or "Name: value" lines.')
    pairs = []
    for name, value in data.items():
        if not HEADER_NAME.match(name):
            raise RenderError(f"{name[:80]!r} is not a valid header name.")
        if isinstance(value, (dict, list)) or value is None:
            raise RenderError(f"The value of header {name} must be text or a number.")
        if _CONTROL.search(plain_text(value)):
            raise RenderError(f"The value of header {name} contains a line break or another control character.")
        pairs.append((name, plain_text(value).strip()))
    return pairs


def check_body(body: str, body_format: str) -> None:
    if not body.strip():
        return
    if body_format == "json":
        try:
            json.loads(body)
        except ValueError as exc:
            raise RenderError(f"The data is not valid JSON after rendering: {exc}") from exc
    elif body_format == "xml":
        try:
            SafeET.fromstring(body)
        except Exception as exc:  # noqa: BLE001 - defusedxml raises several kinds
            raise RenderError(f"The data is not valid XML after rendering: {exc}") from exc


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise RenderError(f"The URL must be an http or https address with a host, got {url[:200]!r}.")


def auth_headers(config: Any) -> dict[str, str]:
    kind = getattr(config, "auth_type", "none")
    if kind == "basic":
        raw = f"{config.auth_username}:{config.auth_password or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    if kind == "bearer":
        return {"Authorization": f"Bearer {config.api_key or ''}"}
    if kind == "api_key":
        return {(config.api_key_header or "X-API-Key").strip(): config.api_key or ""}
    return {}


def render_request(config: Any, context: dict[str, Any]) -> RenderedRequest:
    """Build the exact request (method, URL, headers incl. auth, body) for a
    WebhookRequestConfig and a token context. Signature and message-id headers
    are added by the transport at send time. Raises RenderError with a reason."""
    ctx = token_context(context)
    url = render_template("url", config.url.strip(), ctx).strip()
    check_url(url)
    headers: dict[str, str] = {}
    for name, value_source in header_lines(config.headers or ""):
        if name.lower() in RESERVED_HEADERS:
            continue
        headers[name] = render_template("header", value_source, ctx, limit=8192).strip()
    body = render_template(config.body_format, config.body or "", ctx)
    check_body(body, config.body_format)
    if body and config.method == "GET" and config.body_format == "form":
        # Form data of a GET goes where servers read it: the query string.
        parts = urlsplit(url)
        data = body.strip().lstrip("?&")
        url = urlunsplit(parts._replace(query=f"{parts.query}&{data}" if parts.query else data))
        body = ""
    if body and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = CONTENT_TYPES[config.body_format]
    headers.update(auth_headers(config))
    return RenderedRequest(method=config.method, url=url, headers=headers, body=body)


SAMPLE_PERSON = {
    "id": 1,
    "customer_id": "C000001",
    "first_name": 'Jo "JJ"',
    "last_name": "<O'Brien> & Co\nLtd",
    "name": 'Jo "JJ" <O\'Brien> & Co\nLtd',
    "email": "jo@example.com",
    "phone": "+31612345678",
    "organizations": "Acme",
    "contact": {"whatsapp": "+31612345678"},
    "summary": "VIP",
    "timezone": "Europe/Amsterdam",
    "last_logged_in": "2026-01-01T10:00:00Z",
    "created_at": "2026-01-01T10:00:00Z",
    "updated_at": "2026-01-02T10:00:00Z",
    "custom_fields": {},
}
SAMPLE_CONTEXT = {"person": SAMPLE_PERSON, "remote_id": "R-1", "customer_id": "C000001", "event": "customer.updated"}


def _literal_host_problem(url: str) -> str | None:
    """Save-time SSRF check for a host written as an IP address or localhost (the
    send-time guard in transport.py checks every resolved address again)."""
    import ipaddress

    from hub.net import address_problem

    if settings.HUB_ALLOW_PRIVATE_DESTINATIONS or "{" in url.split("/")[2]:
        return None
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return "The URL cannot be parsed."
    if host == "localhost" or host.endswith(".localhost"):
        return "Webhooks may not call localhost (HUB_ALLOW_PRIVATE_DESTINATIONS is off)."
    try:
        problem = address_problem(ipaddress.ip_address(host))
    except ValueError:
        return None
    if problem:
        return f"Webhooks may only call public addresses; {host} is {problem}."
    return None


def _sample_problem(errors: dict[str, list[str]], name: str, render: Any) -> bool:
    """Run one sample render; a failure is the field's error."""
    try:
        render()
    except RenderError as exc:
        errors.setdefault(name, []).append(exc.reason + " (checked with sample values)")
        return True
    return False


def validate_config(config: Any, sample: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """Save-time checks (NetBox validate_jinja2_syntax): template syntax and
    secret-derived expressions, URL scheme, header lines, and a render of the
    URL, each header value and the body with sample values full of quotes,
    ``<``, ``&`` and newlines, within the runtime's budget (a looping template
    is refused in milliseconds, the save never hangs); the data must then be
    valid JSON / XML."""
    errors: dict[str, list[str]] = {}
    sample = token_context(sample or SAMPLE_CONTEXT)
    url = (config.url or "").strip()
    if not re.match(r"(?i)^https?://", url):
        errors.setdefault("url", []).append("The URL must start with http:// or https://.")
    elif problem := _literal_host_problem(url):
        errors.setdefault("url", []).append(problem)
    for name, part, source in (
        ("url", "url", url),
        ("headers", "header", config.headers or ""),
        ("body", config.body_format, config.body or ""),
    ):
        try:
            template_compile(kind=KINDS[part], source=jinja_source(source))
        except RenderError as exc:
            errors.setdefault(name, []).append(exc.reason)
        if name == "url":
            # Braces are not valid in a URL: a {name} that is not a token is a mistake, not text.
            unknown = [tag for tag in _single_brace_names(source) if tag.split(".")[0] not in sample]
            if unknown:
                errors.setdefault(name, []).append(
                    f"Unknown tag {{{unknown[0]}}}: a tag names a token such as {{customer.customer_id}} or "
                    f"{{{{ customer.customer_id }}}}; known: {', '.join(sorted(sample))}."
                )
    if "url" not in errors:
        _sample_problem(errors, "url", lambda: render_template("url", url, sample))
    try:
        lines = header_lines(config.headers or "")
    except RenderError as exc:
        errors.setdefault("headers", []).append(exc.reason)
    else:
        secret_names = [name for name, _ in lines if is_secret_header(name)]
        for _name, value in lines if "headers" not in errors else ():
            if _sample_problem(errors, "headers", lambda value=value: render_template("header", value, sample)):
                break
        if secret_names:
            errors.setdefault("headers", []).append(
                f"{secret_names[0]} carries a secret: set it under Authentication (bearer token, API key in a "
                "named header, or username and password), where it is encrypted and masked in every log and "
                "history, not in the plain headers."
            )
    if "body" not in errors:
        _sample_problem(
            errors,
            "body",
            lambda: check_body(render_template(config.body_format, config.body or "", sample), config.body_format),
        )
    timeout = getattr(config, "timeout_seconds", 10) or 0
    if not 1 <= timeout <= 30:
        errors.setdefault("timeout_seconds", []).append("Between 1 and 30 seconds.")
    if getattr(config, "auth_type", "none") == "api_key" and not (config.api_key_header or "").strip():
        errors.setdefault("api_key_header", []).append("Name the header that carries the API key.")
    return errors
