"""Freshdesk webhooks, verified by intake with a shared secret only.

What Freshdesk documents (support.freshdesk.com, "Using Webhooks in automation rules", article 132589; "API key
based authentication", article 50000003346): an automation rule (on ticket creation or on ticket updates) with the
"Trigger webhook" action sends a request of the admin's choosing (method, callback URL, optional authentication,
custom headers, JSON / XML / form encoding, and a simple or advanced body with placeholders such as
``{{ticket.id}}``). Freshdesk signs nothing: no HMAC, no timestamp, no delivery id. So:

- the admin adds the custom header ``X-Refundflow-Secret: <secret>`` to the webhook; the value is compared in
  constant time with each configured secret (``{"shared_secrets": [...]}``: two during a rotation). We chose a
  custom header over the webhook's Basic credentials because a header names what it is for and can be rotated
  by editing the rule, with no user behind it;
- nothing in the body is believed: the advanced JSON body must name the ticket as ``ticket_id``
  (``{{ticket.id}}``), and the ticket's own function reads the ticket with the API before anything moves;
- no timestamp exists, so nothing is stale here: a replayed delivery can only make us read the ticket again,
  and the request it makes is idempotent (the refund id comes from the ticket). Late deliveries are normal:
  Freshdesk retries a failed webhook 5, 30 and 60 minutes later ("Receiving webhook failure emails"), and runs
  webhooks within the account's API rate limit, deferring those over it to the next hour and dropping them after
  24 hours ("Handling and preventing webhook drops"); the ticket read now decides, never the delivery;
- no delivery id exists, so we derive one that a retry of the same delivery keeps: the ticket id and the
  body's ``updated_at`` when the admin's template sends one, else the ticket id and the SHA-256 of the body.
  Whether a retry of a Freshdesk webhook re-renders its placeholders is not documented.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from refundflow.connectors.help_desk_inbound import aware_time, json_object, require_header_secret
from refundflow.errors import InvalidRequest
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform, TicketNews

PLATFORM = "freshdesk"
SECRET_HEADER = "X-Refundflow-Secret"
TICKET_ID = re.compile(r"[0-9]{1,20}")  # ASCII digits only (str.isdigit also takes other scripts' digits)
UPDATED_AT = re.compile(r"[0-9T:.+\-Z ]{10,40}")


class FreshdeskInbound(InboundPlatform):
    name = PLATFORM

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        require_header_secret(
            headers, secret.get("shared_secrets"), header=SECRET_HEADER, title="Freshdesk shared secret"
        )
        body = json_object(raw_body, what="the Freshdesk delivery")
        ticket_id = _ticket_id(body.get("ticket_id"))
        updated_at = body.get("updated_at")
        if isinstance(updated_at, str) and UPDATED_AT.fullmatch(updated_at):
            event_id = f"{ticket_id}:{updated_at}"
        else:
            event_id = f"{ticket_id}:{hashlib.sha256(raw_body).hexdigest()[:32]}"
        news = TicketNews(
            platform=PLATFORM,
            event_id=event_id,
            ticket_id=ticket_id,
            occurred_at=aware_time(updated_at),
            payload=dict(body),
        )
        return InboundDelivery(tickets=[news], answer=InboundAnswer(body='{"received": true}'))


def _ticket_id(value: Any) -> str:
    """``{{ticket.id}}`` renders as a bare number or, quoted in the template, as a string: either, digits only."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not TICKET_ID.fullmatch(text):
        raise InvalidRequest("the delivery must name the ticket: ticket_id (the webhook's {{ticket.id}})")
    return text


def inbound() -> FreshdeskInbound:
    return FreshdeskInbound()
