"""Append-only records auditors read: every inbound call (and, with the
outbound engine, every delivery attempt)."""

from __future__ import annotations

from django.db import models


class InboundRequest(models.Model):
    """One call a platform made to the hub. Secrets are masked before saving."""

    brand = models.ForeignKey("hub.Brand", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    endpoint = models.CharField("endpoint", max_length=60, db_index=True, help_text="e.g. omnidesk.lookup")
    method = models.CharField("method", max_length=10, default="GET")
    path = models.CharField("path", max_length=500)
    query = models.TextField("query (redacted)", blank=True)
    credential_prefix = models.CharField("key prefix", max_length=16, blank=True)
    status = models.PositiveSmallIntegerField("status")
    latency_ms = models.FloatField("latency (ms)")
    customers_returned = models.IntegerField("customers returned", null=True, blank=True)
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False
    )
    remote_addr = models.CharField("remote address", max_length=64, blank=True)
    request_body = models.TextField("request body (redacted, bounded)", blank=True)
    response_body = models.TextField("response body (bounded)", blank=True)
    note = models.CharField("note", max_length=300, blank=True, help_text="e.g. ticketID, or why it failed.")
    created_at = models.DateTimeField("time", db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "inbound request"
        indexes = [
            models.Index(fields=["brand", "-created_at"], name="inbound_brand_time"),
            models.Index(fields=["endpoint", "status", "-created_at"], name="inbound_endpoint_status"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.endpoint} {self.status} @ {self.created_at:%Y-%m-%d %H:%M:%S}"


class DeliveryAttempt(models.Model):
    """One try at sending an outbound webhook (Saleor's third level: the attempt).

    Authorization, API-key and signature headers, cookies and secrets in URLs
    and bodies are masked BEFORE saving; bodies are bounded to 32 KB.
    """

    delivery = models.ForeignKey(
        "outbound.Delivery", on_delete=models.CASCADE, related_name="attempt_log", verbose_name="delivery"
    )
    brand = models.ForeignKey("hub.Brand", on_delete=models.CASCADE, related_name="+", verbose_name="brand")
    number = models.PositiveIntegerField("attempt", help_text="1 for the first try of the delivery.")
    started_at = models.DateTimeField("time", db_index=True, help_text="When the request started.")
    duration_ms = models.FloatField("duration (ms)", default=0)
    method = models.CharField("method", max_length=10, blank=True)
    url = models.TextField("URL (redacted)", blank=True)
    request_headers = models.JSONField("request headers (redacted)", default=dict, blank=True)
    request_body = models.TextField("request body (redacted, bounded)", blank=True)
    response_status = models.PositiveSmallIntegerField("response status", null=True, blank=True)
    response_headers = models.JSONField("response headers (redacted)", default=dict, blank=True)
    response_body = models.TextField("response body (bounded)", blank=True)
    error = models.TextField("error", blank=True, help_text="Timeout, refused connection, DNS, TLS, SSRF refusal, ...")
    note = models.CharField("note", max_length=500, blank=True, help_text="e.g. the remote id read from the answer.")
    succeeded = models.BooleanField("succeeded", default=False, help_text="2xx or 3xx (EddyDesk).")

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
