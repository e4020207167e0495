"""Writes of the lookup chain: the answer to a platform from the brand's sources,
keeping a match as a hub customer, the call log, and keeping caches right when
a source changes."""

from __future__ import annotations

import logging
import threading
import zoneinfo
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.signals import post_delete, post_save, pre_save

from customers import documents
from customers.models import Customer
from customers.selectors import M8COM_COLUMNS
from customers.services import customer_create
from hub.services import brand_touch

from . import chain, selectors
from .mapping import customer_data, customer_input, usable_input
from .models import KeptCustomer, LookupSource
from .records import flush_here
from .tags import LookupKey

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- the answer


@dataclass
class UpstreamAnswer:
    """A contact found by a lookup source, in the forms the adapters need."""

    result: chain.ChainResult
    built: Built
    customer_pk: int | None  # set when the match was kept as a hub customer

    @property
    def note(self) -> str:
        return self.result.note

    def omnidesk_body(self) -> bytes:
        """Omnidesk: the JSON array with the one element, as a stored customer's."""
        return self.built.omnidesk_body

    def m8com_row(self) -> tuple:
        """M8Com: what customers.selectors.m8com_contact_by_phones gives for a stored
        customer (M8COM_COLUMNS + the contact), for the adapter's links."""
        return (self.customer_pk, *self.built.m8com_row)


@dataclass(frozen=True)
class Built:
    """The platform answers made from one record (shared, read-only)."""

    omnidesk_body: bytes
    m8com_row: tuple  # M8COM_COLUMNS without "id", then the contact document


_built: OrderedDict[tuple, Built] = OrderedDict()
_built_lock = threading.Lock()
BUILT_SIZE = 4096


def answer_build(*, brand, data: dict[str, Any]) -> Built:
    """Both platforms' answers for usable customer_create arguments, by customers.documents."""
    customer = customer_data(data, brand=brand)
    tz = zoneinfo.ZoneInfo(brand.time_zone)
    omnidesk = b"[" + documents.dumps(documents.omnidesk_element(customer, tz)).encode() + b"]"
    columns = tuple(getattr(customer.customer, name) for name in M8COM_COLUMNS if name != "id")
    return Built(omnidesk_body=omnidesk, m8com_row=(*columns, documents.dumps(documents.m8com_contact(customer))))


def _answer(brand, found: chain.ChainResult, keep: bool) -> UpstreamAnswer:
    attempt = found.match
    assert attempt is not None
    fetched = attempt.fetched
    assert fetched is not None and fetched.record is not None
    spec = attempt.spec
    memo_key = (spec.id, spec.revision, attempt.key, fetched.fetched_at, brand.pk, brand.generation)
    built = _built.get(memo_key) if fetched.fetched_at else None
    data = None
    if built is None or (keep and spec.keep_as_customer):
        data = usable_input(customer_input(fetched.record, source_name=spec.name), brand=brand)
    if built is None:
        assert data is not None
        built = answer_build(brand=brand, data=data)
        with _built_lock:
            _built[memo_key] = built
            while len(_built) > BUILT_SIZE:
                _built.popitem(last=False)
    customer_pk = None
    if keep and spec.keep_as_customer:
        assert data is not None
        customer_pk = customer_keep(brand=brand, spec=spec, data=data)
    return UpstreamAnswer(result=found, built=built, customer_pk=customer_pk)


def lookup_upstream(
    *,
    brand,
    keys: list[LookupKey],
    started: float | None = None,
    reason: str = "lookup",
    use_cache: bool = True,
    keep: bool = True,
    result: chain.ChainResult | None = None,
) -> UpstreamAnswer | None:
    """The brand's sources asked about ``keys`` (in preference order) after the hub's
    store missed; None when none matches (or the brand has no sources: no query then
    either, see selectors.sources_for_brand). A cached record's answers are built
    once per process (the memo above), so a repeat costs a cache read."""
    if not keys:  # nothing the sources could be asked (an extension, the brand's own line)
        return None
    specs = selectors.sources_for_brand(brand=brand)
    if not specs:
        return None
    found = chain.run(brand=brand, specs=specs, keys=keys, started=started, reason=reason, use_cache=use_cache)
    if result is not None:
        result.__dict__.update(found.__dict__)
    try:
        if found.match is None:
            return None
        return _answer(brand, found, keep)
    finally:
        flush_here()


def customer_keep(*, brand, spec: chain.SourceSpec, data: dict[str, Any]) -> int | None:
    """keep_as_customer: the match stored as a hub customer (through customers.services,
    so events and CRM syncs follow), tagged with its source. A customer with the same
    customer ID already in the hub is left alone. Returns the customer's pk, or None."""
    try:
        with transaction.atomic():
            customer = customer_create(brand=brand, **data)
            KeptCustomer.objects.create(customer=customer, source_id=spec.id, source_name=spec.name[:150])
    except (ValidationError, IntegrityError) as exc:
        logger.info("Lookup source %s: match not kept as a customer: %s", spec.name, exc)
        existing = Customer.objects.filter(brand=brand, customer_id=data["customer_id"]).values_list("pk", flat=True)
        return existing.first()
    return customer.pk


# ---------------------------------------------------------------- configuration changes


def _source_pre_save(sender, instance: LookupSource, **kwargs) -> None:
    # A new revision on every save: cached answers of the old configuration are never served.
    if instance.pk:
        instance.revision = (instance.revision or 0) + 1


def _source_changed(sender, instance: LookupSource, **kwargs) -> None:
    # The brand's generation keys the per-process list of its sources (selectors).
    brand_touch(brand_id=instance.brand_id)


def connect_signals() -> None:
    pre_save.connect(_source_pre_save, sender=LookupSource, dispatch_uid="sources-revision")
    post_save.connect(_source_changed, sender=LookupSource, dispatch_uid="sources-changed")
    post_delete.connect(_source_changed, sender=LookupSource, dispatch_uid="sources-deleted")
