"""Webhook sources: who made a Delivery, and how to get its request configuration back.

A Delivery does not point at its source model; it stores ``source_kind`` and
``source_id``. Each source kind registers a resolver here (CRM sync actions
register ``crm_action`` in :mod:`hooks.outbound.crm`, dispatcher rules
register ``rule``). Optional hooks let a source add tokens at send time,
drop a delivery as obsolete, or read the response.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Delivery, WebhookRequestConfig


class Obsolete(Exception):  # noqa: N818 - a verdict, not an error
    """Raised by a ``prepare`` hook: the delivery must not be sent; the message says why."""


@dataclass(frozen=True)
class Source:
    kind: str
    resolve: Callable[[int], WebhookRequestConfig | None]
    # prepare(delivery) -> extra tokens merged into the context at send time; may raise Obsolete.
    prepare: Callable[[Delivery], dict[str, Any]] | None = None
    # on_delivered(delivery, config, status, response_text) -> a note for the attempt log ("" for none).
    # It runs inside the transaction that records the attempt: wrap writes in transaction.atomic().
    on_delivered: Callable[[Delivery, Any, int, str], str] | None = None
    # prefetch(deliveries) -> None: read what prepare needs for a whole claimed batch at once (into memo()).
    prefetch: Callable[[list[Delivery]], None] | None = None


_sources: dict[str, Source] = {}


def register_source(
    kind: str,
    resolve: Callable[[int], WebhookRequestConfig | None],
    *,
    prepare: Callable[[Delivery], dict[str, Any]] | None = None,
    on_delivered: Callable[[Delivery, Any, int, str], str] | None = None,
    prefetch: Callable[[list[Delivery]], None] | None = None,
) -> None:
    """Register (or replace) a source kind. ``resolve(source_id)`` returns the
    current request configuration, or None when it was deleted or disabled (the
    delivery is then marked obsolete)."""
    _sources[kind] = Source(kind=kind, resolve=resolve, prepare=prepare, on_delivered=on_delivered, prefetch=prefetch)


def get_source(kind: str) -> Source | None:
    return _sources.get(kind)


# A memo that lives for one run of the engine (one django-q2 task): a source's
# configuration is read once per run, not once per delivery.
_run_memo: ContextVar[dict | None] = ContextVar("outbound_run_memo", default=None)


@contextmanager
def run_memo() -> Iterator[None]:
    token = _run_memo.set({})
    try:
        yield
    finally:
        _run_memo.reset(token)


def memo_put(key: tuple, value: Any) -> None:
    cache = _run_memo.get()
    if cache is not None:
        cache[key] = value


def memo(key: tuple, compute: Callable[[], Any]) -> Any:
    cache = _run_memo.get()
    if cache is None:
        return compute()
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def resolve(kind: str, source_id: int) -> Any:
    """The source's configuration (memoized for the current run), or None."""
    source = get_source(kind)
    if source is None:
        return None
    return memo(("resolve", kind, source_id), lambda: source.resolve(source_id))
