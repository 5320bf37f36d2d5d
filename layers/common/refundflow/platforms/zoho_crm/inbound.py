"""Zoho CRM workflow webhooks, verified by intake with a custom token only.

What Zoho documents (www.zoho.com/crm/help/automation/webhooks.html, "Webhooks"; Kaizen #219 "Actions API -
Webhooks API"): a workflow rule's Webhook action sends a request of the admin's choosing: method, URL, authorization
type General (static parameters) or Connection, custom parameters and headers, and a body as form data or raw JSON
with merge fields such as ``${Deals.Deal Id}``. Zoho signs nothing (no HMAC, no timestamp, no delivery id; the
absence is **unverified**: nothing on the page says otherwise). So:

- the admin adds the custom header ``X-Refundflow-Token: <token>``; it is compared in constant time with each
  configured token (``{"tokens": [...]}``: two during a rotation), every one of them whatever matched;
- nothing in the body is believed: the raw JSON body names the record as ``record_id`` (``${Deals.Deal Id}``),
  and the CRM's own function reads the record with the API before anything moves;
- no timestamp exists, so nothing is stale here: a replay can only make us read the record again;
- the event id is the record id and the SHA-256 of the body, which names the record's ``modified_time``
  (``${Deals.Modified Time}``, to the second) and ``refund_action``: a retry of the same delivery keeps it, two
  changes of the record make two (the README's template sends both; without them, a record asked twice for the
  same thing would be taken for a retry).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from refundflow.connectors.help_desk_inbound import aware_time, json_object, require_header_secret
from refundflow.errors import InvalidRequest
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform, TicketNews

PLATFORM = "zoho_crm"
TOKEN_HEADER = "X-Refundflow-Token"
RECORD_ID = re.compile(r"[0-9]{1,19}")  # ASCII digits only (str.isdigit also takes other scripts' digits)


class ZohoCrmInbound(InboundPlatform):
    name = PLATFORM

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        require_header_secret(headers, secret.get("tokens"), header=TOKEN_HEADER, title="Zoho CRM webhook token")
        body = json_object(raw_body, what="the Zoho CRM delivery")
        record_id = _record_id(body.get("record_id"))
        modified = body.get("modified_time")
        event_id = f"{record_id}:{hashlib.sha256(raw_body).hexdigest()[:32]}"
        news = TicketNews(
            platform=PLATFORM,
            event_id=event_id,
            ticket_id=record_id,
            occurred_at=aware_time(modified),
            payload=dict(body),
        )
        return InboundDelivery(tickets=[news], answer=InboundAnswer(body='{"received": true}'))


def _record_id(value: Any) -> str:
    """``${Deals.Deal Id}`` renders as digits, quoted in the template (or not): either, ASCII digits only."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not RECORD_ID.fullmatch(text):
        raise InvalidRequest("the delivery must name the record: record_id (the webhook's ${<Module>.<Module> Id})")
    return text


def inbound() -> ZohoCrmInbound:
    return ZohoCrmInbound()
