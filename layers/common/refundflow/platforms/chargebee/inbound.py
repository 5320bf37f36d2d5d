"""Chargebee's webhooks at ``POST /webhooks/chargebee``: the sender is authenticated, the body is news only.

Chargebee signs no webhook body. Its documented protection is HTTP Basic authentication on the webhook URL
(the username and password set with the webhook in Settings > Webhooks), and it recommends reading the object
again through the API. So:

- the verification secret (``<SecretsPrefix>webhooks/chargebee``, intake only) is ``{"basic_auth": ["user:password",
  ...]}``, several while one replaces another; a delivery without ``Authorization: Basic`` naming one of them
  (compared in constant time, every entry tried) is refused (401);
- nothing of the body is taken as truth: a refund-related event becomes a ``ProviderEvent`` naming only the
  invoice (``payment``) and, as a pointer, the refund transaction's id (``named_refund_ids``); it carries no
  refund. The platform's function then reads each of our open refunds on that invoice, and a paid refund the
  pointer names, from the API (``GET /transactions/{id}``, by the id Chargebee gave when the refund was made)
  before anything changes. Someone holding the credentials can make us read, never make us believe;
- Chargebee sends no timestamp we could bound: a replayed event is recognised by its ``id`` (``ev_...``) and
  forwarded once; Chargebee retries a failed delivery for about two days, and wants any 2xx back.

Events read: ``payment_refunded``, ``refund_initiated`` and ``transaction_updated`` / ``transaction_created`` whose
transaction is a refund (``type: refund``). Every other event is acknowledged and carries nothing.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar

from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform, ProviderEvent

PLATFORM = "chargebee"
REFUND_EVENTS = ("payment_refunded", "refund_initiated")
TRANSACTION_EVENTS = ("transaction_updated", "transaction_created")
ACK = InboundAnswer(status=200, content_type="application/json", body='{"received": true}')
MAX_ID_LENGTH = 100


def credentials(secret: Mapping[str, Any]) -> list[bytes]:
    """The ``user:password`` pairs of the verification secret.

    Raises:
        ConfigurationError: no list of non-empty ``user:password`` strings.
    """
    pairs = secret.get("basic_auth")
    if not isinstance(pairs, list) or not pairs:
        raise ConfigurationError("the Chargebee verification secret needs basic_auth: ['user:password', ...]")
    found: list[bytes] = []
    for pair in pairs:
        if not isinstance(pair, str) or ":" not in pair or not pair.split(":", 1)[0] or not pair.split(":", 1)[1]:
            raise ConfigurationError("a Chargebee basic_auth entry is not 'user:password'")
        found.append(pair.encode("utf-8"))
    return found


def authorization(headers: Mapping[str, str]) -> bytes:
    """The decoded ``user:password`` of the delivery's ``Authorization: Basic`` header.

    Raises:
        AuthenticationFailed: no Basic authorization, or not base64.
    """
    value = next((item for key, item in headers.items() if key.lower() == "authorization"), None)
    if not value or not value[:6].lower() == "basic ":
        raise AuthenticationFailed("a Chargebee delivery without Basic credentials")
    try:
        return base64.b64decode(value[6:].strip(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise AuthenticationFailed("Chargebee Basic credentials are not base64") from error


def authenticated(headers: Mapping[str, str], secret: Mapping[str, Any]) -> None:
    """Raises: AuthenticationFailed: the credentials are none of the secret's."""
    expected = credentials(secret)
    received = authorization(headers)
    matched = False
    for pair in expected:  # every entry is tried, so the time does not tell which one matched
        matched |= hmac.compare_digest(pair, received)
    if not matched:
        raise AuthenticationFailed("Chargebee Basic credentials do not match")


class ChargebeeInbound(InboundPlatform):
    name: ClassVar[str] = PLATFORM

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        """The event's news (the invoice it is about), once the sender is authenticated.

        Raises:
            AuthenticationFailed: missing or wrong Basic credentials.
            InvalidRequest: not a Chargebee event.
            ConfigurationError: a verification secret of another shape.
        """
        authenticated(headers, secret)
        try:
            event = json.loads(raw_body)
        except (UnicodeDecodeError, ValueError) as error:
            raise InvalidRequest("a Chargebee event must be JSON", code="invalid_webhook") from error
        if not isinstance(event, dict) or event.get("object") != "event":
            raise InvalidRequest("not a Chargebee event", code="invalid_webhook")
        event_id, event_type = event.get("id"), event.get("event_type")
        if not _identifier(event_id) or not isinstance(event_type, str) or not event_type:
            raise InvalidRequest("a Chargebee event without id or event_type", code="invalid_webhook")
        content = event.get("content")
        invoice_id = _invoice_of(event_type, content)
        if invoice_id is None:
            return InboundDelivery(events=[], answer=ACK)
        return InboundDelivery(
            events=[
                ProviderEvent(
                    provider=PaymentProvider.CHARGEBEE,
                    event_id=str(event_id),
                    event_type=event_type,
                    occurred_at=_occurred_at(event.get("occurred_at")),
                    refunds=[],
                    payment=PaymentReference(
                        provider=PaymentProvider.CHARGEBEE, payment_id=invoice_id, locator={"kind": "invoice"}
                    ),
                    named_refund_ids=_refund_transaction_of(content),
                )
            ],
            answer=ACK,
        )


def _identifier(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH and value.isprintable() and " " not in value


def _invoice_of(event_type: str, content: Any) -> str | None:
    """The invoice a refund event names, or None for an event that is not about a refund."""
    if not isinstance(content, dict):
        return None
    transaction = content.get("transaction")
    transaction = transaction if isinstance(transaction, dict) else {}
    if event_type in TRANSACTION_EVENTS:
        if transaction.get("type") != "refund":
            return None
    elif event_type not in REFUND_EVENTS:
        return None
    invoice = content.get("invoice")
    if isinstance(invoice, dict) and _identifier(invoice.get("id")):
        return str(invoice["id"])
    for note in (content.get("credit_note"), *(transaction.get("linked_credit_notes") or [])):
        if isinstance(note, dict):
            reference = note.get("reference_invoice_id") or note.get("cn_reference_invoice_id")
            if _identifier(reference):
                return str(reference)
    return None


def _refund_transaction_of(content: Any) -> list[str]:
    """The refund transaction the event names, as a pointer only: a paid refund that Chargebee later turns
    ``late_failure`` is read again by that id (our open refunds are read through the invoice anyway)."""
    transaction = content.get("transaction") if isinstance(content, dict) else None
    if isinstance(transaction, dict) and transaction.get("type") == "refund" and _identifier(transaction.get("id")):
        return [str(transaction["id"])]
    return []


def _occurred_at(value: Any) -> datetime:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**37:
        return datetime.fromtimestamp(value, UTC)
    return datetime.now(UTC)


@cache
def inbound() -> ChargebeeInbound:
    return ChargebeeInbound()
