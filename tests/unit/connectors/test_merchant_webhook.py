"""The merchant webhook's sender against the merchant's sandbox receiver, which verifies with the Standard Webhooks
reference library (``standardwebhooks``), never with refundflow's signing code."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from local.simulators.base import FaultRule
from local.simulators.merchant import LOCAL_SIGNING_SECRET, MerchantWebhookReceiver
from refundflow.connectors.http import HttpClient
from refundflow.connectors.merchant_webhook import StandardWebhookSender, canonical_body, signature_headers, signing_key
from refundflow.errors import ConfigurationError, TransientError
from tests.support.servers import serve_wsgi

BODY = {
    "type": "refund.issued",
    "timestamp": "2026-12-06T10:00:00+00:00",
    "data": {"refund_id": "rf_1", "amount": {"minor_units": 4990, "currency": "EUR"}, "message": "Grüße, 49.90 EUR"},
}


@pytest.fixture
def receiver() -> Iterator[tuple[MerchantWebhookReceiver, str]]:
    merchant = MerchantWebhookReceiver()
    with serve_wsgi(merchant) as base:
        yield merchant, f"{base}/webhooks/refunds"


def sender(url: str, secret: str = LOCAL_SIGNING_SECRET, clock: Any = time.time) -> StandardWebhookSender:
    http = HttpClient(platform="merchant_webhook", base_url=url, timeout=(2.0, 5.0))
    return StandardWebhookSender(url, lambda: {"signing_secret": secret}, http=http, clock=clock)


def test_the_signature_is_the_standard_one(receiver: tuple[MerchantWebhookReceiver, str]) -> None:
    # GIVEN the headers we sign WHEN the reference library verifies them THEN it returns the body
    raw = canonical_body(BODY)
    now = int(time.time())
    headers = signature_headers(signing_key(LOCAL_SIGNING_SECRET), "msg_rf_1_issued", now, raw)
    assert Webhook(LOCAL_SIGNING_SECRET).verify(raw, headers) == BODY
    assert headers["webhook-signature"] == Webhook(LOCAL_SIGNING_SECRET).sign(
        "msg_rf_1_issued", datetime.fromtimestamp(now, UTC), raw.decode()
    )


def test_a_message_reaches_the_merchant_once_whatever_the_retries(
    receiver: tuple[MerchantWebhookReceiver, str],
) -> None:
    merchant, url = receiver
    # WHEN the same message is sent three times (the queue redelivered it)
    for _ in range(3):
        sender(url).send(message_id="msg_rf_1_issued", body=BODY)
    # THEN the merchant kept it once, verified, with every attempt counted under its id
    (message,) = merchant.messages_about("rf_1")
    assert (message["webhook_id"], message["type"], message["attempts"]) == ("msg_rf_1_issued", "refund.issued", 3)
    assert message["data"] == BODY["data"]
    assert merchant.refused == []


def test_a_refusal_is_a_retry_with_the_merchants_wait(receiver: tuple[MerchantWebhookReceiver, str]) -> None:
    merchant, url = receiver
    merchant.add_fault(FaultRule(method="POST", path="^/webhooks/refunds$", status=429, headers={"Retry-After": "12"}))
    with pytest.raises(TransientError) as limited:
        sender(url).send(message_id="msg_rf_1_issued", body=BODY)
    assert limited.value.retry_after_seconds == 12
    merchant.inject_fault("receive", "transient")
    with pytest.raises(TransientError):
        sender(url).send(message_id="msg_rf_1_issued", body=BODY)
    assert merchant.messages_about() == []
    sender(url).send(message_id="msg_rf_1_issued", body=BODY)
    assert len(merchant.messages_about()) == 1


def test_a_wrong_secret_or_a_stale_clock_is_refused_by_the_merchant(
    receiver: tuple[MerchantWebhookReceiver, str],
) -> None:
    merchant, url = receiver
    other = "whsec_" + base64.b64encode(b"another-merchant-secret-32-bytes!").decode()
    with pytest.raises(TransientError):
        sender(url, secret=other).send(message_id="msg_rf_1_issued", body=BODY)
    with pytest.raises(TransientError):
        sender(url, clock=lambda: time.time() - 600).send(message_id="msg_rf_1_issued", body=BODY)
    assert [refusal["status"] for refusal in merchant.refused] == [401, 401]
    assert merchant.messages_about() == []


@pytest.mark.parametrize("secret", ["not-whsec", "whsec_!!!", "whsec_" + "c2hvcnQ="])
def test_a_secret_that_is_no_signing_key_is_a_configuration_error(secret: str) -> None:
    with pytest.raises(ConfigurationError):
        signing_key(secret)
