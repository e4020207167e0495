"""The Deskpro-style CRM sync as a webhook source (kind ``crm_action``).

* resolve: the action with its sync's authentication and signing secret laid
  over it (Deskpro sets authentication once per sync); None when the action or
  its sync is disabled or deleted.
* prepare: adds ``{{ remote_id }}`` (the id the CRM returned on create). An
  update or delete that needs the remote id (its templates use ``remote_id``)
  while none is known, and any delete after a create that failed, is dropped
  as obsolete (Deskpro: without the unique id "Deskpro cannot continue to push
  updates ... beyond the initial creation").
* on_delivered: after a create, the Unique ID Path (JSONPath such as ``$.id``)
  picks the remote id out of the response; after a delete, the mapping goes.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from hub.events import Event

from . import registry, services
from .models import CrmAction, CrmSyncAction, Delivery, DeliveryState, RemoteId

SOURCE_KIND = "crm_action"
AUTH_FIELDS = ("auth_type", "auth_username", "auth_password", "api_key_header", "api_key", "signing_secret")


def resolve(action_id: int) -> CrmSyncAction | None:
    action = CrmSyncAction.objects.select_related("sync").filter(pk=action_id).first()
    if action is None or not action.sync.enabled:
        return None
    if not action.enabled:
        return None
    for name in AUTH_FIELDS:
        setattr(action, name, getattr(action.sync, name))
    return action


def _uses_remote_id(action: CrmSyncAction) -> bool:
    return any("remote_id" in (text or "") for text in (action.url, action.headers, action.body))


def prepare(delivery: Delivery) -> dict[str, Any]:
    action = registry.resolve(SOURCE_KIND, delivery.source_id)
    if action is None or delivery.context.get("test"):
        return {"remote_id": _remote_id(action, delivery) if action else ""}
    remote_id = _remote_id(action, delivery)
    if action.action == CrmAction.CREATE or remote_id:
        return {"remote_id": remote_id}
    needs_remote_id = _uses_remote_id(action)
    if action.action == CrmAction.DELETE or needs_remote_id:
        failed_create = Delivery.objects.filter(
            order_key=delivery.order_key,
            pk__lt=delivery.pk,
            source_kind=SOURCE_KIND,
            event_type="customer.created",
            state__in=[DeliveryState.FAILED, DeliveryState.OBSOLETE],
        ).exists()
        if failed_create and action.action == CrmAction.DELETE:
            raise registry.Obsolete("the create for this customer failed, so there is nothing to delete in the CRM.")
        if needs_remote_id:
            reason = "the create failed" if failed_create else "no create response gave one"
            raise registry.Obsolete(f"no remote id is known for this customer ({reason}).")
    return {"remote_id": ""}


def _remote_id(action: CrmSyncAction, delivery: Delivery) -> str:
    customer_pk = delivery.customer_id
    assert customer_pk is not None  # CRM deliveries are always about one customer

    def fetch() -> str:
        found = (
            RemoteId.objects.filter(sync_id=action.sync_id, customer_pk=customer_pk)
            .values_list("remote_id", flat=True)
            .first()
        )
        return found or ""

    return registry.memo(("remote_id", action.sync_id, customer_pk), fetch)


def prefetch(deliveries: list[Delivery]) -> None:
    """The remote ids of a whole claimed batch in one query (refreshed for every batch)."""
    pairs = set()
    for delivery in deliveries:
        action = registry.resolve(SOURCE_KIND, delivery.source_id)
        if action is not None and delivery.customer_id is not None:
            pairs.add((action.sync_id, delivery.customer_id))
    if not pairs:
        return
    found = {
        (sync_id, customer_pk): remote_id
        for sync_id, customer_pk, remote_id in RemoteId.objects.filter(
            sync_id__in={p[0] for p in pairs}, customer_pk__in={p[1] for p in pairs}
        ).values_list("sync_id", "customer_pk", "remote_id")
    }
    for pair in pairs:
        registry.memo_put(("remote_id", *pair), found.get(pair, ""))


def on_delivered(delivery: Delivery, config: CrmSyncAction, status: int, text: str) -> str:
    if delivery.context.get("test"):
        return ""
    assert delivery.customer_id is not None  # CRM deliveries are always about one customer
    if config.action == CrmAction.DELETE:
        with transaction.atomic():
            RemoteId.objects.filter(sync_id=config.sync_id, customer_pk=delivery.customer_id).delete()
        return ""
    if config.action != CrmAction.CREATE:
        return ""
    if not config.unique_id_path:
        return "No unique ID path is set: updates and deletes cannot reach this record."
    remote_id = services.remote_id_from_response(path=config.unique_id_path, text=text)
    if remote_id is None:
        return f"The unique ID path {config.unique_id_path} matched nothing in the response."
    with transaction.atomic():
        services.remote_id_store(
            sync_id=config.sync_id,
            customer_pk=delivery.customer_id,
            customer_ref=str(delivery.context.get("customer_id", "")),
            remote_id=remote_id,
        )
    return f"Remote id {remote_id} stored."


def on_customer_event(event: Event) -> None:
    """hub.events subscriber for customer.created / updated / deleted."""
    services.crm_deliveries_create(
        brand_id=event.brand_id, event_type=event.event_type, data=event.data, customer_id=event.customer_id
    )


def register() -> None:
    from hub.events import subscribe

    registry.register_source(SOURCE_KIND, resolve, prepare=prepare, on_delivered=on_delivered, prefetch=prefetch)
    for event_type in ("customer.created", "customer.updated", "customer.deleted"):
        subscribe(event_type)(on_customer_event)
