"""AdyenInbound: the simulator's real deliveries verified and reduced to refund events; forged, partial and
key-rotated batches; the answer Adyen needs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.adyen import DEFAULT_API_KEY, DEFAULT_HMAC_KEY, DEFAULT_MERCHANT_ACCOUNT, AdyenSimulator
from refundflow.errors import AuthenticationFailed, ConfigurationError
from refundflow.models import PaymentProvider
from refundflow.money import Money
from refundflow.platforms.adyen.inbound import AdyenInbound
from refundflow.platforms.adyen.notifications import NotificationItem
from refundflow.ports import ProviderRefundStatus
from tests.platforms.adyen.receiver import Receiver
from tests.support.servers import serve_wsgi

REFUND_ID = "rf_0123456789abcdef0123456789abcdef"
NEW_KEY = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF"
SECRET = {"hmac_keys": [DEFAULT_HMAC_KEY]}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[AdyenSimulator, str, Receiver]]:
    endpoint = Receiver()
    simulator = AdyenSimulator(settle_after_seconds=None, notify_payments=False)
    with serve_wsgi(endpoint) as hook, serve_wsgi(simulator) as url:
        simulator.send_webhooks_to(f"{hook}/webhooks/adyen")
        yield simulator, url, endpoint


@pytest.fixture
def simulator(served: tuple[AdyenSimulator, str, Receiver]) -> AdyenSimulator:
    simulator, url, endpoint = served
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    simulator.webhooks.configure(simulator.webhooks.url, DEFAULT_HMAC_KEY)
    endpoint.clear()
    return simulator


@pytest.fixture
def endpoint(served: tuple[AdyenSimulator, str, Receiver]) -> Receiver:
    return served[2]


def refunded(
    simulator: AdyenSimulator, url: str, value: int, *, currency: str = "EUR", reference: str = REFUND_ID
) -> str:
    psp = simulator.create_payment(value=10 * value, currency=currency)["pspReference"]
    answer = requests.post(
        f"{url}/checkout/v71/payments/{psp}/refunds",
        json={
            "merchantAccount": DEFAULT_MERCHANT_ACCOUNT,
            "amount": {"currency": currency, "value": value},
            "reference": reference,
        },
        headers={"X-API-Key": DEFAULT_API_KEY},
        timeout=5,
    )
    return str(answer.json()["pspReference"])


def test_a_refund_notification_becomes_a_succeeded_refund_of_ours(
    served: tuple[AdyenSimulator, str, Receiver], simulator: AdyenSimulator, endpoint: Receiver
) -> None:
    # GIVEN Adyen's REFUND success=true for a refund of ours
    refund_psp = refunded(simulator, served[1], 4_500)
    simulator.settle_refund(refund_psp, True)
    raw = endpoint.wait_for(1) and endpoint.bodies[0]
    # WHEN verified
    delivery = AdyenInbound().verify({"Content-Type": "application/json"}, raw, SECRET)
    # THEN one event: our refund, succeeded, on the payment, and the answer Adyen waits for
    (event,) = delivery.events
    (refund,) = event.refunds
    assert (refund.status, refund.refund_id, refund.provider_refund_id) == (
        ProviderRefundStatus.SUCCEEDED,
        REFUND_ID,
        refund_psp,
    )
    assert refund.amount == Money(minor_units=4_500, currency="EUR")
    assert event.payment is not None
    assert event.payment.provider is PaymentProvider.ADYEN
    assert event.event_id == f"{refund_psp}:REFUND:true"
    assert (delivery.answer.status, delivery.answer.body) == (200, "[accepted]")


@pytest.mark.parametrize(
    ("event", "success", "reason_starts"),
    [
        ("REFUND", False, "Declined"),
        ("REFUND_FAILED", True, "REFUND_FAILED"),
        ("REFUNDED_REVERSED", True, "REFUNDED_REVERSED"),
    ],
)
def test_failures_and_late_failures_are_failed_refunds(
    served: tuple[AdyenSimulator, str, Receiver],
    simulator: AdyenSimulator,
    endpoint: Receiver,
    event: str,
    success: bool,
    reason_starts: str,
) -> None:
    refund_psp = refunded(simulator, served[1], 1_000)
    if event != "REFUND":
        simulator.settle_refund(refund_psp, True)
    simulator.decide(refund_psp, event, success, "Declined" if event == "REFUND" else None)
    endpoint.wait_for(1 if event == "REFUND" else 2)
    delivery = AdyenInbound().verify({}, endpoint.bodies[-1], SECRET)
    (refund,) = delivery.events[0].refunds
    assert refund.status is ProviderRefundStatus.FAILED
    assert refund.failure_reason is not None
    assert refund.failure_reason.startswith(reason_starts)


def test_a_batch_gives_one_event_per_item(
    served: tuple[AdyenSimulator, str, Receiver], simulator: AdyenSimulator, endpoint: Receiver
) -> None:
    simulator.hold_notifications(True)
    first = refunded(simulator, served[1], 100)
    second = refunded(simulator, served[1], 200, reference="rf_ffffffffffffffffffffffffffffffff")
    simulator.settle_refund(first, True)
    simulator.settle_refund(second, False)
    simulator.hold_notifications(False)
    endpoint.wait_for(1)
    delivery = AdyenInbound().verify({}, endpoint.bodies[0], SECRET)
    assert [(event.refunds[0].provider_refund_id, event.refunds[0].status) for event in delivery.events] == [
        (first, ProviderRefundStatus.SUCCEEDED),
        (second, ProviderRefundStatus.FAILED),
    ]


def test_a_batch_with_one_forged_item_is_refused_whole(
    served: tuple[AdyenSimulator, str, Receiver], simulator: AdyenSimulator, endpoint: Receiver
) -> None:
    simulator.hold_notifications(True)
    for value in (100, 200):
        simulator.settle_refund(refunded(simulator, served[1], value), True)
    simulator.hold_notifications(False)
    endpoint.wait_for(1)
    document: dict[str, Any] = json.loads(endpoint.bodies[0])
    document["notificationItems"][1]["NotificationRequestItem"]["success"] = "false"
    with pytest.raises(AuthenticationFailed):
        AdyenInbound().verify({}, json.dumps(document).encode(), SECRET)


def test_rotation(served: tuple[AdyenSimulator, str, Receiver], simulator: AdyenSimulator, endpoint: Receiver) -> None:
    # GIVEN Adyen signing with a new key
    simulator.webhooks.configure(simulator.webhooks.url, NEW_KEY)
    simulator.settle_refund(refunded(simulator, served[1], 100), True)
    endpoint.wait_for(1)
    raw = endpoint.bodies[0]
    # THEN the old key alone refuses it, old and new together accept it
    with pytest.raises(AuthenticationFailed):
        AdyenInbound().verify({}, raw, SECRET)
    assert len(AdyenInbound().verify({}, raw, {"hmac_keys": [DEFAULT_HMAC_KEY, NEW_KEY]}).events) == 1


def test_isk_amounts_come_back_in_iso_units(
    served: tuple[AdyenSimulator, str, Receiver], simulator: AdyenSimulator, endpoint: Receiver
) -> None:
    simulator.settle_refund(refunded(simulator, served[1], 279_000, currency="ISK"), True)
    endpoint.wait_for(1)
    (event,) = AdyenInbound().verify({}, endpoint.bodies[0], SECRET).events
    assert event.refunds[0].amount == Money(minor_units=2_790, currency="ISK")


def test_items_we_do_not_act_on_are_verified_then_dropped() -> None:
    from local.simulators.adyen import sign_item

    item = {
        "amount": {"currency": "EUR", "value": 1130},
        "eventCode": "AUTHORISATION",
        "eventDate": "2026-12-06T03:00:00+00:00",
        "merchantAccountCode": DEFAULT_MERCHANT_ACCOUNT,
        "merchantReference": "order-1",
        "pspReference": "7914073381342284",
        "success": "true",
    }
    body = {
        "live": "false",
        "notificationItems": [
            {
                "NotificationRequestItem": {
                    **item,
                    "additionalData": {"hmacSignature": sign_item(item, DEFAULT_HMAC_KEY)},
                }
            }
        ],
    }
    delivery = AdyenInbound().verify({}, json.dumps(body).encode(), SECRET)
    assert delivery.events == []
    assert delivery.answer.body == "[accepted]"


@pytest.mark.parametrize(
    "secret", [{}, {"hmac_keys": "abc"}, {"hmac_keys": ["zz"]}], ids=["none", "not-list", "not-hex"]
)
def test_a_bad_verification_secret_is_a_configuration_error(secret: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        AdyenInbound().verify({}, b'{"notificationItems": []}', secret)


def test_captured_payments_are_told_by_authorisation_and_capture(
    served: tuple[AdyenSimulator, str, Receiver], simulator: AdyenSimulator, endpoint: Receiver
) -> None:
    # GIVEN one payment captured at once and one authorised, then captured (ISK: Adyen's two decimals)
    simulator.notify_payments = True
    try:
        immediate = simulator.seed_payment(2_790, "ISK")["payment_id"]
        later = simulator.seed_payment(4_200, "EUR", settled=False)["payment_id"]
        simulator.capture_payment(later)
    finally:
        simulator.notify_payments = False
    endpoint.wait_for(3)
    # WHEN verified
    events = [event for body in endpoint.bodies for event in AdyenInbound().verify({}, body, SECRET).events]
    # THEN the immediate capture and the later CAPTURE say what is captured (in ISO units); the bare
    # authorisation says nothing
    told = [(event.event_type, payment.payment_id, payment.captured) for event in events for payment in event.payments]
    assert told == [
        ("AUTHORISATION", immediate, Money(minor_units=2_790, currency="ISK")),
        ("CAPTURE", later, Money(minor_units=4_200, currency="EUR")),
    ]
    assert all(event.refunds == [] for event in events)


@pytest.mark.parametrize(
    ("include_arn", "method", "has_arn"), [(False, "visa", False), (True, "visa", True), (True, "ideal", False)]
)
def test_the_arn_comes_in_the_refund_webhook_only_with_include_arn_and_only_for_card_brands(
    served: tuple[AdyenSimulator, str, Receiver],
    simulator: AdyenSimulator,
    endpoint: Receiver,
    include_arn: bool,
    method: str,
    has_arn: bool,
) -> None:
    # GIVEN the webhook's "Include ARN" setting, and a refund of a payment made with ``method``
    answer = requests.post(f"{served[1]}/_control/webhook-settings", json={"include_arn": include_arn}, timeout=5)
    assert answer.status_code == 200
    psp = simulator.create_payment(value=10_000, currency="EUR", payment_method=method)["pspReference"]
    made = requests.post(
        f"{served[1]}/checkout/v71/payments/{psp}/refunds",
        json={
            "merchantAccount": DEFAULT_MERCHANT_ACCOUNT,
            "amount": {"currency": "EUR", "value": 2_500},
            "reference": REFUND_ID,
        },
        headers={"X-API-Key": DEFAULT_API_KEY},
        timeout=5,
    ).json()["pspReference"]
    # WHEN Adyen's REFUND success=true arrives and is verified
    simulator.settle_refund(made, True)
    raw = endpoint.wait_for(1) and endpoint.bodies[0]
    (event,) = AdyenInbound().verify({"Content-Type": "application/json"}, raw, SECRET).events
    (refund,) = event.refunds
    # THEN the refund carries the ARN exactly when the item did (additionalData.arn)
    sent = json.loads(raw)["notificationItems"][0]["NotificationRequestItem"].get("additionalData", {}).get("arn")
    assert (sent is not None) == has_arn
    assert refund.acquirer_reference == sent


def test_an_arn_on_a_failed_refund_or_of_the_wrong_shape_is_not_taken() -> None:
    base = {
        "amount": {"value": 100, "currency": "EUR"},
        "eventCode": "REFUND",
        "eventDate": "2026-12-07T10:00:00+01:00",
        "merchantAccountCode": "Shop",
        "merchantReference": REFUND_ID,
        "originalReference": "PSP1",
        "pspReference": "PSP2",
        "success": "true",
    }
    assert NotificationItem.model_validate({**base, "additionalData": {"arn": "74123456789"}}).acquirer_reference == (
        "74123456789"
    )
    assert (
        NotificationItem.model_validate(
            {**base, "success": "false", "additionalData": {"arn": "74123456789"}}
        ).acquirer_reference
        is None
    )
    assert NotificationItem.model_validate({**base, "additionalData": {"arn": "74 12 <b>"}}).acquirer_reference is None
    assert (
        NotificationItem.model_validate(
            {**base, "additionalData": {"acquirerReference": "74123456789"}}
        ).acquirer_reference
        is None
    )
