"""Inbound events: every call log and service hook, stored raw before anything else.

M8Com "Automatic Call Logging" and the contact-center service hooks
(AbandonedConversation, OutboundCall, WorkItemClosed) post events; each one is
saved as an :class:`InboundEvent` first (the body as received, nothing read
from it yet: nothing accepted is ever lost), then interpreted: matched to a
customer, put on the timeline, emitted on the event bus. docs/inbound-events.md
"""

from __future__ import annotations

from django.db import models


class EventSource(models.TextChoices):
    M8COM_CALLLOG = "m8com.calllog", "M8Com call logging"
    ABANDONED_CONVERSATION = "servicehooks.abandoned-conversation", "Service hook: abandoned conversation"
    OUTBOUND_CALL = "servicehooks.outbound-call", "Service hook: outbound call"
    WORKITEM_CLOSED = "servicehooks.workitem-closed", "Service hook: work item closed"


class EventState(models.TextChoices):
    RECEIVED = "received", "Received (not processed yet)"
    PROCESSED = "processed", "Processed (on the customer's timeline)"
    UNMATCHED = "unmatched", "Processed, no customer matched"
    INVALID = "invalid", "Stored, fields could not be read (needs attention)"
    FAILED = "failed", "Processing failed (can be reprocessed)"


# Interpreted: the answer is 200. Anything else stored is answered 202 (kept, not interpreted yet).
INTERPRETED_STATES = frozenset({EventState.PROCESSED, EventState.UNMATCHED})


class InboundEvent(models.Model):
    """One event a platform posted, exactly as received, and what became of it."""

    brand = models.ForeignKey(
        "hub.Brand",
        on_delete=models.CASCADE,
        related_name="inbound_events",
        verbose_name="brand",
        help_text="The brand whose key the platform used.",
    )
    source = models.CharField(
        "source",
        max_length=60,
        choices=EventSource.choices,
        help_text="The platform endpoint the event arrived on.",
    )
    event_type = models.CharField(
        "event type",
        max_length=40,
        db_index=True,
        help_text="The hub event it is emitted as, e.g. call.logged or conversation.abandoned.",
    )
    idempotency_key = models.CharField(
        "idempotency key",
        max_length=200,
        help_text="From the payload (its id, or the call's numbers and start time, or a hash of the content): "
        "a retried post with the same key is stored once.",
    )
    content_hash = models.CharField(
        "content hash",
        max_length=64,
        help_text="SHA-256 of the payload with its keys sorted (of the body's bytes when it cannot be written "
        "that way, e.g. nested very deeply): a retry with the same content is stored once.",
    )
    body = models.TextField(
        "body",
        blank=True,
        help_text="The request body exactly as received (JSON text; a NUL character stays escaped as \\u0000).",
    )
    headers = models.JSONField(
        "headers",
        default=dict,
        blank=True,
        help_text="The request headers as received, secrets (Authorization, x-api-key, cookies ...) masked.",
    )
    payload = models.JSONField(
        "payload",
        null=True,
        blank=True,
        help_text="The body as parsed, unknown fields included, in a form every database stores: NUL and lone "
        "surrogates become U+FFFD, values nested deeper than 100 levels a note (the body keeps them all).",
    )
    state = models.CharField(
        "state",
        max_length=12,
        choices=EventState.choices,
        default=EventState.RECEIVED,
        help_text="Received events are interpreted straight away; invalid, failed and unmatched ones can be "
        "reprocessed.",
    )
    error = models.TextField(
        "reason",
        blank=True,
        help_text="Why the event is not on a timeline: the fields that could not be read, the processing error, "
        "or that it names no customer to match.",
    )
    attempts = models.PositiveIntegerField(
        "processing attempts", default=0, help_text="How often processing was tried."
    )
    summary = models.CharField(
        "summary",
        max_length=300,
        blank=True,
        help_text="What happened, as the timeline shows it, e.g. 'Abandoned in queue Sales after 2 min 14 s'.",
    )
    contact_number = models.CharField(
        "contact number",
        max_length=100,
        blank=True,
        help_text="The number or identifier used to find the customer.",
    )
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="customer",
        help_text="The customer the event was matched to.",
    )
    customer_repr = models.CharField(
        "customer (as matched)",
        max_length=300,
        blank=True,
        help_text="The matched customer's name and id when it was matched; kept when the customer is deleted.",
    )
    activity = models.ForeignKey(
        "customers.Activity",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="timeline entry",
        help_text="The activity put on the customer's timeline.",
    )
    customer_created = models.BooleanField(
        "customer created",
        default=False,
        help_text="The customer was created for this event (brand setting 'create customers for unknown callers').",
    )
    emitted = models.BooleanField(
        "emitted",
        default=False,
        help_text="The hub event was emitted (dispatcher rules ran); a reprocessed event is never emitted twice.",
    )
    received_at = models.DateTimeField("received", db_index=True, help_text="When the hub stored the event.")
    processed_at = models.DateTimeField("processed", null=True, blank=True, help_text="When processing last succeeded.")

    class Meta:
        ordering = ["-received_at", "-pk"]
        verbose_name = "inbound event"
        constraints = [
            models.UniqueConstraint(fields=["brand", "idempotency_key"], name="inboundevent_unique_brand_key"),
        ]
        indexes = [
            models.Index(fields=["brand", "source", "content_hash"], name="inboundevent_content"),
            models.Index(fields=["brand", "-received_at"], name="inboundevent_brand_time"),
            models.Index(fields=["state", "-received_at"], name="inboundevent_state_time"),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} #{self.pk} ({self.state})"
