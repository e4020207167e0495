"""The one home of secret masking: nothing a log, preview, export, history page,
error page or the console shows holds a secret (docs/security.md, "One
redaction module"; Saleor keeps every masking rule in one file the same way).

Two kinds of masking, both in :func:`mask`:

* **Known secrets** (a rule's token, a Basic password, an API key, a signing
  secret): masked in every form they take on the wire — as is, percent-encoded
  with and without ``safe`` characters (``quote``, ``quote(safe="")``,
  ``quote_plus``, what ``requests`` re-quotes), double-encoded, cut where a
  ``?`` or ``#`` ends a URL path, JSON-escaped (``\\uXXXX`` and ``\\/`` forms,
  and escaped twice: a JSON body echoed in a JSON string), XML/HTML-escaped and
  base64 (``Basic`` credentials are passed as their base64 ``user:password``,
  see :func:`config_secrets`). Hex digits and ``\\u`` escapes match in any case.
* **Patterns** for secrets nobody told us about: secret query parameters (a
  name written percent-encoded, ``k%65y=``, counts), ``Bearer`` / ``Basic``
  values, secret headers as ``Name: value`` lines or JSON members, URL
  userinfo and Telegram bot tokens in a path.

Save-time refusal of secrets typed into plain URL fields is here too
(:func:`url_secret_problem`), so what is refused and what is masked cannot
drift apart, and so are the logging filter and Django's error reporter.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import logging.config
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit
from xml.sax.saxutils import escape as xml_escape

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter
from requests.utils import requote_uri

MASK = "********"
# Shorter values are not masked as known secrets: masking "ab" everywhere would
# destroy the log while protecting nothing.
MIN_SECRET_LENGTH = 4
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


_EXACT_SECRET_NAMES = SECRET_PARAM_NAMES | SECRET_HEADER_NAMES


def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_HEADER_NAMES or "token" in lowered or "secret" in lowered or "password" in lowered


def is_secret_param(name: str) -> bool:
    """A query / form parameter whose value is a secret; ``k%65y`` and ``KEY`` are ``key``."""
    plain = name
    for _ in range(3):  # decode a name encoded twice or three times too, never loop unbounded
        if "%" not in plain and "+" not in plain:
            break
        plain = unquote_plus(plain)
    return plain.strip().lower() in SECRET_PARAM_NAMES


def is_secret_name(name: str) -> bool:
    """A JSON key or header name whose value is a secret."""
    return is_secret_param(str(name)) or is_secret_header(str(name))


# ------------------------------------------------------------------ known secrets

# The ``safe`` sets a secret is percent-encoded with on its way out: quote()'s
# default, nothing safe (the hub's own URL escaping), the characters requests
# leaves alone when it re-quotes a URL, and userinfo's.
_QUOTE_SAFE = ("/", "", "!#$%&'()*+,/:;=?@[]~", ":@")


def _url_forms(text: str) -> set[str]:
    forms = {quote(text, safe=safe) for safe in _QUOTE_SAFE} | {quote_plus(text), quote_plus(text, safe="/:")}
    forms.add(requote_uri(text))  # what requests sends (and names in its errors) for a raw value
    forms |= {quote(form, safe="") for form in forms}  # inside another URL's query value
    return forms


def _json_forms(text: str) -> set[str]:
    forms = set()
    for ascii_only in (True, False):
        inner = json.dumps(text, ensure_ascii=ascii_only)[1:-1]
        forms |= {inner, inner.replace("/", "\\/")}
    return forms


def _escaped_forms(text: str) -> set[str]:
    forms = {text, html.escape(text), xml_escape(text, {'"': "&quot;", "'": "&apos;"})}
    once = _json_forms(text)
    forms |= once
    for form in once:  # a JSON body echoed inside a JSON string (httpbin's "data")
        forms |= _json_forms(form)
    return forms


def secret_forms(secret: str) -> set[str]:
    """Every form ``secret`` can take on the wire (see the module docstring)."""
    bases = {secret, base64.b64encode(secret.encode()).decode()}
    # Written raw into a URL, a ? or # ends the path there: what comes before is what is sent.
    cut = re.split(r"[?#]", secret, maxsplit=1)[0]
    if len(cut) >= MIN_SECRET_LENGTH:
        bases.add(cut)
    encoded = set(bases)
    for base in bases:
        encoded |= _url_forms(base)
    forms: set[str] = set()
    for form in encoded:
        forms |= _escaped_forms(form)
    return {form for form in forms if form}


def _trie_regex(words: Iterable[str], depth: int = 8) -> str:
    """One regex for many literals: a trie over their first ``depth`` characters
    (shared prefixes tried once), then the rest of each word, longest first. A
    few thousand forms still cost about one pass over the text, and the nesting
    stays shallow whatever the length of a secret."""
    groups: dict[str, list[str]] = {}
    for word in {word.lower() for word in words}:
        groups.setdefault(word[:depth], []).append(word[depth:])

    def build(prefixes: list[str], level: int) -> str:
        branches = []
        by_char: dict[str, list[str]] = {}
        for prefix in prefixes:
            if len(prefix) == level:  # the prefix ends here: its words' rests follow
                rests = sorted(groups[prefix], key=len, reverse=True)
                branches.append("(?:" + "|".join(re.escape(rest) for rest in rests) + ")")
            else:
                by_char.setdefault(prefix[level], []).append(prefix)
        longer = [re.escape(char) + build(items, level + 1) for char, items in sorted(by_char.items())]
        alternatives = longer + branches  # a longer prefix first: the longest form wins
        return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"

    return build(sorted(groups), 0)


@lru_cache(maxsize=256)
def _known_pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    forms: set[str] = set()
    for secret in secrets:
        forms |= secret_forms(secret)
    if not forms:
        return None
    # Greedy, so the longest form at a position wins (a secret's encoded form over a
    # shorter secret inside it); hex digits and \u escapes match in any case.
    return re.compile(_trie_regex(forms), re.IGNORECASE)


def _known(secrets: Iterable[str]) -> re.Pattern[str] | None:
    return _known_pattern(frozenset(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH))


def mask_known(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each known secret masked in every encoding (no patterns)."""
    pattern = _known(secrets)
    return pattern.sub(MASK, text) if pattern is not None and text else text


def config_secrets(config: Any) -> list[str]:
    """The secrets of a request configuration (``auth_password``, ``api_key``,
    ``signing_secret``), plus the base64 ``user:password`` a Basic header carries."""
    values = [getattr(config, name, "") or "" for name in ("auth_password", "api_key", "signing_secret")]
    password = getattr(config, "auth_password", "") or ""
    if password:
        raw = f"{getattr(config, 'auth_username', '') or ''}:{password}".encode()
        values.append(base64.b64encode(raw).decode())
    return [value for value in values if len(value) >= MIN_SECRET_LENGTH]


# ------------------------------------------------------------------ patterns

# key=value pairs in free text (a URL, a form body, a log line); the name is
# checked by is_secret_param, so k%65y= is caught like key=.
_PARAM = re.compile(r"""(?:^|(?<=[?&;\s,("']))([A-Za-z0-9_.~%+\-]{1,64})=([^&\s"';]*)""")
_BEARER = re.compile(r"(?i)(?<![\w/.-])(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,20}://)([^/\s@?#\"'<>]+)@")
# A Telegram bot token in a path (/bot123456:ABC.../), written as is or percent-encoded.
_BOT_TOKEN = re.compile(r"(?i)/bot\d+(?::|%3A)[^/\s?#\"']+")
# "Name: value" header lines (an HTTP header, a history value, a log line).
_HEADER_LINE = re.compile(r"(?m)^([ \t]*([A-Za-z0-9_-]{1,100})[ \t]*:[ \t]*)([^\r\n]*)")
# "name": value members of JSON text: a string (escaped quotes included) or a bare value.
_JSON_MEMBER = re.compile(r'("((?:[^"\\\r\n]|\\.){1,100})"\s*:\s*)(?:"((?:[^"\\\r\n]|\\.)*)"?|([^\s",{}\[\]]+))')


def _param(match: re.Match) -> str:
    return f"{match.group(1)}={MASK}" if match.group(2) and is_secret_param(match.group(1)) else match.group(0)


def _header_line(match: re.Match) -> str:
    return f"{match.group(1)}{MASK}" if match.group(3) and is_secret_header(match.group(2)) else match.group(0)


def _json_member(match: re.Match) -> str:
    name, text, bare = match.group(2), match.group(3), match.group(4)
    # A string under any secret-looking name; a bare value (a number) only under
    # an exact secret name, so "token_count": 3 stays a number. The mask is
    # written as a string either way: the JSON stays valid.
    if (text and is_secret_name(name)) or (bare and bare != "null" and name.lower() in _EXACT_SECRET_NAMES):
        return f'{match.group(1)}"{MASK}"'
    return match.group(0)


def redact_text(text: str) -> str:
    """Pattern-based masking of free text: secret query parameters, Bearer / Basic
    values, secret header lines and JSON members, URL userinfo, bot tokens."""
    if not text:
        return text
    # Each pattern runs only when the text can hold it (it runs on every request log row).
    if '"' in text:
        text = _JSON_MEMBER.sub(_json_member, text)
    if ":" in text:
        text = _HEADER_LINE.sub(_header_line, text)
        if "@" in text:
            text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    lowered = text.lower()
    if "/bot" in lowered:
        text = _BOT_TOKEN.sub(f"/bot{MASK}", text)
    if "=" in text:
        text = _PARAM.sub(_param, text)
    if "bearer" in lowered or "basic" in lowered:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return text


def mask(text: str, *, secrets: Iterable[str] = ()) -> str:
    """THE masking function: ``text`` with every known secret masked in every
    encoding, then every pattern-recognised secret (see the module docstring).
    Every log, preview, export, history page and error page goes through it."""
    if not text:
        return text
    return redact_text(mask_known(text, secrets))


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
        out.append(f"{name}={MASK}" if is_secret_param(name) else part)
    return "&".join(out)


def redact_url(url: str, *, secrets: Iterable[str] = ()) -> str:
    """A URL with userinfo, secret query values, a bot token and known secrets masked."""
    if not url:
        return url
    url = mask_known(url, secrets)  # first: a pattern must not cut a known secret in two
    try:
        parts = urlsplit(url)
    except ValueError:  # not parseable as a URL: mask it as text
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    path = _BOT_TOKEN.sub(f"/bot{MASK}", parts.path)
    return urlunsplit((parts.scheme, netloc, path, redact_query(parts.query), parts.fragment))


def redact_headers(headers: Mapping[str, Any], *, secrets: Iterable[str] = ()) -> dict[str, str]:
    """Secret-named headers masked whole; every other value masked as text."""
    secrets = tuple(secrets)
    return {
        name: (MASK if is_secret_header(name) else mask(str(value), secrets=secrets))
        for name, value in dict(headers).items()
    }


def redact_json(value: Any, *, secrets: Iterable[str] = ()) -> Any:
    """Parsed JSON with the values of secret-named keys masked and every string masked as text."""
    secrets = tuple(secrets)
    if isinstance(value, dict):
        return {
            key: (MASK if is_secret_name(key) and item not in (None, "") else redact_json(item, secrets=secrets))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item, secrets=secrets) for item in value]
    if isinstance(value, str):
        return mask(value, secrets=secrets)
    return value


def redact_body(text: str, *, secrets: Iterable[str] = ()) -> str:
    """A stored body for display: JSON pretty-printed with secret-named keys
    masked; anything else masked as text."""
    if not text:
        return ""
    try:
        parsed = json.loads(text)
    except ValueError:
        return mask(text, secrets=secrets)
    if not isinstance(parsed, dict | list):
        return mask(text, secrets=secrets)
    return json.dumps(redact_json(parsed, secrets=secrets), indent=2, ensure_ascii=False)


def request_text(
    *,
    method: str,
    url: str,
    headers: Mapping[str, Any],
    body: str,
    secrets: Iterable[str] = (),
    engine_headers: Mapping[str, str] | None = None,
) -> str:
    """A request as it goes on the wire, masked, for previews: the request line,
    the headers (``engine_headers`` are placeholders the engine fills in when it
    sends, e.g. "(computed when sent)", shown as given), a blank line, the body."""
    secrets = tuple(secrets)
    shown = {**redact_headers(headers, secrets=secrets), **(engine_headers or {})}
    lines = [f"{method} {redact_url(url, secrets=secrets)}"] + [f"{k}: {v}" for k, v in shown.items()]
    return "\n".join(lines) + "\n\n" + mask(body, secrets=secrets)


# ------------------------------------------------------------------ refused on save

_TEMPLATE_PART = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}|\{[^{}]*\}", re.S)


def url_secret_problem(url: str, *, where_secrets_go: str) -> str | None:
    """Why a (template) URL typed into a plain field holds a secret, or None.

    Refused: userinfo (``https://user:pw@host``) and a secret-named query
    parameter (``?token=...``, ``?k%65y=...``) with a literal value. A template
    tag in their place (``?token={{ secrets.api_key }}``) is the right way and
    passes. ``where_secrets_go`` tells the admin which encrypted field to use."""
    literal = _TEMPLATE_PART.sub("", url or "")
    scheme, sep, rest = literal.partition("://")
    if not sep:
        return None
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority and authority.rsplit("@", 1)[0].replace(":", "").strip():
        return (
            "The URL carries a username or password (user:password@host). Plain fields are shown to auditors "
            f"and kept in the history: {where_secrets_go}"
        )
    query = rest.partition("?")[2].partition("#")[0]
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if value.strip() and is_secret_param(name):
            return (
                f"The URL carries a secret in the query parameter {name!r}. Plain fields are shown to auditors "
                f"and kept in the history: {where_secrets_go}"
            )
    return None


# ------------------------------------------------------------------ error pages


class RedactingExceptionReporterFilter(SafeExceptionReporterFilter):
    """``DEFAULT_EXCEPTION_REPORTER_FILTER``: Django's error page (DEBUG) and error
    e-mails hide settings and request headers named like secrets (Authorization
    too), and mask every other text value with :func:`mask` (a key in the query
    string, a password in a URL setting)."""

    hidden_settings = re.compile("API|TOKEN|KEY|SECRET|PASS|SIGNATURE|AUTH|COOKIE", flags=re.IGNORECASE)

    def cleanse_setting(self, key, value):
        value = super().cleanse_setting(key, value)
        return mask(value) if isinstance(value, str) else value


class RedactingExceptionReporter(ExceptionReporter):
    """``DEFAULT_EXCEPTION_REPORTER``: what Django's reporter shows unfiltered — the
    request URL and query parameters, the exception text and the local variables
    of each frame (a variable named like a secret, ``password``, ``token``, ``key``,
    hidden whole) — masked as well."""

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        for frame in data.get("frames", []):
            frame["vars"] = [
                (name, MASK if is_secret_name(name) else mask(str(value))) for name, value in frame.get("vars", [])
            ]
        if "request_GET_items" in data:
            data["request_GET_items"] = [
                (name, MASK if is_secret_param(name) else mask(str(value))) for name, value in data["request_GET_items"]
            ]
        if data.get("request_insecure_uri"):
            data["request_insecure_uri"] = redact_url(str(data["request_insecure_uri"]))
        if data.get("exception_value"):
            data["exception_value"] = mask(str(data["exception_value"]))
        return data


# ------------------------------------------------------------------ logging


class RedactingFilter(logging.Filter):
    """Logging filter: no key, token or password reaches a log handler (the
    development server's and gunicorn's access logs and tracebacks included)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is still logged, unredacted args dropped
            message = str(record.msg)
        redacted = redact_text(message)
        if redacted != message or record.args:
            record.msg = redacted
            record.args = None
        if record.exc_info and not record.exc_text:
            # The formatter uses exc_text when it is set: the traceback is masked too.
            record.exc_text = redact_text(self._formatter.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


# Loggers whose handlers a server sets up itself (not from settings.LOGGING).
SERVER_LOGGERS = ("gunicorn.access", "gunicorn.error")


def configure_logging(config: dict[str, Any]) -> None:
    """``settings.LOGGING_CONFIG``: ``dictConfig(LOGGING)`` (whose console handler
    redacts), then a :class:`RedactingFilter` on gunicorn's own loggers, which
    keep gunicorn's handlers (``--access-logfile``) and so bypass the console's."""
    logging.config.dictConfig(config)
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(item, RedactingFilter) for item in logger.filters):
            logger.addFilter(RedactingFilter())
