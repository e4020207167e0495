"""Inbound event interpreters: what a stored event means, per source.

The shared accept path (hooks.inbound.services / common) stores every event
raw and then asks the source's registered :class:`Interpreter`; it never
imports an adapter. Each adapter module (one per contract) registers its
sources when the app is ready (hooks.inbound.apps), the way outbound sources
register with hooks.outbound.registry.

An interpreter has two functions:

- ``identify(payload) -> str``: the event's identity for idempotency (e.g. the
  payload's id), "" when it has none (the content hash is used then). It runs
  before storage, so it must accept ANY JSON value and never raise (the accept
  path falls back to the content hash if it does anyway).
- ``interpret(payload) -> Interpretation``: runs after storage. It raises
  :class:`Unreadable` for fields it cannot read (the event is then kept as
  ``invalid``); any other exception marks the event ``failed``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Unreadable(ValueError):  # noqa: N818 - a verdict on a payload, not a program error
    """The stored payload's fields cannot be read: {field name: [why]}."""

    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in fields.items()))
        self.fields = fields


@dataclass
class Interpretation:
    """What a stored payload means for the hub (built by the contract's adapter module)."""

    event_type: str
    summary: str
    event: dict[str, Any]
    call: dict[str, Any] | None = None
    # Where to look for the customer, in order: ("phone" | "customer_id" | "email", value).
    lookups: list[tuple[str, str]] = field(default_factory=list)
    # M8Com: the CRM-side number a customer is created for when the brand asks for it.
    create_number: str = ""
    # customers.services.activity_record arguments (kind, occurred_at, fields).
    activity: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Interpreter:
    source: str
    event_type: str
    interpret: Callable[[Any], Interpretation]
    identify: Callable[[Any], str]


_interpreters: dict[str, Interpreter] = {}


def register_interpreter(
    source: str,
    *,
    event_type: str,
    interpret: Callable[[Any], Interpretation],
    identify: Callable[[Any], str],
) -> None:
    """Register (or replace) the interpreter of an event source (an EventSource value)."""
    _interpreters[str(source)] = Interpreter(
        source=str(source), event_type=event_type, interpret=interpret, identify=identify
    )


def interpreter_for(source: str) -> Interpreter:
    """The registered interpreter; a missing one is a programming error (KeyError)."""
    return _interpreters[str(source)]
