"""Customer records: the customer, its addresses, custom fields and timeline."""

from __future__ import annotations

from django.db import models

from hub.models import Brand, validate_time_zone

from .normalize import digits_reversed

# Address.digits_reversed: E.164 has at most 15 digits; room to spare.
DIGITS_REVERSED_MAX_LENGTH = 32


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
    brand = models.ForeignKey(
        Brand,
        on_delete=models.CASCADE,
        related_name="customers",
        verbose_name="brand",
        help_text="The brand the customer belongs to; only that brand's keys find it.",
    )
    customer_id = models.CharField(
        "customer ID",
        max_length=100,
        help_text="The brand's primary id for this customer (klantnummer); Omnidesk customerID / primaryID.",
    )
    first_name = models.CharField(
        "first name", max_length=150, blank=True, help_text="Omnidesk customerFirstname; Deskpro person.first_name."
    )
    last_name = models.CharField(
        "last name", max_length=150, blank=True, help_text="Omnidesk customerLastname; Deskpro person.last_name."
    )
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
    created_at = models.DateTimeField("created", auto_now_add=True, help_text="When the hub stored the customer.")
    updated_at = models.DateTimeField("updated", auto_now=True, help_text="The last change to the customer.")
    # Finished lookup answers, rebuilt by the services in the same transaction
    # as every change (customers.documents): the lookup hot path reads them as is.
    omnidesk_document = models.TextField(
        "Omnidesk answer",
        editable=False,
        default="{}",
        help_text="The Omnidesk customer lookup answer for this customer, rebuilt on every change.",
    )
    m8com_document = models.TextField(
        "M8Com answer",
        editable=False,
        default="{}",
        help_text="The M8Com number lookup contact card for this customer, rebuilt on every change.",
    )

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
    brand = models.ForeignKey(
        Brand,
        on_delete=models.CASCADE,
        related_name="+",
        editable=False,
        verbose_name="brand",
        help_text="The customer's brand (copied so a lookup is one indexed query).",
    )
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="addresses",
        verbose_name="customer",
        help_text="The customer this address reaches.",
    )
    kind = models.CharField(
        "type",
        max_length=20,
        choices=AddressKind.choices,
        help_text="Omnidesk address type: email, telephone, or a social channel. Phones are looked up by "
        "their E.164 form, e-mail case-insensitively.",
    )
    value = models.CharField("address", max_length=254, help_text="As given, e.g. +31 6 1234 5678.")
    normalized = models.CharField(
        "normalized", max_length=254, editable=False, help_text="E.164 for phones, lower case for e-mail."
    )
    digits_reversed = models.CharField(
        "digits reversed",
        max_length=DIGITS_REVERSED_MAX_LENGTH,
        blank=True,
        default="",
        editable=False,
        help_text="A phone's E.164 digits backwards (blank for other types): the brand's suffix matching on the "
        "last N digits is a prefix match on this indexed column.",
    )
    comment = models.CharField("comment", max_length=100, blank=True, help_text="e.g. Work, Personal (M8Com comment).")
    position = models.PositiveIntegerField(
        "position", default=0, help_text="Order in the lookup answers; the first phone and e-mail are the main ones."
    )

    class Meta:
        ordering = ["customer", "position", "pk"]
        verbose_name_plural = "addresses"
        indexes = [
            models.Index(fields=["brand", "kind", "normalized"], name="address_lookup"),
            models.Index(fields=["brand", "kind", "digits_reversed"], name="address_suffix_lookup"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["customer", "kind", "normalized"], name="address_unique_per_customer")
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.value}"

    def save(self, *args, **kwargs):
        # Every single-row write (the admin's inline) keeps the suffix column with
        # the number; the bulk writers set it in customers.services.addresses_clean.
        self.digits_reversed = digits_reversed(self.kind, self.normalized)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "normalized" in update_fields:
            kwargs["update_fields"] = {*update_fields, "digits_reversed"}
        super().save(*args, **kwargs)


class CustomField(models.Model):
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="custom_fields",
        verbose_name="customer",
        help_text="The customer the field describes.",
    )
    position = models.PositiveIntegerField("position", default=0, help_text="Order in the Omnidesk customFields list.")
    key = models.CharField("key", max_length=100, help_text="e.g. customerType (Omnidesk customFields).")
    value = models.TextField(
        "value", blank=True, help_text="Sent as text, e.g. unlimited; rules test it as customer.customFields.<key>."
    )

    class Meta:
        ordering = ["customer", "position", "pk"]
        constraints = [models.UniqueConstraint(fields=["customer", "key"], name="customfield_unique_key")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class Activity(models.Model):
    """One timeline entry; the type-specific fields follow the M8Com contract."""

    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="activities",
        verbose_name="customer",
        help_text="Whose timeline the entry is on.",
    )
    kind = models.CharField(
        "type",
        max_length=12,
        choices=ActivityKind.choices,
        help_text="M8Com activity type; decides which of the fields below are shown.",
    )
    occurred_at = models.DateTimeField("occurred at", help_text="M8Com timestamp; Omnidesk lastUpdate.")
    external_id = models.CharField("external ID", max_length=200, blank=True, help_text="Omnidesk externalID.")
    source = models.CharField(
        "source", max_length=100, blank=True, help_text="Where it came from, e.g. hubspot, m8com."
    )
    header = models.CharField(
        "header",
        max_length=300,
        blank=True,
        help_text="M8Com header: appended to the type, e.g. Note - \u201cPrevious contact\u201d.",
    )
    custom_header = models.CharField(
        "custom header",
        max_length=300,
        blank=True,
        help_text="M8Com customHeader: replaces the whole header, type included.",
    )
    custom_description = models.CharField(
        "custom description",
        max_length=300,
        blank=True,
        help_text="M8Com customDescription: replaces the default heading of the body.",
    )
    body = models.TextField(
        "body", blank=True, help_text="The text shown; Omnidesk timeline message. Markdown when marked so."
    )
    link_url = models.URLField(
        "link", max_length=1000, blank=True, help_text="M8Com link: when set, the header links here."
    )
    markdown = models.BooleanField("markdown", default=False, help_text="The body is markdown (M8Com markdown: true).")
    associated_user = models.CharField(
        "associated user", max_length=200, blank=True, help_text="M8Com associatedUser (notes), e.g. an agent e-mail."
    )
    # TASK
    due_date = models.DateTimeField("due date", null=True, blank=True, help_text="Task: M8Com dueDate.")
    status = models.CharField(
        "status",
        max_length=200,
        blank=True,
        help_text="Task or appointment status text; a done task shows a checkmark instead.",
    )
    done = models.BooleanField(
        "done", null=True, blank=True, help_text="Task or deal is done (M8Com shows a green checkmark)."
    )
    assigned_user = models.CharField("assigned user", max_length=200, blank=True, help_text="Task: M8Com assignedUser.")
    # CALL
    from_number = models.CharField("from number", max_length=100, blank=True, help_text="Call: the caller.")
    to_number = models.CharField("to number", max_length=100, blank=True, help_text="Call: the callee.")
    duration_ms = models.BigIntegerField(
        "duration (ms)", null=True, blank=True, help_text="Call: duration in milliseconds (M8Com duration)."
    )
    start_time = models.DateTimeField(
        "start time", null=True, blank=True, help_text="Call: when it started (M8Com startTime)."
    )
    # TICKET / DEAL
    created_date = models.DateTimeField(
        "created date", null=True, blank=True, help_text="Ticket or deal: M8Com createdDate."
    )
    priority = models.CharField(
        "priority",
        max_length=6,
        blank=True,
        choices=[("HIGH", "High"), ("MEDIUM", "Medium"), ("LOW", "Low")],
        help_text="Ticket: M8Com priority; LOW when empty.",
    )
    pipeline = models.CharField(
        "pipeline", max_length=200, blank=True, help_text="Ticket or deal: heading shown above the pipeline stage."
    )
    pipeline_stage = models.CharField(
        "pipeline stage", max_length=200, blank=True, help_text="Ticket or deal: the stage, e.g. Negotiation."
    )
    close_date = models.DateTimeField("close date", null=True, blank=True, help_text="Deal: M8Com closeDate.")
    currency = models.CharField("currency", max_length=10, blank=True, help_text="Deal: currency, e.g. EUR.")
    amount = models.DecimalField(
        "amount", max_digits=18, decimal_places=2, null=True, blank=True, help_text="Deal: its value."
    )
    # APPOINTMENT
    start_date = models.DateTimeField("start date", null=True, blank=True, help_text="Appointment: start.")
    end_date = models.DateTimeField("end date", null=True, blank=True, help_text="Appointment: end.")
    all_day = models.BooleanField("all day", null=True, blank=True, help_text="Appointment: covers the whole day.")
    venue = models.CharField("venue", max_length=300, blank=True, help_text="Appointment: where it takes place.")
    created_at = models.DateTimeField("recorded", auto_now_add=True, help_text="When the hub stored the entry.")

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
