"""Mollie's webhooks as an InboundPlatform. Intake holds ``<SecretsPrefix>webhooks/mollie`` =
``{"signing_secrets": [...]}`` and no API key. Two kinds of delivery reach ``POST /webhooks/mollie``:

- **next-gen** (a subscription made in the Dashboard or with ``POST /v2/webhooks``; docs.mollie.com/reference/
  webhooks-new): a JSON event ``{resource: "event", id: "event_...", type, entityId, createdAt, _embedded: {entity}}``
  signed with ``X-Mollie-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` under the webhook's signing secret
  (docs.mollie.com/reference/webhooks-best-practices; during a rotation the header may carry one signature per
  secret). Verified on the raw body against every configured secret; ``refund.*`` events carry the refund
  (``refund.queued`` ... ``refund.refunded``, ``refund.failed``, ``refund.canceled``), ``payment.*`` events name a
  payment whose open refunds are then re-read; other types are acknowledged and forwarded as nothing.
- **classic** (the payment's ``webhookUrl``; docs.mollie.com/reference/webhooks): a form-encoded ``id=tr_...`` and
  nothing else, **unsigned**: anyone can send one. It is taken as news, never as truth: it names a payment only,
  carries no refund and no status, and Mollie's own function re-reads that payment's open refunds with its API key
  before anything changes (``domain.payments.apply_provider_event``). It is bounded: a tiny body of exactly that one
  field with a well-formed ``tr_`` id, or it is refused; deliveries naming the same payment within
  ``CLASSIC_COALESCE_SECONDS`` are one piece of news (a flood costs one look per payment per window, and a payment
  with no open refund of ours costs no API call at all). News coalesced away is not lost: Mollie's outcome is
  pollable, and the workflow polls.

A next-gen delivery whose signature does not verify, an unsigned body that is not a classic webhook, and a signed
body that is not an event are refused whole. Mollie's signature carries no time, so a replay cannot be told by age:
a replayed event is a duplicate by its id, and it only ever makes the function read the truth again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from refundflow.errors import AmountNotRepresentable, AuthenticationFailed, ConfigurationError, InvalidRequest
from refundflow.models import PaymentProvider, PaymentReference
from refundflow.observability import logger
from refundflow.platforms.mollie.amounts import PLATFORM
from refundflow.platforms.mollie.payloads import PAYMENT_ID, PayloadError, provider_refund
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform, ProviderEvent

SIGNATURE_HEADER = "x-mollie-signature"
SIGNATURE_PREFIX = "sha256="
CLASSIC_MAX_BYTES = 100
CLASSIC_COALESCE_SECONDS = 5.0
ACK = InboundAnswer(status=200, content_type="application/json", body='{"received": true}')


class MollieInbound(InboundPlatform):
    """Verifies next-gen deliveries by HMAC and bounds classic (unsigned) ones to a payment id to re-read."""

    name: ClassVar[str] = PLATFORM

    def __init__(
        self, *, now: Callable[[], float] = time.time, coalesce_seconds: float = CLASSIC_COALESCE_SECONDS
    ) -> None:
        self._now = now
        self._coalesce = coalesce_seconds

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        """A next-gen delivery verified by its signature, or a classic one reduced to its payment id.

        Raises:
            ConfigurationError: a verification secret of another shape.
            AuthenticationFailed: a signature that does not verify (or no secret to verify it with), or an
                unsigned body that is not a classic Mollie webhook.
            InvalidRequest: a verified body that is not a well-formed Mollie event.
        """
        signatures = _signatures(headers)
        if signatures is None:
            return self._classic(raw_body)
        secrets = _signing_secrets(secret)
        if not any(
            hmac.compare_digest(expected, given)
            for expected in (hmac.new(key.encode(), raw_body, hashlib.sha256).hexdigest() for key in secrets)
            for given in signatures
        ):
            raise AuthenticationFailed("X-Mollie-Signature does not verify", platform=PLATFORM)
        event = _event(raw_body)
        logger.info("mollie webhook verified", extra={"event_id": event["id"], "event_type": event["type"]})
        found = provider_event(event)
        return InboundDelivery(events=[] if found is None else [found], answer=ACK)

    def _classic(self, raw_body: bytes) -> InboundDelivery:
        """An unsigned classic webhook: a payment id to look at, nothing more."""
        if not raw_body or len(raw_body) > CLASSIC_MAX_BYTES:
            raise AuthenticationFailed("an unsigned delivery that is not a classic Mollie webhook", platform=PLATFORM)
        try:
            fields = parse_qsl(raw_body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as error:
            raise AuthenticationFailed(
                "an unsigned delivery that is not a classic Mollie webhook", platform=PLATFORM
            ) from error
        if len(fields) != 1 or fields[0][0] != "id" or not fields[0][1]:
            raise AuthenticationFailed("an unsigned delivery that is not a classic Mollie webhook", platform=PLATFORM)
        object_id = fields[0][1]
        if not object_id.startswith("tr_"):
            # Orders, subscriptions, payment links...: not ours to look at (Mollie still wants its 2xx).
            return InboundDelivery(events=[], answer=ACK)
        if not PAYMENT_ID.match(object_id):
            raise AuthenticationFailed(f"{object_id[:80]!r} is not a Mollie payment id", platform=PLATFORM)
        now = self._now()
        window = int(now // self._coalesce)
        logger.info("mollie classic webhook (unsigned news)", extra={"payment_id": object_id})
        return InboundDelivery(
            events=[
                ProviderEvent(
                    provider=PaymentProvider.MOLLIE,
                    event_id=f"classic:{object_id}:{window}",
                    event_type="classic.payment",
                    occurred_at=datetime.fromtimestamp(now, UTC),
                    payment=PaymentReference(provider=PaymentProvider.MOLLIE, payment_id=object_id),
                )
            ],
            answer=ACK,
        )


def provider_event(event: Mapping[str, Any]) -> ProviderEvent | None:
    """A verified next-gen event as the domain's ProviderEvent (None for types that are not about refunds).

    Raises:
        InvalidRequest: a refund event without a readable refund.
    """
    event_type = str(event["type"])
    occurred = _occurred_at(event.get("createdAt"))
    if event_type.startswith("refund."):
        entity = ((event.get("_embedded") or {}).get("entity")) if isinstance(event.get("_embedded"), dict) else None
        if not isinstance(entity, dict):
            raise InvalidRequest(f"{event_type} {event['id']} carries no refund", platform=PLATFORM)
        try:
            refund = provider_refund(entity)
        except (PayloadError, AmountNotRepresentable) as error:
            raise InvalidRequest(f"{event_type} {event['id']}: {error}", platform=PLATFORM) from error
        return ProviderEvent(
            provider=PaymentProvider.MOLLIE,
            event_id=str(event["id"]),
            event_type=event_type,
            occurred_at=occurred,
            refunds=[refund],
            payment=PaymentReference(provider=PaymentProvider.MOLLIE, payment_id=refund.payment_id),
        )
    entity_id = event.get("entityId")
    if event_type.startswith("payment.") and isinstance(entity_id, str) and PAYMENT_ID.match(entity_id):
        return ProviderEvent(
            provider=PaymentProvider.MOLLIE,
            event_id=str(event["id"]),
            event_type=event_type,
            occurred_at=occurred,
            payment=PaymentReference(provider=PaymentProvider.MOLLIE, payment_id=entity_id),
        )
    return None


def _signatures(headers: Mapping[str, str]) -> list[str] | None:
    """The hex signatures of ``X-Mollie-Signature`` (one per secret while rotating), or None when absent."""
    raw = next((value for name, value in headers.items() if name.lower() == SIGNATURE_HEADER), None)
    if raw is None:
        return None
    found = []
    for part in raw.split(","):
        value = part.strip()
        value = value[len(SIGNATURE_PREFIX) :] if value.startswith(SIGNATURE_PREFIX) else value
        if value:
            found.append(value.lower())
    if not found:
        raise AuthenticationFailed("X-Mollie-Signature is empty", platform=PLATFORM)
    return found


def _signing_secrets(secret: Mapping[str, Any]) -> list[str]:
    secrets = secret.get("signing_secrets")
    if not isinstance(secrets, list) or not all(isinstance(item, str) and item for item in secrets):
        raise ConfigurationError(
            "webhooks/mollie: signing_secrets must be a list of the next-gen webhooks' signing secrets",
            platform=PLATFORM,
        )
    if not secrets:
        raise AuthenticationFailed("a signed delivery, and no signing secret to verify it with", platform=PLATFORM)
    return list(secrets)


def _event(raw_body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(raw_body)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidRequest(f"a signed Mollie delivery that is not JSON: {error}", platform=PLATFORM) from error
    if not isinstance(event, dict) or event.get("resource") != "event":
        raise InvalidRequest("a signed Mollie delivery that is not an event", platform=PLATFORM)
    for key in ("id", "type"):
        if not isinstance(event.get(key), str) or not event[key]:
            raise InvalidRequest(f"a Mollie event without {key}", platform=PLATFORM)
    return event


def _occurred_at(created_at: object) -> datetime:
    if isinstance(created_at, str):
        try:
            found = datetime.fromisoformat(created_at)
            return found if found.tzinfo else found.replace(tzinfo=UTC)
        except ValueError:
            logger.warning("mollie event with an unreadable createdAt", extra={"created_at": created_at})
    return datetime.now(UTC)


@cache
def inbound() -> MollieInbound:
    """The process's Mollie webhook verifier."""
    return MollieInbound()
