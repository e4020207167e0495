"""Address normalization: E.164 phones (brand's default region), lower-cased e-mail."""

from __future__ import annotations

import re

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

PHONE_KINDS = {"telephone", "whatsapp"}
# Numbers of this many digits or fewer are internal extensions (issue 12): never looked up.
EXTENSION_MAX_DIGITS = 5
_SEPARATORS = re.compile(r"[\s.()\-]")


class InvalidAddress(ValueError):
    pass


def normalize_phone(value: str, region: str, *, strict: bool = True) -> str:
    """E.164 for any spelling of a number ("+46 70 123 45 67", "0612345678").

    strict: the number must be valid (storing); otherwise possible is enough
    (looking up — a miss costs nothing, a refusal would hide a customer).
    """
    text = (value or "").strip()
    if not text:
        raise InvalidAddress("A phone number is required.")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidAddress(f"{value!r} is not a phone number.") from exc
    ok = phonenumbers.is_valid_number(number) if strict else phonenumbers.is_possible_number(number)
    if not ok:
        raise InvalidAddress(f"{value!r} is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str) -> str:
    text = (value or "").strip()
    try:
        validate_email(text)
    except ValidationError as exc:
        raise InvalidAddress(f"{value!r} is not a valid e-mail address.") from exc
    return text.lower()


def normalize_address(kind: str, value: str, region: str) -> str:
    if kind == "email":
        return normalize_email(value)
    if kind in PHONE_KINDS:
        return normalize_phone(value, region)
    text = (value or "").strip()
    if not text:
        raise InvalidAddress("An address is required.")
    return text.lstrip("@").lower()


def is_extension(value: str) -> bool:
    """An internal extension ("201", "12 345"): 1 to 5 digits and nothing else but
    spaces, dashes, dots or brackets (``+31 612`` is a malformed number, not an extension)."""
    compact = _SEPARATORS.sub("", value or "")
    return compact.isascii() and compact.isdigit() and len(compact) <= EXTENSION_MAX_DIGITS


def digits_reversed(kind: str, normalized: str) -> str:
    """What Address.digits_reversed stores: a phone's E.164 digits backwards
    ("+31612345678" -> "87654321613"), "" for other address types. A suffix
    match on the last N digits is then a prefix match on an indexed column."""
    if kind not in PHONE_KINDS:
        return ""
    return "".join(char for char in reversed(normalized) if char.isdigit())
