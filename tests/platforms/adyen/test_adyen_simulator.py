"""The Adyen simulator's own strictness, spoken to over plain HTTP the way Adyen is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.adyen import (
    DEFAULT_API_KEY,
    DEFAULT_HMAC_KEY,
    DEFAULT_MERCHANT_ACCOUNT,
    OVER_REFUND_REASON,
    UNCAPTURED_REASON,
    AdyenSimulator,
    sign_item,
    signing_string,
)
from tests.platforms.adyen.receiver import Receiver
from tests.support.servers import serve_wsgi

OTHER_KEY = "AQE_test_other_key"
OTHER_ACCOUNT = "OtherMerchantECOM"


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    endpoint = Receiver()
    with serve_wsgi(endpoint) as url:
        yield endpoint, url


@pytest.fixture(scope="module")
def server(receiver: tuple[Receiver, str]) -> Iterator[tuple[AdyenSimulator, str]]:
    simulator = AdyenSimulator(
        {DEFAULT_API_KEY: [DEFAULT_MERCHANT_ACCOUNT], OTHER_KEY: [OTHER_ACCOUNT]},
        settle_after_seconds=None,
    )
    simulator._notifier.backoff_seconds = (0.05,)
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def simulator(server: tuple[AdyenSimulator, str], receiver: tuple[Receiver, str]) -> AdyenSimulator:
    simulator, url = server
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    receiver[0].clear()
    simulator.settle_after_seconds = None
    simulator.notify_payments = False  # refund notifications only, unless a test turns them on
    simulator.webhooks.configure(f"{receiver[1]}/webhooks/adyen", DEFAULT_HMAC_KEY)
    return simulator


@pytest.fixture
def url(server: tuple[AdyenSimulator, str], simulator: AdyenSimulator) -> str:
    return server[1]


@pytest.fixture
def endpoint(receiver: tuple[Receiver, str]) -> Receiver:
    return receiver[0]


def refund(
    url: str,
    psp: str,
    body: dict[str, Any] | None = None,
    *,
    key: str | None = DEFAULT_API_KEY,
    idempotency: str | None = None,
) -> requests.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    if idempotency is not None:
        headers["Idempotency-Key"] = idempotency
    payload = body if body is not None else {"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": eur(500)}
    return requests.post(f"{url}/checkout/v71/payments/{psp}/refunds", json=payload, headers=headers, timeout=5)


def eur(value: int) -> dict[str, Any]:
    return {"currency": "EUR", "value": value}


def pay(simulator: AdyenSimulator, value: int = 1_000, **kwargs: Any) -> str:
    return str(simulator.create_payment(value=value, currency="EUR", **kwargs)["pspReference"])


def test_published_hmac_test_vector() -> None:
    # GIVEN Adyen's published example item and key (docs "Verify HMAC signatures", adyen-python-api-library)
    item = {
        "pspReference": "7914073381342284",
        "merchantAccountCode": "TestMerchant",
        "merchantReference": "TestPayment-1407325143704",
        "amount": {"currency": "EUR", "value": 1130},
        "eventCode": "AUTHORISATION",
        "success": "true",
    }
    key = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
    # WHEN signed / THEN the documented string and signature come out
    assert (
        signing_string(item) == "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
    )
    assert sign_item(item, key) == "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="


def test_a_refund_is_received_and_nothing_more(simulator: AdyenSimulator, url: str) -> None:
    # GIVEN a captured payment
    psp = pay(simulator)
    # WHEN a refund is asked with our reference
    body = {"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": eur(400), "reference": "rf_1"}
    answer = refund(url, psp, body)
    # THEN 201 received, Adyen's fields, no outcome
    assert answer.status_code == 201
    data = answer.json()
    assert data["status"] == "received"
    assert data["paymentPspReference"] == psp
    assert len(data["pspReference"]) == 16
    assert data["amount"] == eur(400)
    assert data["reference"] == "rf_1"
    assert simulator.refunds()[0]["status"] == "received"


@pytest.mark.parametrize("key", [None, "wrong"], ids=["missing", "unknown"])
def test_api_key_required(simulator: AdyenSimulator, url: str, key: str | None) -> None:
    psp = pay(simulator)
    answer = refund(url, psp, key=key)
    assert answer.status_code == 401
    assert answer.json()["errorType"] == "security"
    assert answer.json()["errorCode"] == "000"
    assert simulator.refunds() == []


def test_merchant_account_must_belong_to_the_key(simulator: AdyenSimulator, url: str) -> None:
    psp = pay(simulator)
    answer = refund(url, psp, {"merchantAccount": OTHER_ACCOUNT, "amount": eur(100)})
    assert answer.status_code == 403
    assert answer.json()["errorCode"] == "901"


def test_unknown_payment_is_a_422(simulator: AdyenSimulator, url: str) -> None:
    answer = refund(url, "ABCDEFGHIJKLMNOP")
    assert answer.status_code == 422
    assert answer.json()["errorCode"] == "167"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"merchantAccount": DEFAULT_MERCHANT_ACCOUNT}, 422, "100"),
        ({"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": {"currency": "EUR", "value": "5"}}, 422, "137"),
        ({"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": {"currency": "EUR", "value": 0}}, 422, "137"),
        ({"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": {"currency": "eur", "value": 5}}, 422, "138"),
        ({"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": eur(5), "colour": "red"}, 400, "702"),
        ({"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": eur(5), "reference": "x" * 81}, 422, "702"),
        ({"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": eur(5), "merchantRefundReason": "BORED"}, 422, "702"),
        ({"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": eur(5), "splits": []}, 422, "702"),
        ({"amount": eur(5)}, 403, "901"),
    ],
    ids=[
        "no-amount",
        "string-value",
        "zero",
        "lowercase-currency",
        "unknown-field",
        "long-ref",
        "reason",
        "splits",
        "no-ma",
    ],
)
def test_request_validated_like_the_spec(
    simulator: AdyenSimulator, url: str, body: dict[str, Any], status: int, code: str
) -> None:
    psp = pay(simulator)
    answer = refund(url, psp, body)
    assert (answer.status_code, answer.json()["errorCode"]) == (status, code)
    assert simulator.refunds() == []


def test_same_key_same_body_replays_other_body_refused(simulator: AdyenSimulator, url: str) -> None:
    # GIVEN a refund made under a key
    psp = pay(simulator)
    first = refund(url, psp, idempotency="rf_1:refund")
    # WHEN the same request is sent again under it
    again = refund(url, psp, idempotency="rf_1:refund")
    # THEN the same answer, one refund, and the key echoed
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotency-Key"] == "rf_1:refund"
    assert len(simulator.refunds()) == 1
    # WHEN another body uses the key / THEN 422 and still one refund
    other = refund(url, psp, {"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": eur(1)}, idempotency="rf_1:refund")
    assert other.status_code == 422
    assert other.json()["errorCode"] == "704"
    assert len(simulator.refunds()) == 1


def test_idempotency_key_over_64_characters_is_refused(simulator: AdyenSimulator, url: str) -> None:
    psp = pay(simulator)
    assert refund(url, psp, idempotency="k" * 65).status_code == 422
    assert simulator.refunds() == []


def test_outcome_arrives_as_a_signed_refund_notification(
    simulator: AdyenSimulator, url: str, endpoint: Receiver
) -> None:
    # GIVEN a received refund
    psp = pay(simulator, merchant_reference="order-9")
    created = refund(url, psp, {"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": eur(300), "reference": "rf_9"})
    refund_psp = created.json()["pspReference"]
    # WHEN Adyen decides it
    simulator.settle_refund(refund_psp, True)
    # THEN one REFUND item, signed, carrying our reference and the payment's psp
    batch = endpoint.wait_for(1)[0]
    assert batch["live"] == "false"
    item = batch["notificationItems"][0]["NotificationRequestItem"]
    assert item["eventCode"] == "REFUND"
    assert item["success"] == "true"
    assert item["pspReference"] == refund_psp
    assert item["originalReference"] == psp
    assert item["merchantReference"] == "rf_9"
    assert item["amount"] == eur(300)
    assert item["additionalData"]["hmacSignature"] == sign_item(item, DEFAULT_HMAC_KEY)
    assert simulator.wait_delivered()
    assert simulator.webhooks.deliveries[0].delivered


def test_delivery_is_retried_until_accepted(simulator: AdyenSimulator, url: str, endpoint: Receiver) -> None:
    # GIVEN an endpoint that fails twice
    endpoint.refuse = 2
    psp = pay(simulator)
    refund_psp = refund(url, psp).json()["pspReference"]
    # WHEN the outcome is sent
    simulator.settle_refund(refund_psp, True)
    # THEN the same batch arrives three times and is then delivered
    bodies = endpoint.wait_for(3)
    assert simulator.wait_delivered()
    assert bodies[0] == bodies[2]
    assert simulator.webhooks.deliveries[0].attempts == 3
    assert simulator.webhooks.deliveries[0].delivered


def test_a_2xx_without_accepted_is_not_a_delivery(simulator: AdyenSimulator, url: str, endpoint: Receiver) -> None:
    from werkzeug.wrappers import Response

    calls: list[int] = []

    def answer(body: bytes) -> Response:
        calls.append(1)
        return Response("ok" if len(calls) == 1 else "[accepted]", status=200)

    endpoint.answer = answer
    psp = pay(simulator)
    simulator.settle_refund(refund(url, psp).json()["pspReference"], True)
    endpoint.wait_for(2)
    assert simulator.wait_delivered()
    assert simulator.webhooks.deliveries[0].attempts == 2


def test_held_notifications_go_out_as_one_batch(simulator: AdyenSimulator, url: str, endpoint: Receiver) -> None:
    # GIVEN two refunds decided while notifications are held
    simulator.hold_notifications(True)
    psp = pay(simulator)
    first = refund(url, psp, {"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": eur(100)}).json()
    second = refund(url, psp, {"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": eur(200)}).json()
    simulator.settle_refund(first["pspReference"], True)
    simulator.settle_refund(second["pspReference"], False, "Declined")
    # WHEN released
    simulator.hold_notifications(False)
    # THEN one request with both items, each with its own signature
    batch = endpoint.wait_for(1)[0]
    items = [wrapper["NotificationRequestItem"] for wrapper in batch["notificationItems"]]
    assert [item["success"] for item in items] == ["true", "false"]
    assert items[1]["reason"] == "Declined"
    assert all(item["additionalData"]["hmacSignature"] == sign_item(item, DEFAULT_HMAC_KEY) for item in items)


def test_money_rules_come_back_as_refund_false(simulator: AdyenSimulator, url: str, endpoint: Receiver) -> None:
    # GIVEN a captured payment of 10.00 and an uncaptured one, with automatic outcomes
    simulator.settle_after_seconds = 0.0
    captured = pay(simulator, 1_000)
    uncaptured = pay(simulator, 1_000, captured=False)
    # WHEN 8.00 then 3.00 are refunded, and the uncaptured payment is refunded
    for psp, value in ((captured, 800), (captured, 300), (uncaptured, 100)):
        assert refund(url, psp, {"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": eur(value)}).status_code == 201
    # THEN the first succeeds, the others are refused by notification with the reason
    endpoint.wait_for(3)
    by_value = {item["amount"]["value"]: item for item in endpoint.items()}
    assert by_value[800]["success"] == "true"
    assert (by_value[300]["success"], by_value[300]["reason"]) == ("false", OVER_REFUND_REASON)
    assert (by_value[100]["success"], by_value[100]["reason"]) == ("false", UNCAPTURED_REASON)


@pytest.mark.parametrize(
    ("behaviour", "late_event"), [("succeed_then_fail", "REFUND_FAILED"), ("succeed_then_reverse", "REFUNDED_REVERSED")]
)
def test_late_failures_follow_a_success(
    simulator: AdyenSimulator, url: str, endpoint: Receiver, behaviour: str, late_event: str
) -> None:
    simulator.settle_after_seconds = 0.0
    simulator.late_outcome_after_seconds = 0.0
    psp = pay(simulator, behaviour=behaviour)
    refund_psp = refund(url, psp).json()["pspReference"]
    endpoint.wait_for(2)
    events = [(item["eventCode"], item["success"], item["pspReference"]) for item in endpoint.items()]
    assert events == [("REFUND", "true", refund_psp), (late_event, "true", refund_psp)]


def test_a_decided_refund_cannot_be_decided_again(simulator: AdyenSimulator, url: str) -> None:
    psp = pay(simulator)
    refund_psp = refund(url, psp).json()["pspReference"]
    simulator.settle_refund(refund_psp, False)
    with pytest.raises(ValueError, match="already failed"):
        simulator.settle_refund(refund_psp, True)
    answer = requests.post(f"{url}/_control/refunds/{refund_psp}/outcome", json={"event": "REFUND_FAILED"}, timeout=5)
    assert answer.status_code == 409


def test_timeout_after_commit_makes_the_refund(simulator: AdyenSimulator, url: str) -> None:
    # GIVEN the fault armed
    simulator.inject_fault("create_refund", "timeout_after_commit")
    psp = pay(simulator)
    # WHEN the answer is lost (the connection closes without one)
    with pytest.raises(requests.ConnectionError):
        requests.post(
            f"{url}/checkout/v71/payments/{psp}/refunds",
            json={"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": eur(100)},
            headers={"X-API-Key": DEFAULT_API_KEY, "Idempotency-Key": "k1"},
            timeout=(5, 30),
        )
    # THEN the refund exists, and the retry under the key gets it back instead of a second one
    retry = refund(url, psp, {"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": eur(100)}, idempotency="k1")
    assert retry.status_code == 201
    assert [item["pspReference"] for item in simulator.refunds()] == [retry.json()["pspReference"]]


@pytest.mark.parametrize(("fault", "status"), [("transient", 429), ("server_error", 500)])
def test_faults_before_the_work(simulator: AdyenSimulator, url: str, fault: str, status: int) -> None:
    simulator.inject_fault("create_refund", fault)
    psp = pay(simulator)
    answer = refund(url, psp, idempotency="k2")
    assert answer.status_code == status
    assert answer.json()["status"] == status
    assert simulator.refunds() == []
    assert refund(url, psp, idempotency="k2").status_code == 201


def test_payments_are_told_by_authorisation_and_capture(
    simulator: AdyenSimulator, url: str, endpoint: Receiver
) -> None:
    # GIVEN payment notifications on
    simulator.notify_payments = True
    # WHEN one payment is captured at once and another authorised, then captured by hand
    immediate = pay(simulator, 1_000)
    later = pay(simulator, 2_000, captured=False)
    captured = requests.post(f"{url}/_control/payments/{later}/capture", timeout=5)
    # THEN AUTHORISATION for both (captureDelayHours "0" only for the first), CAPTURE for the second
    assert captured.status_code == 200
    endpoint.wait_for(3)
    items = endpoint.items()
    assert [(item["eventCode"], item["amount"]["value"]) for item in items] == [
        ("AUTHORISATION", 1_000),
        ("AUTHORISATION", 2_000),
        ("CAPTURE", 2_000),
    ]
    assert items[0]["pspReference"] == immediate
    assert items[0]["additionalData"]["captureDelayHours"] == "0"
    assert "captureDelayHours" not in items[1]["additionalData"]
    assert items[2]["originalReference"] == later
    assert all(item["additionalData"]["hmacSignature"] == sign_item(item, DEFAULT_HMAC_KEY) for item in items)
    again = requests.post(f"{url}/_control/payments/{later}/capture", timeout=5)
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("minor", "currency", "value"),
    [
        (4_200, "EUR", 4_200),
        (2_790, "ISK", 279_000),
        (15_000, "CLP", 1_500_000),
        (150_000, "IDR", 1_500),
        (500, "JPY", 500),
    ],
)
def test_seeded_amounts_are_held_in_adyens_unit(
    simulator: AdyenSimulator, minor: int, currency: str, value: int
) -> None:
    seeded = simulator.seed_payment(minor, currency)
    assert seeded["provider"] == "adyen"
    assert simulator.payments[seeded["payment_id"]]["amount"] == {"currency": currency, "value": value}


def test_an_amount_adyen_cannot_hold_is_not_seeded(simulator: AdyenSimulator) -> None:
    with pytest.raises(ValueError, match="IDR"):
        simulator.seed_payment(150_050, "IDR")
