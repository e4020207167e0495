"""Outbound webhooks: the delivery engine shared by the CRM sync and the dispatcher rules.

Stable interface (other apps build on it; see docs/outbound-webhooks.md):

``hooks.outbound.models.WebhookRequestConfig`` (abstract model)
    method (GET POST PUT PATCH DELETE), url (template), headers (template text,
    one "Name: value" per line), body (template, "Data"), body_format
    ("json" | "xml" | "form"), auth_type ("none" | "basic" | "bearer" |
    "api_key"), auth_username, auth_password (encrypted), api_key_header,
    api_key (encrypted; also the bearer token), signing_secret (encrypted;
    when set, Standard Webhooks signature headers), verify_ssl,
    timeout_seconds (1..30). ``clean()`` checks template syntax, the URL
    scheme, header lines and that a JSON/XML body renders to valid data.

``hooks.outbound.registry.register_source(kind, resolve, *, prepare=None, on_delivered=None, prefetch=None)``
    ``resolve(source_id) -> WebhookRequestConfig | None`` gives the current
    configuration at send time (None: deleted/disabled, the delivery becomes
    obsolete); it is called once per source per task run. Optional
    ``prepare(delivery) -> dict`` adds tokens at send time or raises
    ``registry.Obsolete(reason)``; ``on_delivered(delivery, config, status,
    response_text) -> note`` runs in the transaction that records the attempt
    (wrap writes in ``transaction.atomic()``); ``prefetch(deliveries)`` reads what
    ``prepare`` needs for a claimed batch at once (``registry.memo_put``).
    Register in your AppConfig.ready().

``hooks.outbound.engine.outbox.delivery_create(*, brand_id, source_kind, source_id, source_name,
event_type, context, customer_id=None, order_key="") -> Delivery``
    Call inside the transaction of the change (outbox); a django-q2 task is
    enqueued on commit. ``context`` is the token snapshot (JSON-serializable).
    Deliveries sharing a non-empty ``order_key`` go out one at a time, oldest
    first. ``delivery_create`` writes one row; ``deliveries_create`` several in
    one INSERT.

``hooks.outbound.configio.register_config_section(key, export, load)``
    adds a section to export_config / import_config (docs/config-as-code.md).

``hooks.outbound.rendering.render_request(config, context) -> RenderedRequest``
    method, url, headers (with auth), body; raises ``RenderError`` (``.reason``).
    Values are escaped for where they land (URL, header, JSON/XML/form body).
"""
