"""Address normalization: E.164 phones (brand's default region), lower-cased e-mail."""

from __future__ import annotations

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

PHONE_KINDS = {"telephone", "whatsapp"}


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
