"""factory-boy factories shared by the suite (one place: the apps are small)."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from customers.services import customer_create
from hub.models import Brand, Membership, Role
from hub.services import credential_issue


class BrandFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Brand
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Brand {n}")
    slug = factory.Sequence(lambda n: f"brand-{n}")
    default_region = "NL"
    time_zone = "Europe/Amsterdam"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@staff.example")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests")


def member(brand: Brand, role: str = Role.ADMIN, **kwargs):
    user = UserFactory(**kwargs)
    user.save()
    Membership.objects.create(user=user, brand=brand, role=role)
    return user


def credential(brand: Brand, integration: str, **kwargs) -> str:
    """Issue a key and return the clear secret."""
    return credential_issue(brand=brand, integration=integration, **kwargs)[1]


_customer_seq = iter(range(1, 10**9))


def customer(brand: Brand, **kwargs):
    """A customer made through the service, as every real write is."""
    n = next(_customer_seq)
    kwargs.setdefault("customer_id", f"C{n:06d}")
    kwargs.setdefault("first_name", "Test")
    kwargs.setdefault("last_name", f"Customer{n}")
    return customer_create(brand=brand, **kwargs)


# ---------------------------------------------------------------- one object of each admin model (issue 6)

_seq = iter(range(1, 10**9))


def crm_sync(brand: Brand, *, name: str = "", base_url: str = "https://crm.example.com", **fields):
    """A CRM sync with its Create / Update / Delete webhooks and stored secrets."""
    from hooks.outbound.models import CrmSync, CrmSyncAction

    fields.setdefault("auth_type", "bearer")
    fields.setdefault("api_key", f"token-{brand.slug}-{next(_seq)}")
    fields.setdefault("signing_secret", f"whsec_{brand.slug}signing{next(_seq)}")
    sync = CrmSync.objects.create(brand=brand, name=name or f"{brand.name} CRM", **fields)
    for action, method, url in (
        ("create", "POST", f"{base_url}/people"),
        ("update", "PUT", f"{base_url}/people/{{{{ remote_id }}}}"),
        ("delete", "DELETE", f"{base_url}/people/{{{{ remote_id }}}}"),
    ):
        CrmSyncAction.objects.create(
            sync=sync,
            action=action,
            enabled=True,
            method=method,
            url=url,
            body='{"name": "{{ person.name }}"}' if method != "DELETE" else "",
            unique_id_path="$.id" if action == "create" else "",
        )
    return sync


def remote_id(sync, customer_obj, value: str = ""):
    from hooks.outbound.models import RemoteId

    return RemoteId.objects.create(
        sync=sync,
        customer_pk=customer_obj.pk,
        customer_ref=customer_obj.customer_id,
        remote_id=value or f"remote-{sync.brand.slug}-{next(_seq)}",
    )


def event_rule(brand: Brand, *, name: str = "", **fields):
    from hooks.rules.models import EventRule

    fields.setdefault("event_types", ["conversation.abandoned"])
    fields.setdefault("conditions", {"all": []})  # as the form stores "always"
    fields.setdefault("url", "https://hooks.example.com/rule")
    fields.setdefault("body", '{"text": "{{ event.summary }}"}')
    fields.setdefault("auth_type", "basic")
    fields.setdefault("auth_username", "bot")
    fields.setdefault("auth_password", f"pw-{brand.slug}-{next(_seq)}")
    return EventRule.objects.create(brand=brand, name=name or f"{brand.name} rule", **fields)


def delivery(brand: Brand, *, source=None, state: str = "failed", **fields):
    """An outbox row (as the engine leaves it after giving up), for a CRM action or a rule."""
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from hooks.outbound.models import Delivery

    now = timezone.now()
    kind = "rule" if source is not None and source.__class__.__name__ == "EventRule" else "crm_action"
    fields.setdefault("event_type", "customer.updated")
    return Delivery.objects.create(
        brand=brand,
        source_kind=kind,
        source_id=source.pk if source is not None else 0,
        source_name=str(source) if source is not None else f"{brand.name} source",
        message_id=f"msg_{uuid.uuid4().hex}",
        state=state,
        attempts=1,
        last_status=500,
        deadline=now + timedelta(hours=1),
        **fields,
    )


def delivery_attempt(delivery_row, **fields):
    from django.utils import timezone

    from synclog.models import DeliveryAttempt

    fields.setdefault("method", "POST")
    fields.setdefault("url", "https://crm.example.com/people")
    fields.setdefault("response_status", 500)
    return DeliveryAttempt.objects.create(
        delivery=delivery_row, brand_id=delivery_row.brand_id, number=1, started_at=timezone.now(), **fields
    )


def inbound_event(brand: Brand, **fields):
    from django.utils import timezone

    from hooks.inbound.models import InboundEvent

    n = next(_seq)
    fields.setdefault("source", "servicehooks.abandoned-conversation")
    fields.setdefault("event_type", "conversation.abandoned")
    fields.setdefault("state", "failed")
    return InboundEvent.objects.create(
        brand=brand,
        idempotency_key=f"key-{brand.slug}-{n}",
        content_hash=f"{n:064d}",
        payload={"id": f"{brand.slug}-{n}"},
        received_at=timezone.now(),
        **fields,
    )


def inbound_request(brand: Brand, **fields):
    from django.utils import timezone

    from synclog.models import InboundRequest

    fields.setdefault("endpoint", "omnidesk.lookup")
    fields.setdefault("path", f"/hooks/omnidesk/{brand.slug}/customerlookup")
    return InboundRequest.objects.create(brand=brand, status=200, latency_ms=3.0, created_at=timezone.now(), **fields)


def lookup_source(brand: Brand, *, name: str = "", **fields):
    from hooks.sources.models import LookupSource

    fields.setdefault("url", "https://crm.example.com/contacts/search?phone={{ phone }}")
    fields.setdefault("mapping", {"record": "$.results[0]", "customer_id": "$.id", "first_name": "$.firstName"})
    return LookupSource.objects.create(brand=brand, name=name or f"{brand.name} CRM lookup", **fields)


def source_call(source, **fields):
    from django.utils import timezone

    from hooks.sources.models import SourceCall

    fields.setdefault("outcome", "hit")
    return SourceCall.objects.create(
        brand_id=source.brand_id,
        source=source,
        source_name=source.name,
        started_at=timezone.now(),
        duration_ms=12.0,
        reason="lookup",
        key_kind="phone",
        key_value="+31612345678",
        method="GET",
        url=source.url.replace("{{ phone }}", "%2B31612345678"),
        **fields,
    )


def kept_customer(source, customer_obj):
    from hooks.sources.models import KeptCustomer

    return KeptCustomer.objects.create(customer=customer_obj, source=source, source_name=source.name)
