"""Dispatcher rules (EddyDesk "Webhooks" in the dispatcher): on an event, when
the conditions hold, send a webhook through the shared delivery engine."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from hooks.outbound.models import SECRET_FIELDS, WebhookRequestConfig
from hooks.outbound.rendering import validate_config
from hub.events import EVENT_TYPES
from hub.models import ConfigHistory

from .conditions import ConditionError, conditions_clean, describe

EVENT_TYPE_NAMES = [name for name, _ in EVENT_TYPES]


def validate_event_types(value) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError("Choose at least one event type.")
    unknown = [str(item) for item in value if item not in EVENT_TYPE_NAMES]
    if unknown:
        raise ValidationError(f"Unknown event types: {', '.join(unknown)}. Known: {', '.join(EVENT_TYPE_NAMES)}.")


_TRICKY = 'Jo "JJ" <O\'Brien> & Co\nLtd'
# Sample tokens a rule's templates are checked with when saved: every field the
# hub's events carry, with quotes, <, & and newlines in the text.
SAMPLE_CONTEXT = {
    "event": {
        "type": "conversation.abandoned",
        "inbound_event_id": 1,
        "id": "ff34b1fb68cd4f7f9921e70c08fab7a7",
        "source": "servicehooks.abandoned-conversation",
        "summary": _TRICKY,
        "received_at": "2026-01-01T10:00:00Z",
        "admin_url": "https://hub.example.com/admin/inbound/inboundevent/1/change/",
        "customerPhoneNumber": "+31612345678",
        "phoneNumber": "+31612345678",
        "queue": _TRICKY,
        "timeInQueue": 134,
        "timeInQueueText": "2 min 14 s",
        "timestamp": "2026-01-01T10:00:00Z",
        "externalId": "x1",
        "targetPhoneNumber": "+31612345678",
        "agentId": "agent-1",
        "mediaType": "Webchat",
        "isOutbound": True,
        "createdAt": "2026-01-01T10:00:00Z",
        "closedAt": "2026-01-01T10:02:00Z",
        "agent": {"id": "a1", "name": _TRICKY, "email": "agent@example.com", "phone": "+123456789"},
        "customerIdentifier": "+31612345678",
        "customerId": "C000001",
        "primaryConversationId": "c1",
        "completionCode": "Success",
        "notes": _TRICKY,
        "result": "Handled",
        "handledText": "2 min",
        "changed": ["last_name"],
        "fromNumber": "+46701234567",
        "toNumber": "+31612345678",
        "duration": 134000,
        "startTime": 1763800000000,
        "callType": "Inbound",
        "body": _TRICKY,
        "userId": "u-1",
    },
    "customer": {
        "id": 1,
        "customer_id": "C000001",
        "first_name": 'Jo "JJ"',
        "last_name": "<O'Brien> & Co\nLtd",
        "name": _TRICKY,
        "display_name": _TRICKY,
        "email": "jo@example.com",
        "phone": "+31612345678",
        "company": "Acme",
        "custom_fields": {"customerType": "unlimited"},
        "customFields": {"customerType": "unlimited"},
        "admin_url": "https://hub.example.com/admin/customers/customer/1/change/",
    },
    "call": {
        "fromNumber": "+46701234567",
        "toNumber": "+31612345678",
        "duration": 134000,
        "startTime": 1763800000000,
        "callType": "Inbound",
        "body": _TRICKY,
        "userId": "u-1",
        "contactNumber": "+31612345678",
        "durationText": "2 min 14 s",
        "targetPhoneNumber": "+31612345678",
        "agentId": "agent-1",
        "timestamp": "2026-01-01T10:00:00Z",
    },
    "brand": {"slug": "acme", "name": "Acme"},
    "hub": {"admin_url": "https://hub.example.com/admin/"},
    "secrets": {"api_key": "sample-key"},
}


class EventRule(WebhookRequestConfig):
    """A brand's rule: trigger event types, conditions, and the webhook to send.

    EddyDesk: "You can create webhooks in the dispatcher, it allows you to
    flexibly configure the sending of webhooks using the conditions." Firing
    creates a Delivery on the shared engine (retried every 30 minutes for 24
    hours by default, SSRF guard, masking, signatures, logs, "Retry now").
    """

    brand = models.ForeignKey(
        "hub.Brand",
        on_delete=models.CASCADE,
        related_name="event_rules",
        verbose_name="brand",
        help_text="The brand whose events the rule listens to.",
    )
    name = models.CharField("name", max_length=150, help_text="What the rule does, e.g. 'Telegram: abandoned calls'.")
    enabled = models.BooleanField(
        "enabled",
        default=False,
        help_text="Only enabled rules fire. New rules start disabled: preview them against a stored event first.",
    )
    order = models.PositiveIntegerField(
        "order", default=100, help_text="Rules run in this order (lowest first); deliveries are created in it."
    )
    event_types = models.JSONField(
        "trigger events",
        default=list,
        validators=[validate_event_types],
        help_text="The hub events that trigger the rule, e.g. conversation.abandoned, call.logged, customer.created.",
    )
    conditions = models.JSONField(
        "conditions",
        default=dict,
        blank=True,
        help_text='When the rule fires; empty: always. e.g. {"all": ["event.queue == \\"Sales\\"", '
        '"call.duration > 60000", "customer.customFields.customerType == \\"unlimited\\""]}. '
        "See docs/rules.md.",
    )
    description = models.TextField(
        "notes", blank=True, help_text="Anything an admin should know about this rule (where the preset came from)."
    )
    created_at = models.DateTimeField("created", auto_now_add=True, help_text="When the rule was added.")
    updated_at = models.DateTimeField("updated", auto_now=True, help_text="The last time the rule was saved.")
    history = ConfigHistory(secret_fields=SECRET_FIELDS, excluded_fields=("updated_at",))
    url_secrets_hint = (
        "set it as the rule's API key under Authentication (encrypted, masked in every log) and write "
        "{{ secrets.api_key }} in the URL where it goes, e.g. ?token={{ secrets.api_key }}."
    )

    class Meta:
        ordering = ["brand__name", "order", "name"]
        verbose_name = "dispatcher rule"
        constraints = [models.UniqueConstraint(fields=["brand", "name"], name="eventrule_unique_brand_name")]
        indexes = [models.Index(fields=["brand", "enabled", "order"], name="eventrule_brand_enabled")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        # The shared checks (template syntax, URL, header lines, JSON/XML body),
        # rendered with a rule's tokens rather than the CRM sync's.
        for name, messages in [
            *validate_config(self, sample=SAMPLE_CONTEXT).items(),
            *self.url_secret_errors().items(),
        ]:
            errors.setdefault(name, []).extend(messages)
        try:
            self.conditions = conditions_clean(self.conditions)
        except ConditionError as exc:
            errors.setdefault("conditions", []).extend(exc.errors)
        if isinstance(self.event_types, list):
            self.event_types = list(dict.fromkeys(self.event_types))
        if errors:
            raise ValidationError(errors)

    @property
    def conditions_text(self) -> str:
        try:
            return describe(conditions_clean(self.conditions))
        except ConditionError:
            return "(invalid)"
