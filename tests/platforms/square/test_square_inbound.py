"""Square's webhooks: ``x-square-hmacsha256-signature`` over the registered notification URL and the raw body
(good, forged, another key, another URL, no header, a key being rotated), redeliveries under one event id, the
refund events reduced to news naming our refund, other events acknowledged as nothing, and the simulator's
bodies valid for Square's documented envelope and the spec's ``PaymentRefund``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from local.simulators.square import MANUAL, SIGNATURE_HEADER, SquareSimulator
from refundflow.api import RefundRequestBody
from refundflow.connectors.http import HttpClient
from refundflow.errors import AuthenticationFailed, ConfigurationError, InvalidRequest
from refundflow.ids import derive_refund_id
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.platforms.square.connector import SquareRefundProvider
from refundflow.platforms.square.inbound import SquareInbound
from refundflow.platforms.square.refunds import reason_text
from refundflow.ports import ProviderRefundRequest, ProviderRefundStatus
from tests.platforms.square import contract
from tests.support.servers import serve_wsgi

EVENTS = Path(__file__).resolve().parents[3] / "events" / "square"
URL = "https://refunds.example.com/webhooks/square"
KEY = "aXlNmeZ3w0Xx-signature-key"
SECRET = {"signature_keys": [KEY], "notification_urls": [URL]}
REFUND_ID = derive_refund_id("square-tests", "inbound")


def signed(body: bytes, *, url: str = URL, key: str = KEY) -> dict[str, str]:
    digest = hmac.new(key.encode(), url.encode() + body, hashlib.sha256).digest()
    return {"Content-Type": "application/json", "X-Square-Hmacsha256-Signature": base64.b64encode(digest).decode()}


def event(kind: str = "refund.updated", status: str = "COMPLETED", **refund: Any) -> bytes:
    body = {
        "id": "R2B3Z8WMVt3EAmzYWLZvz7Y69EbZY_KlWP8IC1557ddwc9QWTKrCVU6m0JXDz15R2Qym5eQfR",
        "status": status,
        "amount_money": {"amount": 1_000, "currency": "USD"},
        "payment_id": "R2B3Z8WMVt3EAmzYWLZvz7Y69EbZY",
        "reason": reason_text(REFUND_ID, RefundReason.DAMAGED, "ORDER-7"),
        **refund,
    }
    return json.dumps(
        {
            "merchant_id": "6SSW7HV8K2ST5",
            "type": kind,
            "event_id": "6a8f5f28-54a1-4eb0-a98a-3111513fd4fc",
            "created_at": "2026-12-06T05:12:08.111Z",
            "data": {"type": "refund", "id": body["id"], "object": {"refund": body}},
        }
    ).encode()


def test_a_signed_refund_event_is_news_of_our_refund() -> None:
    body = event()
    delivery = SquareInbound().verify(signed(body), body, SECRET)
    [news] = delivery.events
    assert (news.provider, news.event_id, news.event_type) == (
        PaymentProvider.SQUARE,
        "6a8f5f28-54a1-4eb0-a98a-3111513fd4fc",
        "refund.updated",
    )
    assert news.payment is not None
    assert news.payment.payment_id == "R2B3Z8WMVt3EAmzYWLZvz7Y69EbZY"
    [refund] = news.refunds
    assert (refund.refund_id, refund.amount, refund.status) == (
        REFUND_ID,
        Money.of(1_000, "USD"),
        ProviderRefundStatus.SUCCEEDED,
    )
    assert news.occurred_at.isoformat() == "2026-12-06T05:12:08.111000+00:00"
    assert delivery.answer.status == 200


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        pytest.param(lambda body: signed(body), lambda body: body.replace(b"1000", b"9000"), id="forged-body"),
        pytest.param(lambda body: signed(body, key=KEY + "x"), lambda body: body, id="another-key"),
        pytest.param(lambda body: signed(body, url=URL + "/"), lambda body: body, id="another-url"),
        pytest.param(lambda body: signed(body, url=URL.replace("https", "http")), lambda body: body, id="http-url"),
        pytest.param(lambda body: {"Content-Type": "application/json"}, lambda body: body, id="unsigned"),
        pytest.param(lambda body: {SIGNATURE_HEADER: " "}, lambda body: body, id="blank-signature"),
        pytest.param(lambda body: signed(body), lambda body: b"", id="empty-body"),
    ],
)
def test_a_delivery_square_did_not_sign_for_this_url_is_refused(
    headers: Callable[[bytes], dict[str, str]], body: Callable[[bytes], bytes]
) -> None:
    original = event()
    with pytest.raises(AuthenticationFailed):
        SquareInbound().verify(headers(original), body(original), SECRET)


def test_both_keys_verify_while_one_replaces_the_other() -> None:
    body = event()
    rotating = {"signature_keys": ["new-key", KEY], "notification_urls": [URL]}
    assert SquareInbound().verify(signed(body), body, rotating).events
    assert SquareInbound().verify(signed(body, key="new-key"), body, rotating).events


def test_other_events_are_acknowledged_as_nothing_and_a_refund_event_without_a_refund_is_refused() -> None:
    payment = json.dumps({"type": "payment.updated", "event_id": "e1", "data": {"type": "payment"}}).encode()
    assert SquareInbound().verify(signed(payment), payment, SECRET).events == []
    empty = json.dumps({"type": "refund.updated", "event_id": "e2", "data": {"type": "refund"}}).encode()
    with pytest.raises(InvalidRequest):
        SquareInbound().verify(signed(empty), empty, SECRET)
    for bad in (b"[]", b"{not json", json.dumps({"type": "refund.updated"}).encode()):
        with pytest.raises(InvalidRequest):
            SquareInbound().verify(signed(bad), bad, SECRET)
    odd = event(status="SOMETHING")
    with pytest.raises(InvalidRequest):
        SquareInbound().verify(signed(odd), odd, SECRET)


def test_a_refund_made_elsewhere_is_news_without_our_refund_id() -> None:
    body = event(status="REJECTED", reason="Returned at the counter")
    [refund] = SquareInbound().verify(signed(body), body, SECRET).events[0].refunds
    assert refund.refund_id is None
    assert refund.status is ProviderRefundStatus.FAILED


def test_a_verification_secret_of_another_shape_is_a_configuration_error() -> None:
    body = event()
    for secret in ({}, {"signature_keys": [KEY]}, {"signature_keys": KEY, "notification_urls": [URL]}):
        with pytest.raises(ConfigurationError):
            SquareInbound().verify(signed(body), body, secret)


def test_the_sample_events_verify_and_match_the_spec() -> None:
    contract.contracts()
    for name in ("refund_created.json", "refund_updated.json"):
        body = (EVENTS / name).read_bytes()
        assert contract.event_errors(json.loads(body)) == [], name
        [news] = SquareInbound().verify(signed(body), body, SECRET).events
        assert news.refunds[0].refund_id is not None


class _RefusingOnce:
    """A notification URL that answers 500 to the first delivery, then 200 (Square then delivers again)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        with self.arrived:
            self.deliveries.append((dict(request.headers), request.get_data()))
            first = len(self.deliveries) == 1
            self.arrived.notify_all()
        return Response("", status=500 if first else 200)(environ, start_response)


@pytest.fixture
def redelivering() -> Iterator[tuple[SquareSimulator, _RefusingOnce, str, str]]:
    receiver = _RefusingOnce()
    with serve_wsgi(receiver) as receiver_url:
        simulator = SquareSimulator(webhook_url=receiver_url, settle_after_seconds=None)
        with serve_wsgi(simulator) as url:
            yield simulator, receiver, receiver_url, url
            simulator.webhooks.wait_idle(timeout=10)


def test_a_redelivery_is_the_same_event_and_the_simulators_bodies_match_the_spec(
    redelivering: tuple[SquareSimulator, _RefusingOnce, str, str],
) -> None:
    contract.contracts()
    simulator, receiver, receiver_url, url = redelivering
    secret = simulator.local_secrets()["verification"]
    assert secret["notification_urls"] == [receiver_url]
    # GIVEN a refund made at Square, whose refund.created the notification URL refuses once
    seeded = simulator.seed_payment(5_000, "EUR", behaviour=MANUAL)
    payment = PaymentReference(provider=PaymentProvider.SQUARE, payment_id=seeded["payment_id"])
    connector = SquareRefundProvider(
        access_token=simulator.local_secrets()["api"]["access_token"],
        http=HttpClient(platform="square", base_url=url, timeout=(5.0, 30.0)),
    )
    made = connector.create_refund(
        ProviderRefundRequest(
            refund_id=REFUND_ID,
            payment=payment,
            amount=Money.of(1_500, "EUR"),
            reason=RefundReason.OTHER,
            idempotency_key=f"{REFUND_ID}:refund",
        )
    )
    with receiver.arrived:
        assert receiver.arrived.wait_for(lambda: len(receiver.deliveries) >= 2, timeout=10)
    # THEN Square delivered the same body twice, signed for the registered URL, under one event id
    (first_headers, first), (second_headers, second) = receiver.deliveries[:2]
    assert first == second
    inbound = SquareInbound()
    once, again = (inbound.verify(headers, body, secret).events[0] for headers, body in receiver.deliveries[:2])
    assert once.event_id == again.event_id
    assert once.refunds[0].provider_refund_id == made.provider_refund_id
    assert once.refunds[0].refund_id == REFUND_ID
    assert contract.event_errors(json.loads(first)) == []
    assert first_headers[SIGNATURE_HEADER.title()] == second_headers[SIGNATURE_HEADER.title()]


def test_the_sample_refund_request_is_a_valid_body() -> None:
    body = RefundRequestBody.model_validate(json.loads((EVENTS / "refund_request_partial.json").read_text()))
    assert body.payment.provider is PaymentProvider.SQUARE
