"""Lookup sources: a brand's upstream systems (CRM, ERP, billing) asked in order
when the hub's own store does not know the caller, and the log of every call.

A source's configuration change bumps its ``revision``, which is part of every
cache key of its answers (hooks.sources.cache): a changed URL, mapping or
secret never serves an answer fetched with the old one.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from hub.crypto import EncryptedTextField
from hub.models import ConfigHistory


class SourceKind(models.TextChoices):
    HTTP = "http", "HTTP (JSON answer)"


class SourceMethod(models.TextChoices):
    GET = "GET", "GET"
    POST = "POST", "POST"


class SourceAuth(models.TextChoices):
    NONE = "none", "None"
    BASIC = "basic", "Username and password (HTTP Basic)"
    BEARER = "bearer", "Bearer token"
    API_KEY = "api_key", "API key in a named header"


SECRET_FIELDS = ("auth_password", "api_key")
TIMEOUT_MS_MIN, TIMEOUT_MS_MAX = 50, 10_000
DAY = 24 * 3600


class LookupSource(models.Model):
    """One upstream system of a brand, asked on a lookup the hub's store cannot answer."""

    brand = models.ForeignKey(
        "hub.Brand",
        on_delete=models.CASCADE,
        related_name="lookup_sources",
        verbose_name="brand",
        help_text="The brand whose lookups may ask this source. Other brands' lookups never do.",
    )
    name = models.CharField("name", max_length=150, help_text="A recognizable name, e.g. 'CRM contacts'.")
    enabled = models.BooleanField("enabled", default=True, help_text="When off, lookups never ask this source.")
    order = models.PositiveSmallIntegerField(
        "order",
        default=10,
        help_text="Sources are asked in ascending order (in parallel mode: the lower order wins when several match).",
    )
    kind = models.CharField(
        "kind",
        max_length=10,
        choices=SourceKind.choices,
        default=SourceKind.HTTP,
        help_text="How the source is asked. HTTP: one request whose JSON answer is read with the mapping.",
    )
    method = models.CharField(
        "method",
        max_length=4,
        choices=SourceMethod.choices,
        default=SourceMethod.GET,
        help_text="GET (the usual search endpoint) or POST (a search with a JSON body).",
    )
    url = models.TextField(
        "URL",
        help_text="http(s) URL with tags, e.g. https://crm.example.com/api/contacts/search?phone={{ phone }}. "
        "Tags: {{ phone }} (E.164, +31612345678), {{ phone_national }} (0612345678), {{ email }}, "
        "{{ customer_id }}; values are percent-encoded. A source is asked only for the kinds of lookup its "
        "tags name. Never put secrets here: use Authentication.",
    )
    headers = models.TextField(
        "headers",
        blank=True,
        help_text='One "Name: value" per line; values may hold the tags. e.g. Accept: application/json',
    )
    body = models.TextField(
        "body (POST)",
        blank=True,
        help_text='POST only: a JSON body with tags written inside JSON strings, e.g. {"phone": "{{ phone }}"}. '
        "Values are JSON-escaped.",
    )
    auth_type = models.CharField(
        "authentication",
        max_length=10,
        choices=SourceAuth.choices,
        default=SourceAuth.NONE,
        help_text="How the hub signs in to the source: HTTP Basic, a bearer token or an API key header.",
    )
    auth_username = models.CharField(
        "username", max_length=200, blank=True, help_text="For username and password (HTTP Basic)."
    )
    auth_password = EncryptedTextField(
        "password", blank=True, help_text="For username and password. Encrypted; never shown again after saving."
    )
    api_key_header = models.CharField(
        "API key header",
        max_length=100,
        blank=True,
        default="X-API-Key",
        help_text="The header that carries the API key, e.g. X-API-Key.",
    )
    api_key = EncryptedTextField(
        "API key / bearer token",
        blank=True,
        help_text="The API key, or the token for bearer authentication. Encrypted; never shown again.",
    )
    verify_ssl = models.BooleanField(
        "SSL verification", default=True, help_text="Check the source's TLS certificate (https URLs)."
    )
    timeout_ms = models.PositiveIntegerField(
        "timeout (ms)",
        default=1000,
        validators=[MinValueValidator(TIMEOUT_MS_MIN), MaxValueValidator(TIMEOUT_MS_MAX)],
        help_text=f"How long one call may take, {TIMEOUT_MS_MIN} to {TIMEOUT_MS_MAX} ms; the brand's lookup "
        "budget may cut it shorter. A late answer is still kept in the cache for the next lookup.",
    )
    cache_seconds = models.PositiveIntegerField(
        "cache answers (s)",
        default=300,
        validators=[MaxValueValidator(DAY)],
        help_text="How long a found contact is served from the cache without asking the source again (0: never "
        "cached). At most one day.",
    )
    stale_seconds = models.PositiveIntegerField(
        "serve stale (s)",
        default=600,
        validators=[MaxValueValidator(DAY)],
        help_text="After the cache time, how long the old answer is still served at once while it is refreshed "
        "in the background (stale-while-revalidate; 0: off).",
    )
    negative_cache_seconds = models.PositiveIntegerField(
        "cache misses (s)",
        default=60,
        validators=[MaxValueValidator(DAY)],
        help_text="How long 'not found' is remembered before the source is asked again about the same value "
        "(0: never cached). Errors and timeouts are never cached.",
    )
    keep_as_customer = models.BooleanField(
        "keep matches as customers",
        default=False,
        help_text="Store a contact found here as a hub customer (tagged with this source), so call logs and "
        "service hooks attach to it and the next lookup is answered by the hub. Off by default.",
    )
    mapping = models.JSONField(
        "mapping",
        default=dict,
        help_text='JSONPath expressions read from the answer, e.g. {"record": "$.results[0]", "customer_id": '
        '"$.id", "first_name": "$.firstName", "last_name": "$.lastName", "email": "$.emails[*]", '
        '"phone": "$.phone", "company": "$.company.name", "job_title": "$.title", "custom_fields": {"tier": '
        '"$.tier"}, "activities": [{"type": "DEAL", "items": "$.deals[*]", "fields": {"header": "$.name", '
        '"amount": "$.amount", "closeDate": "$.closedAt"}}]}. "record" picks the matching contact (default $: '
        "the whole answer, or its first element when it is a list); the other paths are read from it. "
        "customer_id is required. See docs/lookup-sources.md.",
    )
    revision = models.PositiveIntegerField(
        "revision",
        default=1,
        editable=False,
        help_text="Counts saves; cached answers of an older revision are never served.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True, help_text="When the source was added.")
    updated_at = models.DateTimeField("updated", auto_now=True, help_text="The last time the source was saved.")
    history = ConfigHistory(secret_fields=SECRET_FIELDS, excluded_fields=("updated_at", "revision"))

    class Meta:
        ordering = ["brand__name", "order", "name"]
        verbose_name = "lookup source"
        constraints = [
            models.UniqueConstraint(fields=["brand", "name"], name="lookupsource_unique_brand_name"),
            models.CheckConstraint(
                condition=models.Q(timeout_ms__gte=TIMEOUT_MS_MIN) & models.Q(timeout_ms__lte=TIMEOUT_MS_MAX),
                name="lookupsource_timeout_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from .validation import source_errors

        super().clean()
        errors = source_errors(self)
        if errors:
            raise ValidationError(errors)


class CallOutcome(models.TextChoices):
    HIT = "hit", "Found"
    MISS = "miss", "Not found"
    TIMEOUT = "timeout", "Timed out"
    ERROR = "error", "Error"


class SourceCall(models.Model):
    """One request the hub made to a lookup source, masked before it is stored."""

    brand = models.ForeignKey(
        "hub.Brand",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name="brand",
        help_text="The brand whose lookup asked the source.",
    )
    source = models.ForeignKey(
        LookupSource,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="calls",
        verbose_name="source",
        help_text="The source asked (empty once it is deleted; its name is kept).",
    )
    source_name = models.CharField("source name", max_length=150, help_text="The source's name at the time.")
    started_at = models.DateTimeField("time", db_index=True, help_text="When the request started.")
    duration_ms = models.FloatField("duration (ms)", help_text="Until the answer was read or the call failed.")
    reason = models.CharField(
        "asked for",
        max_length=20,
        help_text="lookup (a platform call), refresh (stale answer renewed in the background) or test (admin).",
    )
    key_kind = models.CharField("looked up by", max_length=20, help_text="phone, email or customer_id.")
    key_value = models.CharField("value", max_length=254, help_text="The number, address or id looked up.")
    method = models.CharField("method", max_length=6, help_text="GET or POST.")
    url = models.TextField("URL (redacted)", help_text="The URL as sent, secrets replaced by ********.")
    request_headers = models.JSONField(
        "request headers (redacted)", default=dict, blank=True, help_text="Authorization and API keys masked."
    )
    request_body = models.TextField("request body (redacted)", blank=True, help_text="POST body, secrets masked.")
    response_status = models.PositiveSmallIntegerField(
        "response status", null=True, blank=True, help_text="The source's HTTP status; empty when none came."
    )
    response_body = models.TextField(
        "response body (redacted, bounded)", blank=True, help_text="The source's answer, secrets masked, cut at 16 KB."
    )
    outcome = models.CharField(
        "outcome",
        max_length=10,
        choices=CallOutcome.choices,
        db_index=True,
        help_text="Found (the mapping read a contact), not found, timed out or error (refused, TLS, bad JSON, 5xx).",
    )
    error = models.TextField("error", blank=True, help_text="Why the call failed, or what the mapping found wrong.")

    class Meta:
        ordering = ["-started_at", "-pk"]
        verbose_name = "lookup source call"
        indexes = [
            models.Index(fields=["brand", "-started_at"], name="sourcecall_brand_time"),
            models.Index(fields=["source", "-started_at"], name="sourcecall_source_time"),
        ]

    def __str__(self) -> str:
        return f"{self.source_name} {self.get_outcome_display()} @ {self.started_at:%Y-%m-%d %H:%M:%S}"


class KeptCustomer(models.Model):
    """A hub customer stored from a lookup source's answer (keep_as_customer): its tag."""

    brand_scope_path = "customer__brand"

    customer = models.OneToOneField(
        "customers.Customer",
        on_delete=models.CASCADE,
        related_name="kept_from",
        verbose_name="customer",
        help_text="The hub customer made from the answer.",
    )
    source = models.ForeignKey(
        LookupSource,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="kept_customers",
        verbose_name="source",
        help_text="The lookup source that found the contact.",
    )
    source_name = models.CharField("source name", max_length=150, help_text="The source's name at the time.")
    created_at = models.DateTimeField("kept", auto_now_add=True, help_text="When the customer was stored.")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "customer kept from a lookup source"
        verbose_name_plural = "customers kept from lookup sources"

    def __str__(self) -> str:
        return f"{self.customer} ← {self.source_name}"
