""" "Test a lookup": what a platform would get for a number, e-mail address or id,
with the trace of the chain (sources asked, timings, masked raw answers). Nothing
is kept as a customer; the sources' calls are logged with reason "test"."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from customers.normalize import InvalidAddress, normalize_email, normalize_phone

from . import chain
from .services import lookup_upstream
from .tags import LookupKey

PLATFORMS = (("omnidesk", "Omnidesk customer lookup"), ("m8com", "M8Com number lookup"))
KIND_CHOICES = (
    ("auto", "Guess from the value"),
    ("phone", "Phone number"),
    ("email", "E-mail address"),
    ("customer_id", "Customer ID (Omnidesk primaryID)"),
)


@dataclass
class Preview:
    platform: str
    key: LookupKey | None = None
    error: str = ""
    hub_found: int = 0
    hub_customer_pks: list[int] = field(default_factory=list)
    chain: chain.ChainResult | None = None
    status: int = 200
    body: str = ""
    elapsed_ms: float = 0.0


def key_guess(*, value: str, kind: str, region: str) -> LookupKey:
    """The lookup key for what the admin typed; raises InvalidAddress when it cannot be one."""
    value = value.strip()
    if kind == "auto":
        kind = "email" if "@" in value else "phone"
        if kind == "phone":
            try:
                return LookupKey("phone", normalize_phone(value, region, strict=False))
            except InvalidAddress:
                return LookupKey("customer_id", value)
    if kind == "email":
        return LookupKey("email", normalize_email(value))
    if kind == "phone":
        return LookupKey("phone", normalize_phone(value, region, strict=False))
    if not value:
        raise InvalidAddress("Type a customer ID.")
    return LookupKey("customer_id", value)


def _pretty(body: bytes | str) -> str:
    try:
        return json.dumps(orjson.loads(body), indent=2, ensure_ascii=False)
    except orjson.JSONDecodeError:
        return body.decode() if isinstance(body, bytes) else body


# The M8Com adapter adds the brand's links to a contact; it registers how (with its
# "no contact" body) when the URLs load it, so this app never imports an adapter.
# What each platform's adapter answers from the hub's store, registered by the
# adapters (hooks.inbound imports this app, never the other way round), so the
# page shows exactly what the lookup would: the same matching policy, the same bytes.
_answers: dict[str, dict[str, Any]] = {}


def m8com_answer_register(
    *, find: Callable[[Any, str], tuple[bytes | None, int | None, str]], contact_body: Callable, no_contact: dict
) -> None:
    """``find(brand, e164)``: (body or None, customer pk, note) as the M8Com lookup answers one number."""
    _answers["m8com"] = {"find": find, "contact_body": contact_body, "no_contact": no_contact}


def omnidesk_answer_register(*, find: Callable[[Any, str, str], tuple[bytes, int, int | None, str]]) -> None:
    """``find(brand, kind, value)``: (JSON array, count, customer pk, note) as the Omnidesk lookup answers."""
    _answers["omnidesk"] = {"find": find}


def lookup_preview(*, brand, platform: str, value: str, kind: str = "auto", use_cache: bool = True) -> Preview:
    preview = Preview(platform=platform)
    started = time.perf_counter()
    try:
        key = preview.key = key_guess(value=value, kind=kind, region=brand.default_region)
    except InvalidAddress as exc:
        preview.error = str(exc)
        return preview
    if platform == "m8com" and key.kind != "phone":
        preview.error = "M8Com looks up phone numbers only."
        return preview
    result = chain.ChainResult()
    if platform == "omnidesk":
        kind_name = {"customer_id": "primaryID", "phone": "telephone"}.get(key.kind, key.kind)
        body, count, customer_pk, _ = _answers["omnidesk"]["find"](brand, kind_name, key.value)
        preview.hub_found = count
        preview.hub_customer_pks = [customer_pk] if customer_pk else []
        if not count:
            answer = lookup_upstream(
                brand=brand, keys=[key], started=started, reason="test", use_cache=use_cache, keep=False, result=result
            )
            if answer is not None:
                body = answer.omnidesk_body()
        preview.body = _pretty(body)
    else:
        m8com = _answers["m8com"]
        found, customer_pk, _ = m8com["find"](brand, key.value)
        if found is not None:
            preview.hub_found = 1
            preview.hub_customer_pks = [customer_pk]
            preview.body = _pretty(found)
        else:
            answer = lookup_upstream(
                brand=brand, keys=[key], started=started, reason="test", use_cache=use_cache, keep=False, result=result
            )
            if answer is not None:
                preview.body = _pretty(m8com["contact_body"](brand, answer.m8com_row()))
            else:
                preview.status = 404
                preview.body = _pretty(orjson.dumps(m8com["no_contact"]))
    preview.chain = result
    preview.elapsed_ms = (time.perf_counter() - started) * 1000
    return preview


def attempt_rows(result: chain.ChainResult | None) -> list[dict[str, Any]]:
    """The chain's trace as rows for the page."""
    rows = []
    for attempt in result.attempts if result else []:
        fetched = attempt.fetched
        rows.append(
            {
                "source": attempt.spec.name,
                "key": f"{attempt.key.kind} {attempt.key.value}",
                "served": fetched.served if fetched else "",
                "outcome": attempt.outcome if not attempt.skipped else "skipped",
                "duration_ms": fetched.duration_ms if fetched else None,
                "status": fetched.status if fetched else None,
                "error": attempt.skipped or (fetched.error if fetched else ""),
                "url": fetched.url if fetched else "",
                "raw": _pretty(fetched.raw) if fetched and fetched.raw else "",
                "record": json.dumps(fetched.record, indent=2, ensure_ascii=False)
                if fetched and fetched.record
                else "",
                "matched": attempt.matched,
            }
        )
    return rows
