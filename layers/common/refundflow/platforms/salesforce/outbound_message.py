"""Salesforce Outbound Messages (a Workflow Rule's or Flow's "Outbound Message" action), verified by intake.

What Salesforce documents (SOAP API Developer Guide, "Outbound Messaging", "Understanding Notifications"
(sforce_api_om_outboundmessaging_notifications.htm) and "Understanding the Outbound Messaging WSDL"
(sforce_api_om_outboundmessaging_wsdl.htm)): the org POSTs a SOAP 1.1 message (``text/xml; charset=utf-8``) whose
body is ``notifications`` in ``http://soap.sforce.com/2005/09/outbound``: ``OrganizationId``, ``ActionId``,
``SessionId`` (nillable; we never use it), ``EnterpriseUrl``, ``PartnerUrl`` and up to 100 ``Notification``
elements, each an ``Id`` (the notification's id, kept by redeliveries: "check notification IDs ... before
processing") and an ``sObject`` (``xsi:type="sf:Case"``, the chosen fields in
``urn:sobject.enterprise.soap.sforce.com``, at least ``sf:Id``). The answer is the SOAP ``notificationsResponse``
with ``<Ack>true</Ack>``; any other answer is retried, with exponential backoff up to two hours apart, for 24 hours.

Outbound Messages are signed by nothing and cannot carry custom headers, so:

- the endpoint URL the admin enters carries the org's token as the query parameter ``token`` (at least 24
  characters, ``outbound_message_tokens`` in the verification secret, two while rotating), compared in constant
  time; it never goes into a log or an error message;
- ``organization_id`` must be configured and the message's ``OrganizationId`` must be that org (one token per
  org: a sandbox's messages never pass as production's);
- every notification is news only: the case is read again through the REST API before anything moves.

The XML is read with the standard library's expat and nothing else: any DOCTYPE is refused (so no entity can be
declared, expanded or fetched), the message is bounded in bytes, depth and notifications, and it must be UTF-8.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from refundflow.connectors.shared_secrets import one_of
from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.platforms.salesforce.ids import case_id18, record_id18

SOAP_ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
SOBJECT = "urn:sobject.enterprise.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
TOKEN_PARAMETER = "token"
MAX_MESSAGE_BYTES = 512 * 1024
MAX_DEPTH = 12  # Envelope / Body / notifications / Notification / sObject / field (+ a few for an address)
MAX_NOTIFICATIONS = 100  # the WSDL's maxOccurs
MAX_FIELD_CHARACTERS = 32_000  # a long text area's limit
ORGANIZATION_PREFIX = "00D"
NOTIFICATION_ID_LENGTH = 18  # the WSDL's ent:ID: 18 characters [a-zA-Z0-9]

ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENVELOPE}">'
    f'<soapenv:Body><notificationsResponse xmlns="{OUTBOUND}"><Ack>true</Ack></notificationsResponse></soapenv:Body>'
    "</soapenv:Envelope>"
)
ACK_CONTENT_TYPE = "text/xml; charset=utf-8"


@dataclass
class Element:
    """One parsed element: namespace, local name, attributes (namespaced as ``ns name``), text and children."""

    namespace: str
    name: str
    attributes: dict[str, str]
    text: list[str] = field(default_factory=list)
    children: list[Element] = field(default_factory=list)

    def child(self, namespace: str, name: str) -> Element | None:
        return next((c for c in self.children if c.namespace == namespace and c.name == name), None)

    def all(self, namespace: str, name: str) -> list[Element]:
        return [c for c in self.children if c.namespace == namespace and c.name == name]

    @property
    def value(self) -> str:
        return "".join(self.text).strip()


@dataclass(frozen=True)
class Notification:
    notification_id: str
    case_id: str
    fields: dict[str, str]


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str
    action_id: str
    notifications: list[Notification]


class _Refused(Exception):
    """Raised inside expat's callbacks; becomes an InvalidRequest."""


def parse_xml(raw: bytes) -> Element:
    """The document's root element, read safely (no DOCTYPE, UTF-8 only, bounded depth).

    Raises:
        InvalidRequest: too large, not UTF-8, a DOCTYPE, too deep, or not well-formed.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidRequest(f"the Outbound Message is over {MAX_MESSAGE_BYTES} bytes", code="invalid_xml")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidRequest("the Outbound Message is not UTF-8", code="invalid_xml") from error
    parser = expat.ParserCreate(encoding="UTF-8", namespace_separator=" ")
    stack: list[Element] = []
    roots: list[Element] = []

    def declaration(version: str | None, encoding: str | None, standalone: int) -> None:
        if encoding is not None and encoding.lower().replace("_", "-") not in {"utf-8", "utf8"}:
            raise _Refused(f"the Outbound Message must be UTF-8, it declares {encoding[:20]}")

    def doctype(*_: Any) -> None:
        raise _Refused("a DOCTYPE is not accepted in an Outbound Message")

    def entity(*_: Any) -> None:
        raise _Refused("an entity declaration is not accepted in an Outbound Message")

    def external(*_: Any) -> int:
        raise _Refused("an external entity is not accepted in an Outbound Message")

    def start(tag: str, attributes: dict[str, str]) -> None:
        if len(stack) >= MAX_DEPTH:
            raise _Refused(f"the Outbound Message is nested deeper than {MAX_DEPTH} elements")
        namespace, _, name = tag.rpartition(" ")
        element = Element(namespace, name, dict(attributes))
        (stack[-1].children if stack else roots).append(element)
        stack.append(element)

    def end(_: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        if stack:
            stack[-1].text.append(data)

    parser.XmlDeclHandler = declaration
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.UnparsedEntityDeclHandler = entity
    parser.ExternalEntityRefHandler = external
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(raw, True)
    except _Refused as refused:
        raise InvalidRequest(str(refused), code="invalid_xml") from None
    except expat.ExpatError as error:
        raise InvalidRequest(f"the Outbound Message is not well-formed XML: {error}", code="invalid_xml") from None
    if len(roots) != 1:
        raise InvalidRequest("the Outbound Message has no root element", code="invalid_xml")
    return roots[0]


def check_token(query: Mapping[str, str] | None, secret: Mapping[str, Any]) -> None:
    """The endpoint URL's ``token`` is one of the configured ``outbound_message_tokens`` (constant time, all compared).

    Raises:
        AuthenticationFailed: no token sent, none configured, or no match (the token is never echoed).
    """
    sent = (query or {}).get(TOKEN_PARAMETER, "")
    if not sent:
        raise AuthenticationFailed("the Outbound Message's endpoint URL has no token", code="signature_missing")
    tokens = secret.get("outbound_message_tokens")
    if not isinstance(tokens, list) or not tokens:
        raise AuthenticationFailed("no Salesforce Outbound Message token is configured", code="signature_invalid")
    if not one_of(sent, tokens):
        raise AuthenticationFailed("the Outbound Message's token does not match", code="signature_invalid")


def read_message(root: Element, configured_org: Any) -> OutboundMessage:
    """The notifications of a verified-token message, once its org is the configured one.

    Raises:
        AuthenticationFailed: no org configured, or the message comes from another org.
        InvalidRequest: not an Outbound Message of cases.
    """
    body = root.child(SOAP_ENVELOPE, "Body") if (root.namespace, root.name) == (SOAP_ENVELOPE, "Envelope") else None
    notifications = body.child(OUTBOUND, "notifications") if body is not None else None
    if notifications is None:
        raise InvalidRequest("not a SOAP 1.1 Outbound Message (Envelope/Body/notifications)", code="invalid_xml")
    expected = record_id18(str(configured_org), ORGANIZATION_PREFIX) if configured_org else None
    if expected is None:
        raise AuthenticationFailed(
            "Outbound Messages need the org's organization_id in the verification secret", code="signature_invalid"
        )
    sent_org = notifications.child(OUTBOUND, "OrganizationId")
    given = record_id18(sent_org.value, ORGANIZATION_PREFIX) if sent_org is not None else None
    if given is None or not hmac.compare_digest(given, expected):
        raise AuthenticationFailed("the Outbound Message comes from another Salesforce org", code="signature_invalid")
    items = notifications.all(OUTBOUND, "Notification")
    if not items:
        raise InvalidRequest("the Outbound Message carries no Notification", code="invalid_xml")
    if len(items) > MAX_NOTIFICATIONS:
        raise InvalidRequest(f"an Outbound Message carries at most {MAX_NOTIFICATIONS} notifications")
    action = notifications.child(OUTBOUND, "ActionId")
    return OutboundMessage(
        organization_id=given,
        action_id=action.value if action is not None else "",
        notifications=[_notification(item) for item in items],
    )


def _notification(item: Element) -> Notification:
    id_element = item.child(OUTBOUND, "Id")
    notification_id = id_element.value if id_element is not None else ""
    if len(notification_id) != NOTIFICATION_ID_LENGTH or not notification_id.isascii() or not notification_id.isalnum():
        raise InvalidRequest("a Notification's Id must be an 18-character Salesforce id", code="invalid_xml")
    record = item.child(OUTBOUND, "sObject")
    if record is None:
        raise InvalidRequest("a Notification carries no sObject", code="invalid_xml")
    kind = record.attributes.get(f"{XSI} type", "")
    if kind.rpartition(":")[2] != "Case":
        raise InvalidRequest("the Outbound Message must be on Case (its sObject is not a Case)", code="invalid_xml")
    fields: dict[str, str] = {}
    for child in record.children:
        if child.namespace == SOBJECT and not child.children and child.attributes.get(f"{XSI} nil") != "true":
            fields[child.name] = child.value[:MAX_FIELD_CHARACTERS]
    case_id = case_id18(fields.get("Id", ""))
    if case_id is None:
        raise InvalidRequest("the sObject must carry the case's Id (sf:Id, a Case id)", code="invalid_xml")
    return Notification(notification_id=notification_id, case_id=case_id, fields=fields)
