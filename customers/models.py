"""Customer records: the customer, its addresses, custom fields and timeline."""

from __future__ import annotations

from django.db import models

from hub.models import Brand, validate_time_zone


class AddressKind(models.TextChoices):
    EMAIL = "email", "E-mail"
    TELEPHONE = "telephone", "Telephone"
    WHATSAPP = "whatsapp", "WhatsApp"
    FACEBOOK = "facebook", "Facebook"
    TWITTER = "twitter", "Twitter / X"
    INSTAGRAM = "instagram", "Instagram"
    LINKEDIN = "linkedin", "LinkedIn"
    TELEGRAM = "telegram", "Telegram"
    SNAPCHAT = "snapchat", "Snapchat"
    OTHER = "other", "Other"


class ActivityKind(models.TextChoices):
    NOTE = "NOTE", "Note"
    TASK = "TASK", "Task"
    CALL = "CALL", "Call"
    TICKET = "TICKET", "Ticket"
    DEAL = "DEAL", "Deal"
    APPOINTMENT = "APPOINTMENT", "Appointment"
    EVENT = "EVENT", "Event"


class Customer(models.Model):
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="customers")
    customer_id = models.CharField(
        "customer ID",
        max_length=100,
        help_text="The brand's primary id for this customer (klantnummer); Omnidesk customerID / primaryID.",
    )
    first_name = models.CharField("first name", max_length=150, blank=True)
    last_name = models.CharField("last name", max_length=150, blank=True)
    display_name = models.CharField(
        "display name", max_length=300, blank=True, help_text="M8Com displayName; derived from the names when blank."
    )
    company_name = models.CharField("company", max_length=200, blank=True, help_text="M8Com companyInfo.name.")
    job_title = models.CharField("job title", max_length=200, blank=True, help_text="M8Com companyInfo.title.")
    summary = models.TextField(
        "summary", blank=True, help_text="Free text about the customer (Deskpro person.summary)."
    )
    time_zone = models.CharField(
        "time zone",
        max_length=64,
        blank=True,
        validators=[validate_time_zone],
        help_text="The customer's own IANA time zone, e.g. Europe/Stockholm; blank: the brand's.",
    )
    avatar_url = models.URLField("avatar URL", max_length=500, blank=True, help_text="M8Com avatarUrl.")
    cover_photo_url = models.URLField("cover photo URL", max_length=500, blank=True, help_text="M8Com coverPhotoUrl.")
    more_info_url = models.URLField(
        "more-info URL", max_length=500, blank=True, help_text="M8Com moreInfoUrl: the customer's page in your CRM."
    )
    last_contact_at = models.DateTimeField(
        "last contact", null=True, blank=True, help_text="The last time a platform told the hub about this customer."
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)
    # Finished lookup answers, rebuilt by the services in the same transaction
    # as every change (customers.documents): the lookup hot path reads them as is.
    omnidesk_document = models.TextField(editable=False, default="{}")
    m8com_document = models.TextField(editable=False, default="{}")

    class Meta:
        ordering = ["brand", "last_name", "first_name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["brand", "customer_id"], name="customer_unique_brand_customer_id"),
        ]
        indexes = [models.Index(fields=["brand", "last_name", "first_name"], name="customer_brand_name")]

    def __str__(self) -> str:
        return f"{self.name or self.customer_id} ({self.customer_id})"

    @property
    def name(self) -> str:
        return self.display_name or " ".join(part for part in (self.first_name, self.last_name) if part)


class Address(models.Model):
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="+", editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="addresses")
    kind = models.CharField("type", max_length=20, choices=AddressKind.choices)
    value = models.CharField("address", max_length=254, help_text="As given, e.g. +31 6 1234 5678.")
    normalized = models.CharField(
        "normalized", max_length=254, editable=False, help_text="E.164 for phones, lower case for e-mail."
    )
    comment = models.CharField("comment", max_length=100, blank=True, help_text="e.g. Work, Personal (M8Com comment).")
    position = models.PositiveIntegerField("position", default=0)

    class Meta:
        ordering = ["customer", "position", "pk"]
        verbose_name_plural = "addresses"
        indexes = [models.Index(fields=["brand", "kind", "normalized"], name="address_lookup")]
        constraints = [
            models.UniqueConstraint(fields=["customer", "kind", "normalized"], name="address_unique_per_customer")
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.value}"


class CustomField(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="custom_fields")
    position = models.PositiveIntegerField("position", default=0)
    key = models.CharField("key", max_length=100, help_text="e.g. customerType (Omnidesk customFields).")
    value = models.TextField("value", blank=True)

    class Meta:
        ordering = ["customer", "position", "pk"]
        constraints = [models.UniqueConstraint(fields=["customer", "key"], name="customfield_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class Activity(models.Model):
    """One timeline entry; the type-specific fields follow the M8Com contract."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="activities")
    kind = models.CharField("type", max_length=12, choices=ActivityKind.choices)
    occurred_at = models.DateTimeField("occurred at", help_text="M8Com timestamp; Omnidesk lastUpdate.")
    external_id = models.CharField("external ID", max_length=200, blank=True, help_text="Omnidesk externalID.")
    source = models.CharField(
        "source", max_length=100, blank=True, help_text="Where it came from, e.g. hubspot, m8com."
    )
    header = models.CharField("header", max_length=300, blank=True)
    custom_header = models.CharField("custom header", max_length=300, blank=True)
    custom_description = models.CharField("custom description", max_length=300, blank=True)
    body = models.TextField("body", blank=True)
    link_url = models.URLField("link", max_length=1000, blank=True)
    markdown = models.BooleanField("markdown", default=False, help_text="The body is markdown (M8Com markdown: true).")
    associated_user = models.CharField("associated user", max_length=200, blank=True)
    # TASK
    due_date = models.DateTimeField("due date", null=True, blank=True)
    status = models.CharField("status", max_length=200, blank=True)
    done = models.BooleanField("done", null=True, blank=True)
    assigned_user = models.CharField("assigned user", max_length=200, blank=True)
    # CALL
    from_number = models.CharField("from number", max_length=100, blank=True)
    to_number = models.CharField("to number", max_length=100, blank=True)
    duration_ms = models.BigIntegerField("duration (ms)", null=True, blank=True)
    start_time = models.DateTimeField("start time", null=True, blank=True)
    # TICKET / DEAL
    created_date = models.DateTimeField("created date", null=True, blank=True)
    priority = models.CharField(
        "priority", max_length=6, blank=True, choices=[("HIGH", "High"), ("MEDIUM", "Medium"), ("LOW", "Low")]
    )
    pipeline = models.CharField("pipeline", max_length=200, blank=True)
    pipeline_stage = models.CharField("pipeline stage", max_length=200, blank=True)
    close_date = models.DateTimeField("close date", null=True, blank=True)
    currency = models.CharField("currency", max_length=10, blank=True)
    amount = models.DecimalField("amount", max_digits=18, decimal_places=2, null=True, blank=True)
    # APPOINTMENT
    start_date = models.DateTimeField("start date", null=True, blank=True)
    end_date = models.DateTimeField("end date", null=True, blank=True)
    all_day = models.BooleanField("all day", null=True, blank=True)
    venue = models.CharField("venue", max_length=300, blank=True)
    created_at = models.DateTimeField("recorded", auto_now_add=True)

    class Meta:
        ordering = ["customer", "-occurred_at", "-pk"]
        verbose_name_plural = "activities"
        indexes = [models.Index(fields=["customer", "kind", "-occurred_at"], name="activity_timeline")]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "source", "external_id"],
                condition=~models.Q(external_id=""),
                name="activity_unique_external_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.occurred_at:%Y-%m-%d %H:%M} {self.header or self.body[:40]}"
