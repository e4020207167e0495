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
