"""Salesforce Flow HTTP Callouts, verified by intake with a per-org shared secret only.

What Salesforce documents (Salesforce Help, "HTTP Callout Authentication Guidelines" (flow_http_callout_guidelines_
authenticating), "Create or Edit a Custom Auth External Credential", "Named Credentials"; Apex/REST API docs for the
ids): a Flow's HTTP Callout action calls an endpoint through a Named Credential; the callout's authentication is
whatever the Named Credential's External Credential sends, and an External Credential with the Custom
authentication protocol adds custom headers whose values are formulas over the principal's (encrypted)
authentication parameters, e.g. ``{!$Credential.Refundflow.Secret}``. Salesforce signs nothing: no HMAC, no
timestamp, no delivery id. So:

- the admin adds the header ``X-Refundflow-Secret`` to the External Credential, its value the org's secret from
  refundflow; it is compared in constant time with each configured secret (``{"shared_secrets": [...]}``: two during
  a rotation, one per Salesforce org, so a sandbox org and production never share one);
- ``organization_id`` in the verification secret (optional, the org's 18-character id): when set, the body's
  ``organizationId`` (``{!$Organization.Id}`` in the Flow) must be that org;
- nothing else in the body is believed: it names the case as ``caseId`` (``{!$Record.Id}``), a Case id of 15 or 18
  characters with the Case key prefix and a valid checksum, and the case is read with the REST API before anything
  moves;
- no timestamp exists, so nothing is stale here: a replayed delivery only makes us read the case again;
- no delivery id exists, so we derive one that a retry of the same delivery keeps: the case id and the body's
  ``lastModifiedDate`` (``{!$Record.LastModifiedDate}``) when sent, else the case id and the SHA-256 of the body.
  Whether a Flow HTTP Callout is retried at all (and re-renders its body) is not documented: unverified.

A ``text/xml`` delivery is an Outbound Message instead (``outbound_message``: its token in the endpoint URL's
query, the org required, one news per notification, the SOAP ack as the answer).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from refundflow.connectors.help_desk_inbound import json_object, require_header_secret
from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.platforms.salesforce import outbound_message
from refundflow.platforms.salesforce.ids import case_id18, record_id18
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform, TicketNews

PLATFORM = "salesforce"
SECRET_HEADER = "X-Refundflow-Secret"
MODIFIED_AT = re.compile(r"[0-9T:.+\-Z ]{10,40}")
ORGANIZATION_PREFIX = "00D"


class SalesforceInbound(InboundPlatform):
    name = PLATFORM

    def verify_request(
        self,
        headers: Mapping[str, str],
        raw_body: bytes,
        secret: Mapping[str, Any],
        query: Mapping[str, str] | None = None,
    ) -> InboundDelivery:
        """An Outbound Message when the body is ``text/xml`` (its token in ``query``), else the Flow callout."""
        lowered = {key.lower(): value for key, value in (headers or {}).items()}
        media = lowered.get("content-type", "").split(";")[0].strip().lower()
        if media == "text/xml":
            return verify_outbound_message(raw_body, secret, query)
        return self.verify(headers, raw_body, secret)

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        require_header_secret(
            headers, secret.get("shared_secrets"), header=SECRET_HEADER, title="Salesforce shared secret"
        )
        body = json_object(raw_body, what="the Salesforce callout")
        _check_org(body.get("organizationId"), secret.get("organization_id"))
        case_id = _case_id(body.get("caseId"))
        modified = body.get("lastModifiedDate")
        if isinstance(modified, str) and MODIFIED_AT.fullmatch(modified):
            event_id = f"{case_id}:{modified}"
        else:
            event_id = f"{case_id}:{hashlib.sha256(raw_body).hexdigest()[:32]}"
        news = TicketNews(
            platform=PLATFORM,
            event_id=event_id,
            ticket_id=case_id,
            occurred_at=_when(modified),
            payload=dict(body),
        )
        return InboundDelivery(tickets=[news], answer=InboundAnswer(body='{"received": true}'))


def verify_outbound_message(
    raw_body: bytes, secret: Mapping[str, Any], query: Mapping[str, str] | None
) -> InboundDelivery:
    """An Outbound Message: the URL's token first (an unauthenticated body is a 401 before it is malformed), then
    the XML, the org and one news per notification, its event id the notification's Id (kept by redeliveries)."""
    outbound_message.check_token(query, secret)
    root = outbound_message.parse_xml(raw_body)
    message = outbound_message.read_message(root, secret.get("organization_id"))
    tickets = [
        TicketNews(
            platform=PLATFORM,
            event_id=f"notification:{notification.notification_id}",
            ticket_id=notification.case_id,
            occurred_at=_when(notification.fields.get("LastModifiedDate")),
            payload={
                "organizationId": message.organization_id,
                "actionId": message.action_id,
                "notificationId": notification.notification_id,
                "caseId": notification.case_id,
                "sObject": dict(notification.fields),
            },
        )
        for notification in message.notifications
    ]
    answer = InboundAnswer(content_type=outbound_message.ACK_CONTENT_TYPE, body=outbound_message.ACK)
    return InboundDelivery(tickets=tickets, answer=answer)


def _check_org(sent: Any, configured: Any) -> None:
    """With an ``organization_id`` configured, the callout must name that org (15 or 18 characters, same org)."""
    if not configured:
        return
    expected = record_id18(str(configured), ORGANIZATION_PREFIX)
    given = record_id18(sent, ORGANIZATION_PREFIX) if isinstance(sent, str) else None
    if expected is None or given is None or not hmac.compare_digest(given, expected):
        raise AuthenticationFailed("the callout comes from another Salesforce org", code="signature_invalid")


def _case_id(value: Any) -> str:
    case_id = case_id18(value) if isinstance(value, str) else None
    if case_id is None:
        raise InvalidRequest("the callout must name the case: caseId (the Flow's {!$Record.Id}, a Case id)")
    return case_id


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00").replace(" ", "T", 1)
    if re.search(r"[+-][0-9]{4}$", text):  # Salesforce writes +0000
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def inbound() -> SalesforceInbound:
    return SalesforceInbound()
