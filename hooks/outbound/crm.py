"""The Deskpro-style CRM sync as a webhook source (kind ``crm_action``).

* resolve: the action with its sync's signing secret, and the sync's
  authentication unless the tab sets its own (Deskpro lists authentication on
  every tab); None when the action or its sync is disabled or deleted.
* prepare: adds ``{{ remote_id }}`` (the id the CRM returned on create). An
  update or delete that needs the remote id (its templates use ``remote_id``)
  while none is known, and any delete after a create that failed, is dropped
  as obsolete (Deskpro: without the unique id "Deskpro cannot continue to push
  updates ... beyond the initial creation").
* on_delivered: after a create, the Unique ID Path (JSONPath such as ``$.id``)
  picks the remote id out of the response; after a delete, the mapping goes.

And the CRM sync's writes: one Delivery per enabled action for each customer
event (in the event's transaction, ordered per sync and customer), the
per-transaction cache of the brands' actions, remote ids, the admin's "Send a
test" and signing-secret generation.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from hub.events import Event

from . import registry
from .engine import attempt, claim, clock, outbox
from .models import CRM_EVENT_ACTIONS, CrmAction, CrmSync, CrmSyncAction, Delivery, DeliveryState, RemoteId
from .transport import signing_secret_new

SOURCE_KIND = "crm_action"
# The authentication a tab may set for itself (else the sync's applies).
TAB_AUTH_FIELDS = ("auth_type", "auth_username", "auth_password", "api_key_header", "api_key")


def action_with_auth(action: CrmSyncAction) -> CrmSyncAction:
    """The action as it is sent: the sync's authentication laid over it unless the
    tab uses its own (``use_sync_auth`` off); the sync's signing secret always."""
    if action.use_sync_auth:
        for name in TAB_AUTH_FIELDS:
            setattr(action, name, getattr(action.sync, name))
    action.signing_secret = action.sync.signing_secret
    return action


def resolve(action_id: int) -> CrmSyncAction | None:
    action = CrmSyncAction.objects.select_related("sync").filter(pk=action_id).first()
    if action is None or not action.sync.enabled:
        return None
    if not action.enabled:
        return None
    return action_with_auth(action)


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
    remote_id = remote_id_from_response(path=config.unique_id_path, text=text)
    if remote_id is None:
        return f"The unique ID path {config.unique_id_path} matched nothing in the response."
    with transaction.atomic():
        remote_id_store(
            sync_id=config.sync_id,
            customer_pk=delivery.customer_id,
            customer_ref=str(delivery.context.get("customer_id", "")),
            remote_id=remote_id,
        )
    return f"Remote id {remote_id} stored."


def on_customer_event(event: Event) -> None:
    """hub.events subscriber for customer.created / updated / deleted."""
    crm_deliveries_create(
        brand_id=event.brand_id, event_type=event.event_type, data=event.data, customer_id=event.customer_id
    )


def crm_order_key(sync_id: int, customer_pk: int) -> str:
    return f"crmsync:{sync_id}:{customer_pk}"


def crm_context(*, event_type: str, customer: dict, changed: list | None = None) -> dict:
    """The Deskpro tokens: person.* (user.* is an alias), customer_id, event, changed."""
    return {
        "person": customer,
        "customer_id": customer.get("customer_id", ""),
        "event": event_type,
        "changed": list(changed or []),
    }


class _TransactionCrmActions:
    """The brands' enabled actions of enabled CRM syncs, read once per atomic block.

    A bulk import emits one event per customer inside one transaction; reading
    the actions for each would cost a query per customer (most brands have no
    CRM sync at all), as the rules dispatcher's cache avoids for rules. The
    cache serves only the atomic block (transaction or savepoint) that filled
    it: it holds the connection's on-commit list, which Django replaces on
    every commit, rollback and savepoint rollback, and the stack of savepoint
    ids, which differs in any other block. So it never outlives a transaction,
    a sync created in a rolled-back savepoint is forgotten with it, and a
    service call that opens its own atomic block reads afresh. Saving or
    deleting a CrmSync or CrmSyncAction (admin, config import, cascades) clears
    it through the signals below, so an action created in the same block as
    later events is seen by them. QuerySet.update() and bulk_create() on those
    models send no signals: code that uses them in the same atomic block as
    customer events it emits afterwards must call :func:`crm_actions_forget`
    (none does today).
    """

    __slots__ = ("by_brand", "hooks", "savepoint_ids")

    def __init__(self, hooks: list, savepoint_ids: list) -> None:
        self.hooks = hooks  # connection.run_on_commit when it was filled
        self.savepoint_ids = savepoint_ids
        self.by_brand: dict[int, list[CrmSyncAction]] = {}


_crm_actions_local = threading.local()


def _crm_actions_cache() -> _TransactionCrmActions | None:
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        return None
    cache = getattr(_crm_actions_local, "cache", None)
    if cache is None or cache.hooks is not connection.run_on_commit or cache.savepoint_ids != connection.savepoint_ids:
        cache = _TransactionCrmActions(connection.run_on_commit, list(connection.savepoint_ids))
        _crm_actions_local.cache = cache
    return cache


def crm_actions_forget(**kwargs: Any) -> None:
    """Drop the cached CRM sync actions of the current transaction (they changed)."""
    _crm_actions_local.cache = None


def crm_actions_for(*, brand_id: int) -> list[CrmSyncAction]:
    """Every enabled action of the brand's enabled CRM syncs (cached for the transaction)."""
    cache = _crm_actions_cache()
    actions = cache.by_brand.get(brand_id) if cache is not None else None
    if actions is None:
        actions = list(
            CrmSyncAction.objects.filter(sync__brand_id=brand_id, sync__enabled=True, enabled=True)
            .select_related("sync")
            .only("pk", "action", "sync__id", "sync__name")
        )
        if cache is not None:
            cache.by_brand[brand_id] = actions
    return actions


def crm_deliveries_create(*, brand_id: int, event_type: str, data: dict, customer_id: int | None) -> list[Delivery]:
    """customer.created/updated/deleted → one Delivery per enabled matching action
    of the brand's enabled CRM syncs, in the caller's transaction (outbox)."""
    action = CRM_EVENT_ACTIONS.get(event_type)
    customer: dict[str, Any] = data.get("customer") or {}
    if action is None or not customer:
        return []
    actions = [item for item in crm_actions_for(brand_id=brand_id) if item.action == action]
    if not actions:
        return []
    customer_pk = customer_id or customer.get("id")
    assert customer_pk is not None  # customer events carry the customer's pk (customers.services.customer_event_emit)
    context = crm_context(event_type=event_type, customer=customer, changed=data.get("changed"))
    return outbox.deliveries_create(
        deliveries=[
            outbox.delivery_build(
                brand_id=brand_id,
                source_kind="crm_action",
                source_id=item.pk,
                source_name=f"{item.sync.name} — {item.get_action_display()}",
                event_type=event_type,
                context=context,
                customer_id=customer_pk,
                order_key=crm_order_key(item.sync.pk, customer_pk),
            )
            for item in actions
        ]
    )


def remote_id_store(*, sync_id: int, customer_pk: int, customer_ref: str, remote_id: str) -> RemoteId:
    obj, _ = RemoteId.objects.update_or_create(
        sync_id=sync_id, customer_pk=customer_pk, defaults={"remote_id": remote_id, "customer_ref": customer_ref}
    )
    return obj


def remote_id_from_response(*, path: str, text: str) -> str | None:
    import jsonpath

    try:
        document = json.loads(text)
    except ValueError:
        return None
    match = jsonpath.match(path, document)
    if match is None or match.obj is None or isinstance(match.obj, (dict, list)):
        return None
    return str(match.obj)


def crm_sync_test_delivery(*, action: CrmSyncAction, customer_snapshot: dict) -> Delivery:
    """Admin "Send a test": a delivery outside the customer's order, sent at once."""
    event_types: dict[str, str] = {value: key for key, value in CRM_EVENT_ACTIONS.items()}
    event_type = event_types[action.action]
    context = crm_context(event_type=event_type, customer=customer_snapshot)
    context["test"] = True
    delivery = outbox.delivery_build(
        brand_id=action.sync.brand_id,
        source_kind=SOURCE_KIND,
        source_id=action.pk,
        source_name=f"{action.sync.name} — {action.get_action_display()} (test)",
        event_type="test",
        context=context,
        customer_id=customer_snapshot.get("id"),
    )
    delivery.deadline = delivery.next_attempt_at = clock.now()  # one attempt, never retried
    delivery.save(force_insert=True)
    claimed = claim.delivery_claim(delivery_id=delivery.pk)
    if claimed is not None:
        attempt.delivery_attempt(delivery=claimed)
    delivery.refresh_from_db()
    return delivery


def crm_sync_set_signing_secret(*, sync: CrmSync) -> str:
    """Generate a Standard Webhooks secret (transport.signing_secret_new); returned once."""
    secret = signing_secret_new()
    sync.signing_secret = secret
    sync.save(update_fields=["signing_secret", "updated_at"])
    return secret


def register() -> None:
    from hub.events import subscribe

    registry.register_source(SOURCE_KIND, resolve, prepare=prepare, on_delivered=on_delivered, prefetch=prefetch)
    for model in (CrmSync, CrmSyncAction):
        post_save.connect(crm_actions_forget, sender=model, dispatch_uid=f"crm-actions-forget-save-{model.__name__}")
        post_delete.connect(
            crm_actions_forget, sender=model, dispatch_uid=f"crm-actions-forget-delete-{model.__name__}"
        )
    for event_type in ("customer.created", "customer.updated", "customer.deleted"):
        subscribe(event_type)(on_customer_event)
