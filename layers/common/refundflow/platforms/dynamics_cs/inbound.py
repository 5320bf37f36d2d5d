"""Dynamics 365 Customer Service deliveries: a Power Automate cloud flow's HTTP action, verified by intake with a
shared secret only.

What the platform offers (learn.microsoft.com, Power Automate "Trigger flows when a row is added, modified, or
deleted" (Microsoft Dataverse connector) and "Use the HTTP action"): the flow's trigger watches the Cases table
(change type Modified, the columns ``statecode`` and ``new_refundaction``), and its HTTP action sends a request of
the admin's choosing (method, URI, headers, body built from the row's dynamic content). Power Automate signs
nothing: no HMAC, no timestamp of ours, no delivery id. So:

- the admin sets the header ``X-Refundflow-Secret: <secret>`` on the HTTP action (the value kept in an environment
  variable of type Secret, or typed in); it is compared in constant time with each configured secret
  (``{"shared_secrets": [...]}``: two while rotating);
- nothing in the body is believed: the body must name the case as ``incidentid`` (the row's GUID), which is
  validated (a GUID and nothing else) before the case's own function reads the case with the API;
- no delivery id exists, so one that a retry of the same run keeps is derived: the case id, the body's
  ``modifiedon`` (the row's Modified On, whole seconds), ``statecode`` and ``new_refundaction`` (two changes in
  one second differ by what changed), else the case id and the SHA-256 of the body. Power Automate retries a
  failed HTTP action on its own (the action's retry policy, by default an exponential one on 408, 429 and 5xx):
  a retry sends the same body, so it keeps the id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from refundflow.connectors.help_desk_inbound import aware_time, json_object, require_header_secret
from refundflow.errors import InvalidRequest
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform, TicketNews

PLATFORM = "dynamics_cs"
SECRET_HEADER = "X-Refundflow-Secret"
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
MODIFIED_ON = re.compile(r"[0-9T:.+\-Z]{10,40}")


def case_id(value: Any) -> str:
    """A case's GUID, lower case (Dataverse writes GUIDs in lower case); anything else is refused.

    Raises:
        InvalidRequest: not a GUID.
    """
    text = value if isinstance(value, str) else ""
    if not GUID.fullmatch(text) or not text.isascii():
        raise InvalidRequest("the delivery must name the case: incidentid (the row's Case GUID)")
    return text.lower()


class DynamicsCaseInbound(InboundPlatform):
    name = PLATFORM

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        require_header_secret(
            headers, secret.get("shared_secrets"), header=SECRET_HEADER, title="Dynamics 365 shared secret"
        )
        body = json_object(raw_body, what="the Power Automate delivery")
        incident = case_id(body.get("incidentid"))
        modified_on = body.get("modifiedon")
        if isinstance(modified_on, str) and MODIFIED_ON.fullmatch(modified_on):
            # Modified On has whole seconds: two changes in one second differ by what changed (state, action)
            event_id = (
                f"{incident}:{modified_on}:{_small(body.get('statecode'))}:{_small(body.get('new_refundaction'))}"
            )
        else:
            event_id = f"{incident}:{hashlib.sha256(raw_body).hexdigest()[:32]}"
        news = TicketNews(
            platform=PLATFORM,
            event_id=event_id,
            ticket_id=incident,
            occurred_at=aware_time(modified_on),
            payload=dict(body),
        )
        return InboundDelivery(tickets=[news], answer=InboundAnswer(body='{"received": true}'))


def _small(value: Any) -> str:
    """A choice value (an integer) for the delivery id, or ``-`` for anything else."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**10 else "-"


def inbound() -> DynamicsCaseInbound:
    return DynamicsCaseInbound()
