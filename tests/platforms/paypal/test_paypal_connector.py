"""PayPalRefundProvider against the PayPal simulator over real HTTP: money, idempotency, tokens, errors."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.paypal import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    INSUFFICIENT_FUNDS,
    MANUAL,
    PayPalSimulator,
)
from refundflow.connectors.http import HttpClient
from refundflow.errors import (
    AlreadyDoneError,
    AmountNotRepresentable,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
    UnsupportedOperation,
)
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.platforms.paypal.connector import PayPalRefundProvider
from refundflow.platforms.paypal.payloads import acquirer_reference
from refundflow.ports import ProviderRefundRequest, ProviderRefundStatus
from tests.support.servers import serve_wsgi


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[PayPalSimulator, str]]:
    simulator = PayPalSimulator(settle_after_seconds=None)
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def simulator(server: tuple[PayPalSimulator, str]) -> PayPalSimulator:
    simulator = server[0]
    simulator.reset_state()
    simulator.faults.clear()
    simulator.requests_seen.clear()
    simulator.processing_delay_seconds = 0.0
    return simulator


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_provider(url: str, clock: Clock, secret: str = DEFAULT_CLIENT_SECRET) -> PayPalRefundProvider:
    http = HttpClient(platform="paypal", base_url=url, timeout=(5.0, 30.0))
    return PayPalRefundProvider(client_id=DEFAULT_CLIENT_ID, client_secret=secret, http=http, clock=clock)


@pytest.fixture
def provider(server: tuple[PayPalSimulator, str], simulator: PayPalSimulator, clock: Clock) -> PayPalRefundProvider:
    return make_provider(server[1], clock)


def reference(seeded: dict[str, Any]) -> PaymentReference:
    return PaymentReference(provider=PaymentProvider.PAYPAL, payment_id=seeded["payment_id"], locator=seeded["locator"])


def request(
    payment: PaymentReference, amount: Money, refund_id: str = "rf_1", key: str = "rf_1:refund"
) -> ProviderRefundRequest:
    return ProviderRefundRequest(
        refund_id=refund_id, payment=payment, amount=amount, reason=RefundReason.DAMAGED, idempotency_key=key
    )


def posts(simulator: PayPalSimulator, fragment: str) -> list[dict[str, Any]]:
    return [seen for seen in simulator.requests_seen if seen["method"] == "POST" and fragment in seen["path"]]


# ---------------------------------------------------------------- v2 captures


def test_partial_refund_is_exact_and_echoes_our_refund_id(
    provider: PayPalRefundProvider, simulator: PayPalSimulator
) -> None:
    # GIVEN a 25.00 EUR capture
    payment = reference(simulator.seed_payment(2_500, "EUR"))
    # WHEN 10.99 EUR is refunded
    refund = provider.create_refund(request(payment, Money.of(1_099, "EUR")))
    # THEN PayPal got the decimal string and our id, under the key; the refund comes back exact
    body = posts(simulator, "/refund")[0]
    assert '"value": "10.99"' in body["body"]
    assert '"custom_id": "rf_1"' in body["body"]
    assert body["headers"]["Paypal-Request-Id"] == "rf_1:refund"
    assert (refund.status, refund.amount, refund.refund_id, refund.payment_id) == (
        ProviderRefundStatus.SUCCEEDED,
        Money.of(1_099, "EUR"),
        "rf_1",
        payment.payment_id,
    )
    # AND the capture reads 25.00 captured, 10.99 refunded (from its order's refunds)
    read = provider.get_payment(payment)
    assert (read.captured, read.refunded, read.status) == (
        Money.of(2_500, "EUR"),
        Money.of(1_099, "EUR"),
        "PARTIALLY_REFUNDED",
    )


def test_refunded_amount_counts_pending_refunds_and_not_failed_ones(
    provider: PayPalRefundProvider, simulator: PayPalSimulator
) -> None:
    payment = reference(simulator.seed_payment(5_000, "USD", behaviour=MANUAL))
    pending = provider.create_refund(request(payment, Money.of(1_000, "USD"), "rf_a", "ka"))
    failed = provider.create_refund(request(payment, Money.of(500, "USD"), "rf_b", "kb"))
    simulator.settle_refund(failed.provider_refund_id, succeeded=False)
    assert pending.status == ProviderRefundStatus.PENDING
    assert provider.get_payment(payment).refunded == Money.of(1_000, "USD")
    assert provider.get_refund(failed.provider_refund_id, payment).status == ProviderRefundStatus.FAILED


def test_pending_refund_is_read_until_paypal_decides(
    provider: PayPalRefundProvider, simulator: PayPalSimulator
) -> None:
    payment = reference(simulator.seed_payment(1_000, "USD", behaviour=MANUAL))
    made = provider.create_refund(request(payment, Money.of(1_000, "USD")))
    assert provider.get_refund(made.provider_refund_id, payment).status == ProviderRefundStatus.PENDING
    simulator.settle_refund(made.provider_refund_id, succeeded=True)
    done = provider.get_refund(made.provider_refund_id, payment)
    assert (done.status, done.refund_id) == (ProviderRefundStatus.SUCCEEDED, "rf_1")
    assert provider.get_payment(payment).refunded == Money.of(1_000, "USD")


def test_huf_goes_out_in_whole_forints_and_fillér_are_refused_before_any_call(
    provider: PayPalRefundProvider, simulator: PayPalSimulator
) -> None:
    payment = reference(simulator.seed_payment(500_000, "HUF"))
    refund = provider.create_refund(request(payment, Money.of(123_400, "HUF")))
    assert '"value": "1234"' in posts(simulator, "/refund")[0]["body"]
    assert refund.amount == Money.of(123_400, "HUF")
    with pytest.raises(AmountNotRepresentable):
        provider.create_refund(request(payment, Money.of(123_450, "HUF"), "rf_2", "k2"))
    with pytest.raises(AmountNotRepresentable) as raised:
        provider.create_refund(request(payment, Money.of(1_000, "KWD"), "rf_3", "k3"))
    assert raised.value.code == "currency_not_supported"
    assert len(posts(simulator, "/refund")) == 1


def test_over_refund_and_fully_refunded_map_to_our_errors(
    provider: PayPalRefundProvider, simulator: PayPalSimulator
) -> None:
    payment = reference(simulator.seed_payment(1_000, "USD"))
    with pytest.raises(RejectedError) as over:
        provider.create_refund(request(payment, Money.of(1_001, "USD"), "rf_o", "ko"))
    assert over.value.code == "amount_exceeds_refundable"
    provider.create_refund(request(payment, Money.of(1_000, "USD"), "rf_f", "kf"))
    assert provider.get_payment(payment).refunded == Money.of(1_000, "USD")
    with pytest.raises(AlreadyDoneError):
        provider.create_refund(request(payment, Money.of(1, "USD"), "rf_g", "kg"))


@pytest.mark.parametrize(
    ("seed", "amount", "code"),
    [
        ({"amount_minor": 1_000, "currency": "USD", "settled": False}, Money.of(100, "USD"), "payment_not_captured"),
        (
            {"amount_minor": 1_000, "currency": "USD", "behaviour": INSUFFICIENT_FUNDS},
            Money.of(100, "USD"),
            "insufficient_funds",
        ),
        ({"amount_minor": 1_000, "currency": "USD"}, Money.of(100, "EUR"), "currency_mismatch"),
    ],
    ids=["pending-capture", "insufficient-funds", "other-currency"],
)
def test_business_refusals_carry_a_stable_code(
    provider: PayPalRefundProvider, simulator: PayPalSimulator, seed: dict[str, Any], amount: Money, code: str
) -> None:
    seeded = simulator.seed_payment(seed.pop("amount_minor"), seed.pop("currency"), **seed)
    with pytest.raises(RejectedError) as raised:
        provider.create_refund(request(reference(seeded), amount))
    assert raised.value.code == code


def test_unknown_payment_is_not_found_to_read_and_refused_to_refund(provider: PayPalRefundProvider) -> None:
    missing = PaymentReference(provider=PaymentProvider.PAYPAL, payment_id="NOSUCHCAPTURE")
    with pytest.raises(NotFound):
        provider.get_payment(missing)
    with pytest.raises(RejectedError) as raised:
        provider.create_refund(request(missing, Money.of(100, "USD")))
    assert raised.value.code == "resource_missing"


def test_pending_capture_is_not_a_refundable_payment(
    provider: PayPalRefundProvider, simulator: PayPalSimulator
) -> None:
    with pytest.raises(RejectedError) as raised:
        provider.get_payment(reference(simulator.seed_payment(1_000, "USD", settled=False)))
    assert raised.value.code == "payment_not_captured"


def test_find_refund_is_unsupported(provider: PayPalRefundProvider, simulator: PayPalSimulator) -> None:
    assert provider.capabilities.find_by_reference is False
    with pytest.raises(UnsupportedOperation):
        provider.find_refund("rf_1", reference(simulator.seed_payment(1_000, "USD")))


# ---------------------------------------------------------------- tokens


def test_token_is_reused_until_shortly_before_it_expires(
    provider: PayPalRefundProvider, simulator: PayPalSimulator, clock: Clock
) -> None:
    payment = reference(simulator.seed_payment(1_000, "USD"))
    provider.get_payment(payment)
    provider.get_payment(payment)
    assert len(posts(simulator, "/oauth2/token")) == 1
    token = posts(simulator, "/oauth2/token")[0]
    assert token["body"] == "grant_type=client_credentials"
    assert (
        token["headers"]["Authorization"]
        == "Basic " + base64.b64encode(f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}".encode()).decode()
    )
    clock.now += 32_400 - 299
    provider.get_payment(payment)
    assert len(posts(simulator, "/oauth2/token")) == 2


def test_a_token_paypal_forgot_is_renewed_once_and_the_refund_made_once(
    provider: PayPalRefundProvider, simulator: PayPalSimulator
) -> None:
    payment = reference(simulator.seed_payment(1_000, "USD"))
    provider.get_payment(payment)
    simulator.tokens.clear()
    refund = provider.create_refund(request(payment, Money.of(100, "USD")))
    assert len(posts(simulator, "/oauth2/token")) == 2
    assert [item["id"] for item in simulator.refunds()] == [refund.provider_refund_id]


def test_wrong_client_secret_is_a_final_authentication_failure(
    server: tuple[PayPalSimulator, str], simulator: PayPalSimulator, clock: Clock
) -> None:
    provider = make_provider(server[1], clock, secret="wrong")
    with pytest.raises(RejectedError) as raised:
        provider.get_payment(reference(simulator.seed_payment(1_000, "USD")))
    assert raised.value.code == "provider_authentication_failed"


# ---------------------------------------------------------------- failures and the request id


def test_timeout_after_paypal_refunded_is_unknown_then_the_same_key_answers_the_refund(
    provider: PayPalRefundProvider, simulator: PayPalSimulator
) -> None:
    # GIVEN PayPal makes the refund but the answer comes after our read timeout
    payment = reference(simulator.seed_payment(1_000, "USD"))
    simulator.inject_fault("create_refund", "timeout_after_commit")
    with pytest.raises(OutcomeUnknownError):
        provider.create_refund(request(payment, Money.of(400, "USD")))
    # WHEN the domain sends the same request with the same key / THEN the one refund, not a second
    again = provider.create_refund(request(payment, Money.of(400, "USD")))
    assert [item["id"] for item in simulator.refunds()] == [again.provider_refund_id]
    assert provider.get_payment(payment).refunded == Money.of(400, "USD")


def test_5xx_on_a_refund_is_an_unknown_outcome_and_on_a_read_transient(
    provider: PayPalRefundProvider, simulator: PayPalSimulator
) -> None:
    payment = reference(simulator.seed_payment(1_000, "USD"))
    simulator.inject_fault("create_refund", "server_error")
    with pytest.raises(OutcomeUnknownError):
        provider.create_refund(request(payment, Money.of(100, "USD")))
    simulator.inject_fault("get_payment", "transient")
    with pytest.raises(TransientError):
        provider.get_payment(payment)


def test_same_key_still_in_flight_is_transient(
    server: tuple[PayPalSimulator, str], provider: PayPalRefundProvider, simulator: PayPalSimulator, clock: Clock
) -> None:
    # GIVEN a first request whose key PayPal still holds (its answer comes 2 s after the refund is made)
    payment = reference(simulator.seed_payment(1_000, "USD"))
    provider.get_payment(payment)
    simulator.processing_delay_seconds = 2.0
    first_answer: list[object] = []
    slow = make_provider(server[1], clock)
    first = threading.Thread(
        target=lambda: first_answer.append(slow.create_refund(request(payment, Money.of(100, "USD"))))
    )
    first.start()
    try:
        deadline = time.monotonic() + 10
        while not simulator.refunds():
            assert time.monotonic() < deadline, "the first refund was never made"
            time.sleep(0.005)
        # WHEN the same key is sent meanwhile / THEN a transient error (retry later with the same key)
        with pytest.raises(TransientError) as raised:
            provider.create_refund(request(payment, Money.of(100, "USD")))
        assert raised.value.code == "idempotency_key_in_use"
    finally:
        first.join(5)
    assert len(first_answer) == 1
    assert len(simulator.refunds()) == 1


# ---------------------------------------------------------------- v1 sales


def test_sale_refunds_go_through_v1_with_our_id_as_invoice_number(
    provider: PayPalRefundProvider, simulator: PayPalSimulator
) -> None:
    payment = reference(simulator.seed_payment(2_000, "USD", kind="sale"))
    assert payment.locator == {"kind": "sale"}
    refund = provider.create_refund(request(payment, Money.of(500, "USD")))
    sent = posts(simulator, "/v1/payments/sale/")[0]
    assert '"total": "5.00"' in sent["body"]
    assert '"invoice_number": "rf_1"' in sent["body"]
    assert (refund.status, refund.refund_id, refund.payment_id) == (
        ProviderRefundStatus.SUCCEEDED,
        "rf_1",
        payment.payment_id,
    )
    assert provider.get_refund(refund.provider_refund_id, payment).amount == Money.of(500, "USD")
    read = provider.get_payment(payment)
    assert (read.captured, read.refunded) == (Money.of(2_000, "USD"), Money.of(500, "USD"))
    with pytest.raises(RejectedError) as over:
        provider.create_refund(request(payment, Money.of(1_501, "USD"), "rf_2", "k2"))
    assert over.value.code == "amount_exceeds_refundable"
    provider.create_refund(request(payment, Money.of(1_500, "USD"), "rf_3", "k3"))
    with pytest.raises(AlreadyDoneError):
        provider.create_refund(request(payment, Money.of(1, "USD"), "rf_4", "k4"))


def test_the_acquirer_reference_is_read_once_paypal_lists_it_on_the_refund(
    provider: PayPalRefundProvider, simulator: PayPalSimulator, server: tuple[PayPalSimulator, str]
) -> None:
    # GIVEN a completed card refund: PayPal has no ARN for it yet
    payment = reference(simulator.seed_payment(2_500, "EUR"))
    made = provider.create_refund(request(payment, Money.of(2_500, "EUR")))
    assert made.status == ProviderRefundStatus.SUCCEEDED
    assert provider.get_refund(made.provider_refund_id, payment).acquirer_reference is None
    # WHEN the network assigns it, days later (the control endpoint; PayPal sends no webhook for it)
    answer = requests.post(f"{server[1]}/_control/refunds/{made.provider_refund_id}/acquirer-reference", timeout=5)
    assert answer.status_code == 200
    assigned = answer.json()["acquirer_reference_number"]
    # THEN GET /v2/payments/refunds/{id} lists it and the connector reads it; it is assigned once
    assert provider.get_refund(made.provider_refund_id, payment).acquirer_reference == assigned
    again = requests.post(f"{server[1]}/_control/refunds/{made.provider_refund_id}/acquirer-reference", timeout=5)
    assert again.status_code == 409
    # AND a refund PayPal does not know is a 404 there too
    missing = requests.post(f"{server[1]}/_control/refunds/NOPE123/acquirer-reference", timeout=5)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7412345678901234567890", "7412345678901234567890"), ("12345", None), ("74 12", None), (None, None), (7, None)],
    ids=["arn", "too-short", "not-alphanumeric", "absent", "not-a-string"],
)
def test_only_a_reference_of_the_spec_shape_is_taken(value: object, expected: str | None) -> None:
    assert acquirer_reference({"acquirer_reference_number": value} if value is not None else {}) == expected


def test_a_capture_read_says_when_it_was_captured(provider: PayPalRefundProvider, simulator: PayPalSimulator) -> None:
    # GIVEN a completed capture (the sandbox stamps create_time, RFC 3339, as PayPal does)
    payment = reference(simulator.seed_payment(2_000, "EUR"))
    stamped = simulator.captures[payment.payment_id]["create_time"]
    # WHEN it is read: the capture moment is its create_time (a split-tender refund's last_captured_first)
    read = provider.get_payment(payment)
    assert read.captured_at is not None
    assert read.captured_at.isoformat().replace("+00:00", "Z")[:19] == stamped.replace("+00:00", "Z")[:19]
