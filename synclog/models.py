"""Append-only records auditors read: every inbound call and every outbound
delivery attempt. Secrets are masked before a row is written (hub.redaction)."""

from __future__ import annotations

from django.db import models


class InboundRequest(models.Model):
    """One call a platform made to the hub. Secrets are masked before saving."""

    brand = models.ForeignKey(
        "hub.Brand",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="brand",
        help_text="The brand in the URL, once its key was accepted; empty for calls to an unknown brand.",
    )
    endpoint = models.CharField(
        "endpoint",
        max_length=60,
        db_index=True,
        help_text="Which platform endpoint answered: omnidesk.lookup, m8com.lookup, m8com.calllog or "
        "servicehooks.<event type>. The part before the dot is the integration.",
    )
    method = models.CharField("method", max_length=10, default="GET", help_text="The HTTP method the platform used.")
    path = models.CharField(
        "path", max_length=500, help_text="The URL path called, e.g. /hooks/omnidesk/<brand>/customerlookup."
    )
    query = models.TextField(
        "query (redacted)",
        blank=True,
        help_text="The query string as received, with keys and tokens (Omnidesk ?key=) replaced by ********.",
    )
    credential_prefix = models.CharField(
        "key prefix",
        max_length=16,
        blank=True,
        help_text="The first characters of the inbound key used (never the key); empty when no valid key was sent.",
    )
    status = models.PositiveSmallIntegerField(
        "status",
        help_text="The HTTP status the hub answered. 401/403: missing or wrong key; 400: invalid input; "
        "404 from M8Com lookup means 'no contact found', a valid answer.",
    )
    latency_ms = models.FloatField(
        "latency (ms)", help_text="Time the hub took to answer, in milliseconds (M8Com gives up after 3 s)."
    )
    customers_returned = models.IntegerField(
        "customers returned",
        null=True,
        blank=True,
        help_text="Lookups: how many customers the answer held (Omnidesk returns an array). Empty for events.",
    )
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        db_index=False,  # covered by inbound_customer_time
        verbose_name="customer",
        help_text="The customer found by the lookup, or the one the event was matched to.",
    )
    remote_addr = models.CharField(
        "remote address", max_length=64, blank=True, help_text="The client IP the call came from (allowlists use it)."
    )
    request_body = models.TextField(
        "request body (redacted, bounded)",
        blank=True,
        help_text="Events: the JSON body as posted, secrets masked, cut at 16 KB. Lookups have none.",
    )
    response_body = models.TextField(
        "response body (bounded)",
        blank=True,
        help_text="The hub's answer, cut at 16 KB; kept for errors (4xx/5xx) and event acknowledgements.",
    )
    note = models.CharField(
        "note",
        max_length=300,
        blank=True,
        help_text="What the call led to, e.g. 'ticketID=123' (Omnidesk) or 'event 42 processed' (inbound events).",
    )
    created_at = models.DateTimeField("time", db_index=True, help_text="When the hub answered the call.")

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "inbound request"
        indexes = [
            models.Index(fields=["brand", "-created_at"], name="inbound_brand_time"),
            models.Index(fields=["endpoint", "status", "-created_at"], name="inbound_endpoint_status"),
            models.Index(fields=["customer", "-created_at"], name="inbound_customer_time"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.endpoint} {self.status} @ {self.created_at:%Y-%m-%d %H:%M:%S}"

    @property
    def succeeded(self) -> bool:
        return inbound_succeeded(self.endpoint, self.status)


def inbound_succeeded(endpoint: str, status: int) -> bool:
    """M8Com: 404 on a lookup means "no contact found", a correct answer.
    The same rule in SQL: synclog.filters.inbound_ok_q."""
    return status < 400 or (endpoint == "m8com.lookup" and status == 404)


class DeliveryAttempt(models.Model):
    """One try at sending an outbound webhook (Saleor's third level: the attempt).

    Authorization, API-key and signature headers, cookies and secrets in URLs
    and bodies are masked BEFORE saving; bodies are bounded to 32 KB.
    """

    delivery = models.ForeignKey(
        "outbound.Delivery",
        on_delete=models.CASCADE,
        related_name="attempt_log",
        verbose_name="delivery",
        help_text="The webhook being delivered (its source, event, message id and state).",
    )
    brand = models.ForeignKey(
        "hub.Brand",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name="brand",
        help_text="The brand whose CRM sync or dispatcher rule sent it.",
    )
    number = models.PositiveIntegerField("attempt", help_text="1 for the first try of the delivery.")
    started_at = models.DateTimeField("time", db_index=True, help_text="When the request started.")
    duration_ms = models.FloatField(
        "duration (ms)", default=0, help_text="Until the receiver answered or the attempt failed, in milliseconds."
    )
    method = models.CharField("method", max_length=10, blank=True, help_text="GET, POST, PUT, PATCH or DELETE.")
    url = models.TextField(
        "URL (redacted)",
        blank=True,
        help_text="The URL as sent, with user:password and secret query parameters replaced by ********.",
    )
    request_headers = models.JSONField(
        "request headers (redacted)",
        default=dict,
        blank=True,
        help_text="Headers as sent; Authorization, API keys, signatures and cookies replaced by ********.",
    )
    request_body = models.TextField(
        "request body (redacted, bounded)",
        blank=True,
        help_text="The rendered body as sent (JSON, XML or form), secrets masked, cut at 32 KB.",
    )
    response_status = models.PositiveSmallIntegerField(
        "response status",
        null=True,
        blank=True,
        help_text="The receiver's HTTP status; empty when no answer came (see error).",
    )
    response_headers = models.JSONField(
        "response headers (redacted)",
        default=dict,
        blank=True,
        help_text="Headers the receiver answered with; Set-Cookie and tokens masked.",
    )
    response_body = models.TextField(
        "response body (bounded)", blank=True, help_text="The receiver's answer, secrets masked, cut at 32 KB."
    )
    error = models.TextField("error", blank=True, help_text="Timeout, refused connection, DNS, TLS, SSRF refusal, ...")
    note = models.CharField("note", max_length=500, blank=True, help_text="e.g. the remote id read from the answer.")
    succeeded = models.BooleanField(
        "succeeded",
        default=False,
        help_text="2xx or 3xx (EddyDesk: anything else is retried every 30 minutes for 24 hours).",
    )

    class Meta:
        ordering = ["-started_at", "-pk"]
        verbose_name = "delivery attempt"
        indexes = [
            models.Index(fields=["brand", "-started_at"], name="attempt_brand_time"),
            models.Index(fields=["delivery", "number"], name="attempt_delivery"),
        ]

    def __str__(self) -> str:
        outcome = self.response_status or self.error[:40] or "-"
        return f"#{self.number} {self.method} {outcome} @ {self.started_at:%Y-%m-%d %H:%M:%S}"
