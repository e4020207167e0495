"""Every form a secret can take on the wire, built by the tests themselves (never
by hub.redaction), so a form the implementation forgets is a form a test finds.

The secrets are chosen to hit every escaping rule: a Telegram bot token (``:``
``/`` ``+`` ``=``), one with ``&`` ``%`` ``"`` ``\\`` and non-ASCII letters.
"""

from __future__ import annotations

import base64
import html
import json
import re
from urllib.parse import quote, quote_plus, urlencode
from xml.sax.saxutils import escape as xml_escape

from requests.utils import requote_uri

TELEGRAM_TOKEN = "123456789:AAH-x_y/z+w="
WEIRD_TOKEN = 'tok&en%41"q\\uote/ünï+ =?#'
BASIC_USER = "svc"
BASIC_PASSWORD = 'bä$ic:pw/+=&"\\%'
API_KEY = 'ak_live/+=&%22x"y\\z'  # latin-1 only: it travels in an HTTP header
CRM_PASSWORD = "crm-pä55:w/rd+&="

_PERCENT = re.compile(r"%[0-9A-F]{2}")


def _lower_hex(text: str) -> str:
    return _PERCENT.sub(lambda m: m.group(0).lower(), text)


def basic_credentials(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def encodings(secret: str, *, user: str | None = None) -> dict[str, str]:
    """{name of the form: the form} for one secret (forms equal to another are kept once)."""
    forms = {
        "as is": secret,
        "quote": quote(secret),
        "quote safe=''": quote(secret, safe=""),
        "quote lower-case hex": _lower_hex(quote(secret, safe="")),
        "quote as requests re-quotes": quote(secret, safe="!#$%&'()*+,/:;=?@[]~"),
        "quote_plus": quote_plus(secret),
        "form-encoded": urlencode({"v": secret})[2:],
        "double-encoded": quote(quote(secret, safe=""), safe=""),
        "JSON": json.dumps(secret)[1:-1],
        "JSON non-ASCII kept": json.dumps(secret, ensure_ascii=False)[1:-1],
        "JSON \\/": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "JSON \\u upper-case": re.sub(
            r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), json.dumps(secret)[1:-1]
        ),
        "JSON inside a JSON string": json.dumps(json.dumps(secret)[1:-1])[1:-1],
        "requests' requote_uri": requote_uri(secret),
        "XML": xml_escape(secret, {'"': "&quot;", "'": "&apos;"}),
        "HTML": html.escape(secret),
        "base64": base64.b64encode(secret.encode()).decode(),
        "URL userinfo": f"https://user:{quote(secret, safe='')}@",
        "query value": f"?x={quote_plus(secret)}&",
    }
    if user is not None:
        forms["Basic credentials"] = basic_credentials(user, secret)
    unique: dict[str, str] = {}
    for name, form in forms.items():
        if form not in unique.values():
            unique[name] = form
    return unique


# A generated signing secret is "whsec_" + base64, whose first character is "/" one time in 64: the
# prefix alone is then a "piece", but it is the format's public name (shown in help texts), not secret.
PUBLIC_PREFIXES = frozenset({"whsec_"})


def fragments(secret: str) -> dict[str, str]:
    """The pieces of a secret between ``/`` and ``:`` (4 characters or more), as is
    and percent-encoded: what a mask that cut the secret in two would leave."""
    pieces = [
        piece
        for piece in re.split(r"[/:]", secret)
        if len(piece) >= 4 and piece != secret and piece not in PUBLIC_PREFIXES
    ]
    forms = {}
    for piece in pieces:
        forms[f"fragment {piece!r}"] = piece
        forms[f"fragment {piece!r} encoded"] = quote(piece, safe="")
    return forms


def found_in(text: str, secret: str, *, user: str | None = None) -> list[str]:
    """The names of the forms of ``secret`` (and of its fragments) present in ``text``
    (percent-encoded and \\u forms compared in any case, as receivers write hex either way)."""
    lowered = text.lower()
    found = []
    for name, form in {**encodings(secret, user=user), **fragments(secret)}.items():
        loose = "%" in form or "\\u" in form
        if (form.lower() in lowered) if loose else (form in text):
            found.append(name)
    return found
