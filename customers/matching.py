"""Which customer a phone number belongs to: the brand's matching policy (issue 12).

One home for every path that turns a number into a customer: the Omnidesk and
M8Com lookups and the inbound events (M8Com call logs, service hooks). The
brand decides (hub.models.Brand, "Matching policy"):

- ``phone_address_types``: which address types count as a phone (default
  ``["telephone"]``; ``["telephone", "whatsapp"]`` finds a number stored as
  WhatsApp too);
- ``suffix_match_digits``: 0 (off) or N: when no customer holds the exact
  E.164 number, one whose number ends in the same last N digits (numbers
  stored without their country code);
- ``own_lines``: the brand's own numbers and prefixes (``+3120555*``): never
  looked up, so of M8Com's fromNumber / toNumber the other one is the customer.

Always: a number of 5 digits or fewer, written without ``+``/``00``, is an
internal extension and never looked up (a normal miss). Several customers
matching: the most recently updated one (Omnidesk gets them all, oldest first,
as its contract asks), and the answer log says how many matched.

The policy costs no query: it is read from the brand row the key check loaded,
and a match is one indexed statement (customers.selectors.phone_matches)
whatever the policy. A policy change goes through hub.services.brand_update,
which bumps the brand's generation: cached answers of the old policy are never
read again (hooks.inbound.lookup_cache).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from hub.models import Brand

from .models import Customer
from .normalize import InvalidAddress, digits_reversed, is_extension, normalize_phone
from .selectors import phone_matches


@dataclass(frozen=True)
class PhonePolicy:
    kinds: tuple[str, ...]
    suffix_digits: int
    own_numbers: frozenset[str]
    own_prefixes: tuple[str, ...]

    def is_own_line(self, number: str) -> bool:
        return number in self.own_numbers or number.startswith(self.own_prefixes)

    def suffix(self, number: str) -> str | None:
        """The last N digits of an E.164 number for suffix matching, or None (off,
        or the number has no more digits than that)."""
        if not self.suffix_digits:
            return None
        digits = digits_reversed("telephone", number)
        return digits[: self.suffix_digits][::-1] if len(digits) > self.suffix_digits else None


@functools.lru_cache(maxsize=1024)
def _policy(kinds: tuple[str, ...], suffix_digits: int, own_lines: tuple[str, ...]) -> PhonePolicy:
    return PhonePolicy(
        kinds=kinds,
        suffix_digits=suffix_digits,
        own_numbers=frozenset(line for line in own_lines if not line.endswith("*")),
        own_prefixes=tuple(line[:-1] for line in own_lines if line.endswith("*")),
    )


def phone_policy(brand: Brand) -> PhonePolicy:
    """The brand's policy, built once per distinct setting (no query)."""
    return _policy(
        tuple(brand.phone_address_types or ("telephone",)),
        int(brand.suffix_match_digits or 0),
        tuple(brand.own_lines or ()),
    )


def phone_for_lookup(value: str, region: str) -> str | None:
    """E.164 for a number to look up, None for an extension (5 digits or fewer)
    or a value that is no phone number."""
    if not (value or "").strip() or is_extension(value):
        return None
    try:
        return normalize_phone(value, region, strict=False)
    except InvalidAddress:
        return None


@dataclass(frozen=True)
class PhoneMatch:
    """The customers found for one number: ``rows`` (the selected columns of
    each; one row when only the chosen customer was asked for), the number that
    matched, whether only by its last digits, and how many customers matched."""

    rows: list[tuple]
    number: str
    suffix_digits: int
    count: int

    @property
    def row(self) -> tuple:
        return self.rows[0]

    def how(self, name: str) -> str:
        """For the answer log: "matched fromNumber by its last 9 digits"."""
        return f"matched {name}" + (f" by its last {self.suffix_digits} digits" if self.suffix_digits else "")

    def several(self, chosen: str) -> str:
        """For the answer log: "3 customers matched; most recently updated shown", or ""."""
        return f"{self.count} customers matched; {chosen}" if self.count > 1 else ""


# The documented rule for several customers with one number (docs/m8com-lookup.md).
MOST_RECENT = "most recently updated shown"


def phone_match(*, brand: Brand, numbers: Sequence[str], columns: str, first_only: bool = True) -> PhoneMatch | None:
    """The customer(s) of the brand for the first of the E.164 ``numbers`` that
    anyone holds: exact numbers first (in order), then, with suffix matching
    on, the numbers' last N digits (in order). Own lines are skipped. None when
    nothing matches. One indexed statement."""
    policy = phone_policy(brand)
    wanted: list[str] = []
    for number in numbers:
        if number and number not in wanted and not policy.is_own_line(number):
            wanted.append(number)
    suffixes: list[str] = []
    for number in wanted:
        suffix = policy.suffix(number)
        if suffix is not None and suffix not in suffixes:
            suffixes.append(suffix)
    rows = phone_matches(
        brand_id=brand.pk,
        kinds=policy.kinds,
        numbers=tuple(wanted),
        suffixes=tuple(suffixes),
        columns=columns,
        first_only=first_only,
    )
    if not rows:
        return None
    rank, count = rows[0][-2], rows[0][-1]
    kept = [row[:-2] for row in rows if row[-2] == rank]
    if rank < len(wanted):
        return PhoneMatch(rows=kept, number=wanted[rank], suffix_digits=0, count=count)
    suffix = suffixes[rank - len(wanted)]
    number = next(n for n in wanted if policy.suffix(n) == suffix)
    return PhoneMatch(rows=kept, number=number, suffix_digits=policy.suffix_digits, count=count)


def customer_for_phone(*, brand: Brand, value: str) -> Customer | None:
    """The customer a number (any spelling) belongs to under the brand's policy,
    for inbound events (call logs, service hooks): the same rules as the lookups."""
    number = phone_for_lookup(value, brand.default_region)
    if number is None:
        return None
    found = phone_match(brand=brand, numbers=[number], columns="id")
    if found is None:
        return None
    return Customer.objects.filter(brand=brand, pk=found.row[0]).first()
