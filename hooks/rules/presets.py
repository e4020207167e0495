"""Presets an admin can start a rule from: the EddyDesk contract's two worked examples.

1. "Sending PUSH notifications to agent's Telegram": a POST to
   ``https://api.telegram.org/bot<token>/sendMessage`` with ``parse_mode``,
   ``chat_id`` and a ``text`` holding a link. For the hub: on an abandoned
   conversation, with the customer's name and a link to the customer in the
   admin (HUB_ADMIN_BASE_URL).
2. "Sub-request sends an internal note to the parent request": a POST to
   another system's REST API (``/api/v2/tickets/{parent_ticket_id}/comments/``)
   with username and password (HTTP Basic). For the hub: on a closed work item,
   a note on the customer in the CRM, only when a customer was matched (the
   contract's "Additional conditions").

A preset creates a *disabled* rule: the admin fills in the placeholders in
``<ANGLE BRACKETS>`` (chat id, CRM host, user) and the secrets (bot token in
the API key field, password), previews the rule against a stored event, then
enables it.
"""

from __future__ import annotations

from typing import Any

# Telegram's parse_mode "html" needs <, > and & escaped in names: ``|e ~ ''``
# HTML-escapes the value and hands plain text on for the JSON-string escaping.
TELEGRAM_TEXT = (
    "Abandoned conversation in queue {{ event.queue|e ~ '' }} after {{ event.timeInQueueText }}: "
    "<b>{{ (customer.name or event.customerPhoneNumber)|e ~ '' }}</b> "
    "<a href='{{ customer.admin_url or event.admin_url }}'>open in Hookhub</a>"
)

PRESETS: dict[str, dict[str, Any]] = {
    "telegram-abandoned-conversation": {
        "title": "Telegram message when a conversation is abandoned",
        "summary": "EddyDesk example 1: a Telegram bot's sendMessage with parse_mode, chat_id and a text with a "
        "link, here to the customer in the Hookhub admin.",
        "rule": {
            "name": "Telegram: abandoned conversation",
            "event_types": ["conversation.abandoned"],
            "conditions": {"all": []},
            "method": "POST",
            # The token is a secret: it lives in the encrypted "API key" field and
            # reaches the URL only at send time, masked in every log.
            "url": "https://api.telegram.org/bot{{ secrets.api_key|raw }}/sendMessage",
            "body_format": "json",
            "auth_type": "none",
            "headers": "",
            "body": f'{{\n  "parse_mode": "html",\n  "chat_id": "<CHAT-ID>",\n  "text": "{TELEGRAM_TEXT}"\n}}',
            "description": "Put the bot's token (from @BotFather) in the 'API key / bearer token' field — it is "
            "encrypted, used in the URL as {{ secrets.api_key }} and masked in every log; authentication stays "
            "None. Replace <CHAT-ID> with the agent's Telegram id (e.g. from @myidbot). The link opens the "
            "customer in the Hookhub admin, or the stored event when no customer matched the caller.",
        },
    },
    "crm-note-workitem-closed": {
        "title": "Note in another system when a work item is closed",
        "summary": "EddyDesk example 2: an internal note posted to another system's REST API with username and "
        "password, only when the event has a customer (an additional condition).",
        "rule": {
            "name": "CRM note: work item closed",
            "event_types": ["workitem.closed"],
            "conditions": {"all": [{"field": "customer.customer_id", "op": "exists"}]},
            "method": "POST",
            "url": "https://<YOUR-CRM-HOST>/api/v2/customers/{{ customer.customer_id }}/comments/",
            "body_format": "json",
            "auth_type": "basic",
            "auth_username": "<API-USER>",
            "headers": "",
            "body": "{\n"
            '  "is_internal": true,\n'
            '  "body": "{{ event.summary }}. Notes: {{ event.notes }}",\n'
            '  "agent": "{{ event.agent.name }}",\n'
            '  "work_item_id": "{{ event.id }}",\n'
            '  "conversation_id": "{{ event.primaryConversationId }}"\n'
            "}",
            "description": "Replace <YOUR-CRM-HOST> and <API-USER>, and set the password: the API user's "
            "credentials of the receiving system (EddyDesk: copied from its Global settings).",
        },
    },
}


def preset_get(key: str) -> dict[str, Any] | None:
    return PRESETS.get(key)
