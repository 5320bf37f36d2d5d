"""Stripe's webhooks as an InboundPlatform: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`` is HMAC-SHA256 over
``"<t>.<raw body>"`` with the endpoint's signing secret (docs.stripe.com/webhooks#verify-manually).

Any ``v1`` signature made with any configured secret is accepted (secret rotation); the timestamp must be
within the tolerance in both directions (Stripe's SDK only checks the past). No SDK import: intake only
verifies. The secret is ``<SecretsPrefix>webhooks/stripe`` = ``{"webhook_secrets": ["whsec_…", …]}``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, ClassVar

from pydantic import Field, ValidationError

from refundflow.errors import AmountNotRepresentable, AuthenticationFailed, ConfigurationError, InvalidRequest
from refundflow.observability import logger
from refundflow.platforms.stripe.payloads import PLATFORM, StripeEvent, first_error, provider_event
from refundflow.ports import InboundAnswer, InboundDelivery, InboundPlatform
from refundflow.settings import EnvModel, load

SIGNATURE_HEADER = "stripe-signature"
DEFAULT_TOLERANCE_SECONDS = 300
_HEX_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
ACK = InboundAnswer(status=200, content_type="application/json", body='{"received": true}')


class StripeInboundSettings(EnvModel):
    webhook_tolerance_seconds: int = Field(
        default=DEFAULT_TOLERANCE_SECONDS, gt=0, alias="STRIPE_WEBHOOK_TOLERANCE_SECONDS"
    )


class StripeInbound(InboundPlatform):
    """Verifies Stripe deliveries (one event each) and reduces them to a ProviderEvent."""

    name: ClassVar[str] = PLATFORM

    def __init__(self, *, tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS, now: Callable[[], float] = time.time):
        if tolerance_seconds <= 0:
            raise ConfigurationError("webhook tolerance must be positive", platform=PLATFORM)
        self._tolerance = tolerance_seconds
        self._now = now

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secret: Mapping[str, Any]) -> InboundDelivery:
        """Verify ``Stripe-Signature`` over the raw body, then reduce the event.

        Raises:
            ConfigurationError: the secret has no ``webhook_secrets`` list of ``whsec_`` values.
            AuthenticationFailed: missing or malformed header, no signature matching, a timestamp
                older or newer than the tolerance.
            InvalidRequest: a verified body that is not a well-formed Stripe event.
        """
        timestamp = self.verify_signature(headers, raw_body, webhook_secrets(secret))
        try:
            event = StripeEvent.model_validate_json(raw_body)
        except ValidationError as error:
            raise InvalidRequest(
                f"verified body is not a Stripe event: {first_error(error)}", platform=PLATFORM
            ) from error
        logger.debug("stripe webhook verified", extra={"event_id": event.id, "signed_at": timestamp})
        try:
            reduced = provider_event(event)
        except (ValidationError, AmountNotRepresentable) as error:
            detail = first_error(error) if isinstance(error, ValidationError) else error.message
            raise InvalidRequest(
                f"{event.type} {event.id} carries a malformed object: {detail}", platform=PLATFORM
            ) from error
        return InboundDelivery(events=[reduced], answer=ACK)

    def verify_signature(self, headers: Mapping[str, str], raw_body: bytes, secrets: Sequence[str]) -> int:
        """The signed timestamp of a delivery whose signature checks out.

        Raises:
            AuthenticationFailed: with the precise reason.
        """
        keys = [value.encode() for value in secrets if value]
        if not keys:
            raise ConfigurationError("at least one Stripe webhook secret is needed", platform=PLATFORM)
        values = {value for key, value in headers.items() if key.lower() == SIGNATURE_HEADER}
        if not values or not any(value.strip() for value in values):
            raise AuthenticationFailed("missing Stripe-Signature header", platform=PLATFORM)
        if len(values) > 1:
            raise AuthenticationFailed("several different Stripe-Signature headers", platform=PLATFORM)
        timestamp, signatures = _parse_signature_header(values.pop())
        signed = timestamp.encode() + b"." + raw_body
        expected = [hmac.new(key, signed, hashlib.sha256).hexdigest() for key in keys]
        # Every candidate is compared against every secret in constant time; a match anywhere wins.
        matched = False
        for candidate in signatures:
            for digest in expected:
                matched |= hmac.compare_digest(digest, candidate)
        if not matched:
            raise AuthenticationFailed("no Stripe-Signature v1 signature matches the body", platform=PLATFORM)
        signed_at = int(timestamp)
        age = self._now() - signed_at
        if age > self._tolerance:
            raise AuthenticationFailed(
                f"Stripe-Signature timestamp is {age:.0f}s old (tolerance {self._tolerance}s)", platform=PLATFORM
            )
        if -age > self._tolerance:
            raise AuthenticationFailed(
                f"Stripe-Signature timestamp is {-age:.0f}s in the future (tolerance {self._tolerance}s)",
                platform=PLATFORM,
            )
        return signed_at


def webhook_secrets(secret: Mapping[str, Any]) -> list[str]:
    """The ``whsec_`` signing secrets of the verification secret.

    Raises:
        ConfigurationError: a secret of another shape.
    """
    values = secret.get("webhook_secrets")
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(value, str) and value.startswith("whsec_") for value in values)
    ):
        raise ConfigurationError("webhook_secrets must be a non-empty list of whsec_ secrets", platform=PLATFORM)
    return values


def _parse_signature_header(header: str) -> tuple[str, list[str]]:
    """``t`` and the ``v1`` values; other schemes are ignored, as Stripe documents."""
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, separator, value = item.strip().partition("=")
        if not separator or not key:
            raise AuthenticationFailed(f"malformed Stripe-Signature element {item.strip()[:20]!r}", platform=PLATFORM)
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not _TIMESTAMP.match(timestamps[0]):
        raise AuthenticationFailed("malformed Stripe-Signature: needs exactly one numeric t=", platform=PLATFORM)
    if not signatures:
        raise AuthenticationFailed("malformed Stripe-Signature: no v1 signature", platform=PLATFORM)
    # A signature that is not 64 lowercase hex digits (base64, upper case, truncated) can never
    # match; it is kept so the answer is the precise "no signature matches".
    return timestamps[0], [value for value in signatures if _HEX_SIGNATURE.match(value)] or [""]


@cache
def inbound() -> StripeInbound:
    """The process's Stripe webhook verifier (tolerance from STRIPE_WEBHOOK_TOLERANCE_SECONDS)."""
    return StripeInbound(tolerance_seconds=load(StripeInboundSettings).webhook_tolerance_seconds)
