"""Adyen's ``NotificationRequest`` (Webhooks v1): a batch of items, each signed on its own.

A delivery is accepted only whole: every item must verify under one of the HMAC keys, or none is used
(a batch that verifies in part is forged or corrupted, and Adyen sends it again after our refusal).
Payment items (AUTHORISATION, CAPTURE) tell what is captured; every other item is verified and then dropped.

Refund items, as the Webhooks spec and docs.adyen.com/online-payments/refund describe them:
- ``REFUND``: the refund was processed (``success`` "true") or refused (``success`` "false", ``reason``);
- ``REFUND_FAILED``: a refund that succeeded failed later (the scheme returned it);
- ``REFUNDED_REVERSED``: the refunded money came back (e.g. the shopper's account was closed).
``pspReference`` is the refund's, ``originalReference`` the payment's, ``merchantReference`` the ``reference``
sent with the refund (refundflow sends its refund id there).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from refundflow.errors import AuthenticationFailed, InvalidRequest
from refundflow.platforms.adyen.signature import is_signed

REFUND_EVENTS = ("REFUND", "REFUND_FAILED", "REFUNDED_REVERSED")
PAYMENT_EVENTS = ("AUTHORISATION", "CAPTURE")
ACCEPTED = b"[accepted]"


class _Lenient(BaseModel):
    """Platform payloads ignore fields we do not read."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class NotificationAmount(_Lenient):
    value: StrictInt = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class NotificationItem(_Lenient):
    event_code: str = Field(alias="eventCode", min_length=1)
    success: Literal["true", "false"]
    psp_reference: str = Field(alias="pspReference", min_length=1, max_length=64)
    original_reference: str | None = Field(default=None, alias="originalReference", max_length=64)
    merchant_account: str = Field(alias="merchantAccountCode", min_length=1)
    merchant_reference: str = Field(default="", alias="merchantReference")
    amount: NotificationAmount
    event_date: datetime = Field(alias="eventDate")
    reason: str = ""
    payment_method: str | None = Field(default=None, alias="paymentMethod")
    additional_data: dict[str, Any] = Field(default_factory=dict, alias="additionalData")

    @property
    def is_refund_event(self) -> bool:
        return self.event_code in REFUND_EVENTS

    @property
    def captured_payment(self) -> str | None:
        """The payment this item says is captured in full, if it says so.

        ``CAPTURE`` success "true": the capture of ``originalReference``. ``AUTHORISATION`` success "true" with
        ``additionalData.captureDelayHours`` "0": a payment captured at once (Adyen adds the field when the merchant
        selects it under Additional data; without it an authorisation says nothing about the capture).
        ``additionalData`` is outside the signed fields: a forged "0" can at worst let a refund of an uncaptured
        payment be sent, which Adyen refuses (REFUND success "false").
        """
        if self.success != "true":
            return None
        if self.event_code == "CAPTURE":
            return self.original_reference
        if self.event_code == "AUTHORISATION" and str(self.additional_data.get("captureDelayHours")) == "0":
            return self.psp_reference
        return None

    @property
    def acquirer_reference(self) -> str | None:
        """The card network's reference of a successful REFUND: ``additionalData.arn``, there only with the webhook's
        additional setting "Include ARN" on ("only returned in CAPTURE and REFUND webhook events",
        docs.adyen.com/development-resources/webhooks/additional-settings; ``RefundAdditionalData.arn`` in the
        Webhooks v1 spec), for the brands Adyen makes ARNs for. ``acquirerReference`` ("Include Acquirer Reference",
        for reconciliation when Adyen Acquiring settles) is not taken: Adyen does not say it is the network's ARN a
        customer's bank can trace, and the customer is told it is. Like all of ``additionalData`` it is outside the
        item's HMAC: it is believed only on an item whose signed fields verified (a genuine REFUND), over TLS."""
        if self.event_code != "REFUND" or self.success != "true":
            return None
        found = self.additional_data.get("arn")
        if isinstance(found, str) and 6 <= len(found) <= 40 and found.isascii() and found.isalnum():
            return found
        return None

    @property
    def event_id(self) -> str:
        """Adyen sends no event id: an item is identified by its PSP reference, event code and success."""
        return f"{self.psp_reference}:{self.event_code}:{self.success}"


def verified_items(raw_body: bytes, keys: Sequence[bytes]) -> list[NotificationItem]:
    """Every item of the batch, each verified, then parsed.

    Raises:
        InvalidRequest: not a ``NotificationRequest`` (no items, not JSON, an item without its fields).
        AuthenticationFailed: an item is unsigned or signed with no key we hold (the whole batch is refused).
    """
    try:
        document = json.loads(raw_body)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidRequest("an Adyen notification must be JSON", code="invalid_webhook") from error
    wrappers = document.get("notificationItems") if isinstance(document, dict) else None
    if not isinstance(wrappers, list) or not wrappers:
        raise InvalidRequest("an Adyen notification carries notificationItems", code="invalid_webhook")
    raw_items: list[dict[str, Any]] = []
    for wrapper in wrappers:
        item = wrapper.get("NotificationRequestItem") if isinstance(wrapper, dict) else None
        if not isinstance(item, dict):
            raise InvalidRequest("a notification item without NotificationRequestItem", code="invalid_webhook")
        raw_items.append(item)
    for index, item in enumerate(raw_items):
        if not is_signed(item, keys):
            raise AuthenticationFailed(f"Adyen notification item {index} is not signed with a known HMAC key")
    try:
        return [NotificationItem.model_validate(item) for item in raw_items]
    except ValidationError as error:
        raise InvalidRequest(
            f"a signed Adyen notification item is malformed: {error.errors()[0]['msg']}", code="invalid_webhook"
        ) from error
