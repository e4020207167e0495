"""Tenants (brands), staff membership and inbound credentials."""

from __future__ import annotations

import ipaddress
import re
import zoneinfo

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction
from django.dispatch import receiver
from django.utils import timezone
from django.utils.crypto import salted_hmac
from simple_history.models import HistoricalRecords
from simple_history.signals import pre_create_historical_record

from .templating import LINK_KIND, link_budget, template_problems


def validate_region(value: str) -> None:
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationError(f"{value!r} is not a phone region code such as NL, SE or US.")


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{value!r} is not an IANA time zone such as Europe/Amsterdam.") from exc


def validate_networks(value: list) -> None:
    if not isinstance(value, list):
        raise ValidationError('A list of networks in CIDR notation, e.g. ["203.0.113.0/24"].')
    bad = []
    for item in value:
        try:
            ipaddress.ip_network(str(item), strict=False)
        except ValueError:
            bad.append(str(item))
    if bad:
        raise ValidationError(f"Not a network in CIDR notation: {', '.join(bad)}")


# Address types whose values are phone numbers (stored in E.164): the ones a
# brand may count as a phone for lookups (customers.normalize.PHONE_KINDS).
PHONE_ADDRESS_TYPES = ("telephone", "whatsapp")
_OWN_LINE = re.compile(r"^\+[1-9][0-9]{5,14}\*?$")


def validate_phone_address_types(value: list) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise ValidationError('A non-empty list of address types, e.g. ["telephone", "whatsapp"].')
    unknown = [item for item in value if item not in PHONE_ADDRESS_TYPES]
    if unknown:
        raise ValidationError(
            f"Not a phone address type: {', '.join(unknown)} (choose from {', '.join(PHONE_ADDRESS_TYPES)})."
        )
    if len(set(value)) != len(value):
        raise ValidationError("An address type appears twice.")


def validate_own_lines(value: list) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError('A list of numbers and prefixes in E.164, e.g. ["+31205550100", "+3120555*"].')
    bad = [item for item in value if not _OWN_LINE.match(item)]
    if bad:
        raise ValidationError(
            f"Not an E.164 number or prefix (+ and 6 to 15 digits, an optional * at the end): {', '.join(bad)}"
        )


def validate_suffix_digits(value: int) -> None:
    if value and not SUFFIX_MIN_DIGITS <= value <= SUFFIX_MAX_DIGITS:
        raise ValidationError(
            f"0 (off) or {SUFFIX_MIN_DIGITS} to {SUFFIX_MAX_DIGITS} digits; 5 digits or fewer are extensions."
        )


SUFFIX_MIN_DIGITS = 6
SUFFIX_MAX_DIGITS = 12


class SecretsHistory(models.Model):
    """Base of the historical models of configurations that hold secrets.

    The secret columns themselves are left out of the history. This column
    says instead which secrets were set, each with a short keyed fingerprint
    that changes when the value changes: the history shows *that* a password or
    token was replaced, by whom and when, and never the value.
    """

    secrets = models.CharField(
        "secrets",
        max_length=400,
        blank=True,
        editable=False,
        help_text="Which secrets were set at this version, each with a fingerprint that changes when the value "
        "changes; never the secret itself.",
    )

    class Meta:
        abstract = True


def secret_fingerprint(value: str) -> str:
    """8 hex digits of an HMAC keyed with SECRET_KEY: tells versions apart, reveals nothing."""
    return salted_hmac("hookhub.history.secret", value).hexdigest()[:8]


def secrets_summary(instance: models.Model, names: tuple[str, ...]) -> str:
    parts = []
    for name in names:
        value = getattr(instance, name, "") or ""
        field = instance._meta.get_field(name)
        assert isinstance(field, models.Field)  # names are the model's own secret fields, never relations
        label = field.verbose_name
        parts.append(f"{label}: set ({secret_fingerprint(value)})" if value else f"{label}: not set")
    return "; ".join(parts)


class ConfigHistory(HistoricalRecords):
    """django-simple-history for a configuration model whose ``secret_fields``
    never enter the history (only their fingerprints, see SecretsHistory)."""

    def __init__(self, *, secret_fields: tuple[str, ...] = (), excluded_fields: tuple[str, ...] = (), **kwargs):
        self.secret_fields = tuple(secret_fields)
        if self.secret_fields:
            kwargs["bases"] = [SecretsHistory]
        super().__init__(excluded_fields=[*excluded_fields, *self.secret_fields], **kwargs)

    def get_extra_fields(self, model, fields):
        return {**super().get_extra_fields(model, fields), "history_secret_fields": self.secret_fields}


@receiver(pre_create_historical_record)
def _history_records_secret_fingerprints(sender, instance, history_instance, **kwargs):
    names = getattr(history_instance, "history_secret_fields", ())
    if names:
        history_instance.secrets = secrets_summary(instance, names)


# What M8Com link templates see (hooks.inbound.m8com._template_context builds
# the real one and checks at import that its keys are these), with characters
# that must be escaped, so a link that only works for tidy data fails on save.
_TRICKY = 'Jo "JJ" <O\'Brien> & Co/?#'
LINK_SAMPLE_CONTEXT = {
    "customer": {
        "id": 1,
        "customer_id": "C000001",
        "first_name": 'Jo "JJ"',
        "last_name": "<O'Brien> & Co",
        "display_name": _TRICKY,
        "company_name": "Acme & Co",
        "job_title": "Buyer/CEO",
        "name": _TRICKY,
        "company": "Acme & Co",
        "email": "jo@example.com",
        "emails": ["jo@example.com"],
        "phone": "+31612345678",
        "phones": ["+31612345678"],
    }
}
MAX_LINKS = 20
_LINK_SCHEMES = ("http://", "https://", "mailto:", "tel:")


def link_template_problems(source: str) -> list[str]:
    """An M8Com link template checked on save: a scheme M8Com can open, syntax,
    and a render with sample values within the lookup's budget."""
    if not source.strip().lower().startswith(_LINK_SCHEMES):
        return ["A link must start with http://, https://, mailto: or tel:."]
    return template_problems(kind=LINK_KIND, source=source, sample=LINK_SAMPLE_CONTEXT, budget=link_budget())


def create_activity_url_problems(value: object) -> list[str]:
    if not isinstance(value, list):
        return ['A list of {"name": ..., "url": ...}.']
    if len(value) > MAX_LINKS:
        return [f"At most {MAX_LINKS} links."]
    problems = []
    for number, item in enumerate(value, start=1):
        if not isinstance(item, dict) or set(item) != {"name", "url"}:
            problems.append(f'Link {number}: write {{"name": ..., "url": ...}}.')
        elif not isinstance(item["name"], str) or not item["name"].strip() or not isinstance(item["url"], str):
            problems.append(f"Link {number}: a name and a url, both text.")
        else:
            problems.extend(f"Link {number} ({item['name']}): {p}" for p in link_template_problems(item["url"]))
    return problems


def default_phone_address_types() -> list[str]:
    return ["telephone"]


class Brand(models.Model):
    """A tenant: one company's customers, credentials and integrations."""

    name = models.CharField("name", max_length=200, help_text="The brand as your agents know it.")
    slug = models.SlugField(
        "slug",
        max_length=60,
        unique=True,
        help_text="Used in every platform URL, e.g. /hooks/omnidesk/<slug>/customerlookup.",
    )
    default_region = models.CharField(
        "default phone region",
        max_length=2,
        default="NL",
        validators=[validate_region],
        help_text="ISO country code used for phone numbers written without a country code (e.g. 0612345678).",
    )
    time_zone = models.CharField(
        "time zone",
        max_length=64,
        default="Europe/Amsterdam",
        validators=[validate_time_zone],
        help_text="IANA time zone; Omnidesk timeline times (lastUpdate) are shown in it.",
    )
    is_active = models.BooleanField(
        "active", default=True, help_text="An inactive brand answers every platform call with 404."
    )
    create_activity_urls = models.JSONField(
        "M8Com create-activity links",
        default=list,
        blank=True,
        help_text='M8Com createActivityUrls: a list of {"name": ..., "url": ...}; the url is a template '
        "with the customer's data, e.g. https://crm.example.com/customers/{{ customer.customer_id }}/notes/new.",
    )
    more_info_url_template = models.CharField(
        "more-info URL template",
        max_length=500,
        blank=True,
        help_text="Used for M8Com moreInfoUrl when a customer has no more-info URL of its own, "
        "e.g. https://crm.example.com/customers/{{ customer.customer_id }}.",
    )
    create_unknown_callers = models.BooleanField(
        "create customers for unknown callers",
        default=False,
        help_text="When M8Com logs a call from a number no customer has, create a customer for it.",
    )
    # The lookup chain (hooks.sources): upstream sources asked when the hub's store misses.
    lookup_budget_ms = models.PositiveIntegerField(
        "lookup budget (ms)",
        default=2000,
        validators=[MinValueValidator(100), MaxValueValidator(10_000)],
        help_text="The longest a lookup may spend asking the brand's lookup sources, in milliseconds "
        "(100 to 10,000). M8Com gives up after 3 seconds: keep it well under 3,000.",
    )
    lookup_parallel = models.BooleanField(
        "ask lookup sources in parallel",
        default=False,
        help_text="Off: sources are asked one after another, in their order. On: all at once; the answer still "
        "comes from the first source in order that matches, within the priority window.",
    )
    lookup_priority_window_ms = models.PositiveIntegerField(
        "priority window (ms)",
        default=200,
        validators=[MaxValueValidator(2000)],
        help_text="Parallel mode: when a later source matches first, how long (0 to 2,000 ms) to wait for an "
        "earlier source, which wins if it matches in time.",
    )
    # Matching policy (customers.matching): which customer a number belongs to.
    phone_address_types = models.JSONField(
        "address types that count as a phone",
        default=default_phone_address_types,
        validators=[validate_phone_address_types],
        help_text="A phone lookup (Omnidesk phoneNumber, M8Com numbers, call logs and service hooks) finds "
        'addresses of these types: ["telephone"] (default) or ["telephone", "whatsapp"] to find a number '
        "stored as WhatsApp too.",
    )
    suffix_match_digits = models.PositiveSmallIntegerField(
        "suffix matching (last N digits)",
        default=0,
        validators=[validate_suffix_digits],
        help_text=f"0: off (default). {SUFFIX_MIN_DIGITS} to {SUFFIX_MAX_DIGITS}: when no customer holds the exact "
        "E.164 number, one whose number ends in the same last N digits is found (for numbers stored without "
        "their country code), e.g. 9. Numbers of 5 digits or fewer are extensions and never looked up.",
    )
    own_lines = models.JSONField(
        "the brand's own lines",
        default=list,
        blank=True,
        validators=[validate_own_lines],
        help_text='Your own numbers and DID ranges in E.164, a trailing * for a prefix, e.g. ["+31205550100", '
        '"+3120555*"]. Such a number is never looked up: of an M8Com fromNumber / toNumber the other one is '
        "the customer, and a call log or service hook never matches a customer by it.",
    )
    # Bumped in the same transaction as every change to this brand, its keys and
    # its customers (hub.services.brand_touch, also written to hub.generations'
    # board before the commit); the credential and lookup caches are keyed by it
    # so they never serve stale data.
    generation = models.BigIntegerField(
        "generation",
        default=0,
        editable=False,
        help_text="Counts changes to the brand's customers; cached lookup answers of older generations are ignored.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True, help_text="When the brand was added.")
    history = HistoricalRecords(excluded_fields=["generation"])

    class Meta:
        ordering = ["name"]
        verbose_name = "brand"

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if not self._state.adding and kwargs.get("update_fields") is None:
            # The generation is only ever bumped (hub.services.brand_touch), never written
            # back from an instance loaded before other changes: that would let a later
            # bump land on a generation caches already hold entries for.
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name != "generation"
            ]
        # With its generation bump (hub.signals): both commit, or neither.
        with transaction.atomic(using=kwargs.get("using"), savepoint=False):
            super().save(*args, **kwargs)

    def clean(self) -> None:
        """The M8Com link templates run on the lookup hot path: refuse on save
        what would fail or stall there (admin form and config import)."""
        super().clean()
        errors: dict[str, list[str]] = {}
        if self.more_info_url_template:
            if problems := link_template_problems(self.more_info_url_template):
                errors["more_info_url_template"] = problems
        if problems := create_activity_url_problems(self.create_activity_urls):
            errors["create_activity_urls"] = problems
        if errors:
            raise ValidationError(errors)

class Role(models.TextChoices):
    ADMIN = "admin", "Admin (configures)"
    AUDITOR = "auditor", "Auditor (reads)"


class Membership(models.Model):
    """A staff user's role in one brand."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name="user",
        help_text="The staff user who gets the role (saving a membership makes the user staff).",
    )
    brand = models.ForeignKey(
        Brand,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name="brand",
        help_text="The brand the role applies to; the user sees nothing of other brands.",
    )
    role = models.CharField(
        "role",
        max_length=10,
        choices=Role.choices,
        default=Role.AUDITOR,
        help_text="Admin: configures the brand's CRM syncs, rules, keys and customers. Auditor: reads the "
        "brand's customers, configuration, history and logs, changes nothing and never sees a secret.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["brand__name", "user__username"]
        constraints = [models.UniqueConstraint(fields=["user", "brand"], name="membership_unique_user_brand")]

    def __str__(self) -> str:
        return f"{self.user} — {self.brand} ({self.role})"


class Integration(models.TextChoices):
    OMNIDESK = "omnidesk", "Omnidesk customer lookup"
    M8COM = "m8com", "M8Com number lookup and call logging"
    SERVICEHOOKS = "servicehooks", "Contact-center service hooks"


class CredentialQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class Credential(models.Model):
    """An inbound key for one brand and one integration.

    The secret is generated by the hub, shown once, and stored as a SHA-256
    hash (the secret has 256 bits of entropy, so a slow hash adds nothing).
    """

    brand = models.ForeignKey(
        Brand,
        on_delete=models.CASCADE,
        related_name="credentials",
        verbose_name="brand",
        help_text="The only brand this key opens; a key of brand A never sees brand B.",
    )
    integration = models.CharField(
        "integration",
        max_length=20,
        choices=Integration.choices,
        help_text="The platform that sends this key: Omnidesk (key in the query string), M8Com (Authorization: "
        "Bearer) or the contact-center service hooks (x-api-key header). A key works for one integration only.",
    )
    name = models.CharField(
        "name", max_length=100, blank=True, help_text="What this key is for, e.g. 'production 2026'."
    )
    prefix = models.CharField(
        "prefix", max_length=16, editable=False, help_text="The first characters of the key, to tell keys apart."
    )
    secret_hash = models.CharField(
        "secret hash",
        max_length=64,
        unique=True,
        editable=False,
        help_text="SHA-256 of the key; the key itself is shown once when issued and never stored.",
    )
    allowed_networks = models.JSONField(
        "allowed client networks",
        default=list,
        blank=True,
        validators=[validate_networks],
        help_text='Optional CIDR list, e.g. ["203.0.113.0/24"]. Calls from elsewhere get 403 even with '
        "the right key. Empty: any address.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True, help_text="When the key was issued.")
    last_used_at = models.DateTimeField(
        "last used", null=True, blank=True, editable=False, help_text="The last accepted call (to the minute)."
    )
    revoked_at = models.DateTimeField(
        "revoked",
        null=True,
        blank=True,
        editable=False,
        help_text="From this moment calls with the key get 403; other keys of the brand keep working.",
    )
    history = HistoricalRecords(excluded_fields=["secret_hash", "last_used_at"])

    objects = CredentialQuerySet.as_manager()

    class Meta:
        ordering = ["brand__name", "integration", "-created_at"]
        indexes = [models.Index(fields=["brand", "integration"], name="credential_brand_integration")]

    def __str__(self) -> str:
        return f"{self.get_integration_display()} key {self.prefix}… ({self.brand})"

    def save(self, *args, **kwargs):
        # With the brand's generation bump (hub.signals): both commit, or neither.
        with transaction.atomic(using=kwargs.get("using"), savepoint=False):
            super().save(*args, **kwargs)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def allows_address(self, address: str | None) -> bool:
        if not self.allowed_networks:
            return True
        return network_allows(self.allowed_networks, address)

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


def network_allows(networks: list, address: str | None) -> bool:
    if not networks:
        return True
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(str(net), strict=False) for net in networks)


slug_validator = RegexValidator(r"^[a-z0-9][a-z0-9-]*$", "Lower-case letters, digits and dashes.")
