"""The merchant's outbound webhook: one refund message per refund, POSTed to the merchant's endpoint and signed
per Standard Webhooks (standardwebhooks.com, "Signature scheme" and "Retry schedule"):

- headers ``webhook-id`` (the message's id: the same on every attempt, so the receiver drops repeats),
  ``webhook-timestamp`` (integer seconds of this attempt) and ``webhook-signature`` (``v1,`` + base64 HMAC-SHA256,
  keyed with the base64-decoded part of the ``whsec_`` secret, over ``{id}.{timestamp}.{body}``);
- the body is exact JSON bytes, sent as they were signed;
- a 2xx answer is success; anything else (or no answer) is retried by the customer queue with the same id, then the
  message waits in the queue's DLQ for a redrive.

Signed here with ``hmac`` (a few lines) rather than the ``standardwebhooks`` package intake verifies with: notify
then needs nothing beyond the shared layer; the tests verify these signatures with that package.

Not through EventBridge API destinations: a connection authorizes with Basic, an API key or OAuth client
credentials, and its header parameters are fixed values (docs.aws.amazon.com/eventbridge/latest/userguide/
eb-target-connection-auth.html, API_CreateConnection): nothing computes an HMAC of each body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from refundflow.connectors.http import HttpClient, retry_after_seconds
from refundflow.errors import ConfigurationError, OutcomeUnknownError, TransientError
from refundflow.ports import MerchantWebhook

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
PLATFORM = "merchant_webhook"


def signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret.

    Raises:
        ConfigurationError: not ``whsec_`` + base64 of at least 24 bytes.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ConfigurationError(f"the merchant webhook's signing secret does not start with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (ValueError, binascii.Error) as error:
        raise ConfigurationError("the merchant webhook's signing secret is not base64 after whsec_") from error
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"the merchant webhook's signing secret has {len(key)} bytes, {MIN_SECRET_BYTES} needed"
        )
    return key


def signature_headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": f"v1,{digest}"}


def canonical_body(body: Mapping[str, Any]) -> bytes:
    """The same bytes for the same message on every attempt (ASCII only: the client sends them as text)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()  # ASCII: \u escapes


class StandardWebhookSender(MerchantWebhook):
    """POSTs to one URL with one secret (``{"signing_secret": "whsec_..."}``, read when first needed), for the
    refunds of ``sources`` (source systems; None: all)."""

    def __init__(
        self,
        url: str,
        secret: Callable[[], Mapping[str, Any]],
        *,
        http: HttpClient | None = None,
        clock: Callable[[], float] = time.time,
        sources: frozenset[str] | None = None,
    ) -> None:
        self.url = url
        self.sources = sources
        self._secret = secret
        self._http = http
        self._clock = clock

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            self._http = HttpClient(platform=PLATFORM, base_url=self.url)
        return self._http

    def takes(self, source_system: str) -> bool:
        return self.sources is None or source_system in self.sources

    def send(self, *, message_id: str, body: Mapping[str, Any]) -> None:
        value = self._secret().get("signing_secret")
        if not isinstance(value, str):
            raise ConfigurationError("the merchant webhook's secret has no signing_secret")
        raw = canonical_body(body)
        headers = {
            "content-type": "application/json",
            **signature_headers(signing_key(value), message_id, int(self._clock()), raw),
        }
        try:
            response = self.http.request("POST", "", data=raw.decode(), headers=headers, absolute_url=self.url)
        except OutcomeUnknownError as error:  # a retry is harmless: the same webhook-id, which the merchant drops
            raise TransientError(f"the merchant's endpoint gave no answer: {error}", platform=PLATFORM) from error
        if not 200 <= response.status < 300:
            raise TransientError(
                f"the merchant's endpoint answered {response.status}",
                code="merchant_webhook_refused",
                platform=PLATFORM,
                retry_after_seconds=retry_after_seconds(response),
            )
