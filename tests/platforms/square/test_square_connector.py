"""SquareRefundProvider against the Square simulator over real HTTP: the request Square gets, several partials and
an over-refund, an answer lost after the refund was made, a late failure, errors in our vocabulary, and every
request (and the simulator's answer to it) valid for Square's official spec."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.base import FaultRule
from local.simulators.square import DEFAULT_ACCESS_TOKEN, MANUAL, SquareSimulator
from refundflow.connectors.http import HttpClient
from refundflow.errors import (
    AlreadyDoneError,
    AmountNotRepresentable,
    ConfigurationError,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.platforms.square.connector import (
    SQUARE_VERSION,
    SquareRefundProvider,
    SquareSettings,
    _build,
    square_key,
)
from refundflow.ports import ProviderRefundRequest, ProviderRefundStatus
from tests.platforms.square import contract
from tests.support.servers import serve_wsgi

pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[SquareSimulator, str]]:
    simulator = SquareSimulator(settle_after_seconds=None)
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def simulator(served: tuple[SquareSimulator, str]) -> SquareSimulator:
    simulator, url = served
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    return simulator


def provider_for(url: str, token: str = DEFAULT_ACCESS_TOKEN) -> SquareRefundProvider:
    return SquareRefundProvider(
        access_token=token, http=HttpClient(platform="square", base_url=url, timeout=(5.0, 30.0))
    )


@pytest.fixture
def provider(served: tuple[SquareSimulator, str], simulator: SquareSimulator) -> SquareRefundProvider:
    return provider_for(served[1])


def pay(simulator: SquareSimulator, minor: int = 10_000, currency: str = "USD", **seed: Any) -> PaymentReference:
    seeded = simulator.seed_payment(minor, currency, **seed)
    return PaymentReference(provider=PaymentProvider.SQUARE, payment_id=seeded["payment_id"])


def ask(payment: PaymentReference, minor: int, currency: str = "USD", name: str = "one") -> ProviderRefundRequest:
    refund_id = derive_refund_id("square-tests", name)
    return ProviderRefundRequest(
        refund_id=refund_id,
        payment=payment,
        amount=Money.of(minor, currency),
        reason=RefundReason.DAMAGED,
        idempotency_key=idempotency_key(refund_id, "refund"),
        metadata={"refund_id": refund_id, "source_reference": "ORDER-1042"},
    )


def sent(simulator: SquareSimulator, method: str = "POST") -> list[dict[str, Any]]:
    return [seen for seen in simulator.requests_seen if seen["method"] == method]


def test_a_refund_is_sent_as_square_documents_it(simulator: SquareSimulator, provider: SquareRefundProvider) -> None:
    # GIVEN a completed payment of 100.00 USD
    payment = pay(simulator)
    request = ask(payment, 2_550)
    # WHEN 25.50 is refunded
    made = provider.create_refund(request)
    # THEN Square holds one pending refund of 2550 cents that echoes our refund id
    assert made.status is ProviderRefundStatus.PENDING
    assert (made.amount, made.refund_id) == (request.amount, request.refund_id)
    [posted] = sent(simulator)
    body = json.loads(posted["body"])
    assert set(body) == {"idempotency_key", "amount_money", "payment_id", "reason"}
    assert body["amount_money"] == {"amount": 2_550, "currency": "USD"}
    assert body["payment_id"] == payment.payment_id
    assert body["idempotency_key"] == request.idempotency_key
    assert len(body["idempotency_key"]) <= 45
    assert body["reason"] == f"ORDER-1042 (damaged) [{request.refund_id}]"
    assert posted["headers"]["Authorization"] == f"Bearer {DEFAULT_ACCESS_TOKEN}"
    assert posted["headers"]["Square-Version"] == SQUARE_VERSION


def test_several_partials_add_up_and_more_than_is_left_is_refused(
    simulator: SquareSimulator, provider: SquareRefundProvider
) -> None:
    payment = pay(simulator, 10_000)
    for index, minor in enumerate((3_000, 2_500, 1_500)):
        provider.create_refund(ask(payment, minor, name=f"partial-{index}"))
    # pending refunds hold their amount: 30.00 is left
    assert provider.get_payment(payment).refunded == Money.of(7_000, "USD")
    with pytest.raises(RejectedError) as refused:
        provider.create_refund(ask(payment, 3_001, name="too-much"))
    assert refused.value.code == "amount_exceeds_refundable"
    provider.create_refund(ask(payment, 3_000, name="the-rest"))
    with pytest.raises(AlreadyDoneError):
        provider.create_refund(ask(payment, 1, name="after-all"))
    assert len(simulator.refunds()) == 4


def test_an_answer_lost_after_the_refund_was_made_is_found_and_never_made_twice(
    simulator: SquareSimulator, provider: SquareRefundProvider
) -> None:
    payment = pay(simulator)
    request = ask(payment, 4_000)
    simulator.add_fault(FaultRule(method="POST", path=r"^/v2/refunds$", status=500, when="after"))
    with pytest.raises(OutcomeUnknownError):
        provider.create_refund(request)
    # the domain finds before it resends: the payment lists the refund, whose reason names ours
    found = provider.find_refund(request.refund_id, payment)
    assert found is not None
    assert found.amount == request.amount
    assert provider.find_refund(derive_refund_id("square-tests", "never"), payment) is None
    # and the same key, sent again, answers that refund
    assert provider.create_refund(request).provider_refund_id == found.provider_refund_id
    assert len(simulator.refunds()) == 1


def test_a_late_failure_is_read_back_and_gives_the_amount_back(
    simulator: SquareSimulator, provider: SquareRefundProvider
) -> None:
    payment = pay(simulator, behaviour=MANUAL)
    made = provider.create_refund(ask(payment, 6_000))
    assert provider.get_payment(payment).refunded == Money.of(6_000, "USD")
    simulator.settle_refund(made.provider_refund_id, False)
    read = provider.get_refund(made.provider_refund_id, payment)
    assert read.status is ProviderRefundStatus.FAILED
    assert read.failure_reason == "FAILED by Square"
    assert provider.get_payment(payment).refunded == Money.zero("USD")


def test_a_completed_refund_is_counted_once(simulator: SquareSimulator, provider: SquareRefundProvider) -> None:
    payment = pay(simulator, behaviour=MANUAL)
    made = provider.create_refund(ask(payment, 2_000))
    simulator.settle_refund(made.provider_refund_id, True)
    assert provider.get_refund(made.provider_refund_id, payment).status is ProviderRefundStatus.SUCCEEDED
    seen = provider.get_payment(payment)
    assert (seen.captured, seen.refunded) == (Money.of(10_000, "USD"), Money.of(2_000, "USD"))


def test_a_tip_is_refundable_with_the_payment(simulator: SquareSimulator, provider: SquareRefundProvider) -> None:
    payment = pay(simulator, 1_000, "JPY", tip_minor=200)
    assert provider.get_payment(payment).captured == Money.of(1_200, "JPY")
    assert provider.create_refund(ask(payment, 1_200, "JPY")).amount == Money.of(1_200, "JPY")


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (429, None, TransientError, "rate_limited"),
        (409, None, TransientError, "idempotency_key_in_use"),
        (500, None, OutcomeUnknownError, "outcome_unknown"),
        (503, None, OutcomeUnknownError, "outcome_unknown"),
        (
            400,
            {"errors": [{"category": "REFUND_ERROR", "code": "REFUND_ALREADY_PENDING"}]},
            TransientError,
            "refund_already_pending",
        ),
        (
            400,
            {"errors": [{"category": "REFUND_ERROR", "code": "PAYMENT_NOT_REFUNDABLE_DUE_TO_DISPUTE"}]},
            RejectedError,
            "payment_disputed",
        ),
        (403, {"errors": [{"category": "AUTHENTICATION_ERROR", "code": "INSUFFICIENT_SCOPES"}]}, RejectedError, None),
        (400, "not json", RejectedError, "square_400"),
    ],
)
def test_square_errors_on_a_refund_map_to_the_small_set(
    simulator: SquareSimulator,
    provider: SquareRefundProvider,
    status: int,
    body: Any,
    error: type[Exception],
    code: str | None,
) -> None:
    payment = pay(simulator)
    simulator.add_fault(FaultRule(method="POST", path=r"^/v2/refunds$", status=status, body=body))
    with pytest.raises(error) as raised:
        provider.create_refund(ask(payment, 1_000))
    if code is not None:
        assert getattr(raised.value, "code", None) == code
    assert simulator.refunds() == []


def test_refusals_by_square_itself(
    served: tuple[SquareSimulator, str], simulator: SquareSimulator, provider: SquareRefundProvider
) -> None:
    payment = pay(simulator)
    unknown = PaymentReference(provider=PaymentProvider.SQUARE, payment_id="NoSuchPaymentXXXXXXXXXXXXXXXX")
    cases = [
        (provider_for(served[1], token="EAAAwrong"), ask(payment, 100), "provider_authentication_failed"),
        (provider, ask(unknown, 100), "resource_missing"),
        (provider, ask(pay(simulator, status="APPROVED"), 100), "payment_not_captured"),
        (provider, ask(pay(simulator, currency="GBP"), 100), "currency_mismatch"),
    ]
    for connector, request, code in cases:
        with pytest.raises(RejectedError) as refused:
            connector.create_refund(request)
        assert refused.value.code == code, request
    # the same key with another amount is Square's IDEMPOTENCY_KEY_REUSED
    provider.create_refund(ask(payment, 100))
    with pytest.raises(RejectedError) as reused:
        provider.create_refund(ask(payment, 200))
    assert reused.value.code == "idempotency_key_reused"
    with pytest.raises(NotFound):
        provider.get_refund("NoSuchRefund", payment)
    with pytest.raises(NotFound):
        provider.get_payment(unknown)
    with pytest.raises(RejectedError):
        provider.get_payment(pay(simulator, status="APPROVED"))
    assert provider.find_refund(derive_refund_id("square-tests", "x"), unknown) is None


def test_a_read_that_fails_is_transient(simulator: SquareSimulator, provider: SquareRefundProvider) -> None:
    payment = pay(simulator)
    made = provider.create_refund(ask(payment, 100))
    simulator.inject_fault("get_refund", "server_error")
    with pytest.raises(TransientError):
        provider.get_refund(made.provider_refund_id, payment)
    simulator.inject_fault("get_payment", "transient")
    with pytest.raises(TransientError):
        provider.find_refund(made.refund_id or "", payment)


def test_a_currency_square_does_not_process_is_never_sent(
    simulator: SquareSimulator, provider: SquareRefundProvider
) -> None:
    payment = pay(simulator)
    with pytest.raises(AmountNotRepresentable):
        provider.create_refund(ask(payment, 1_000, "CHF"))
    assert sent(simulator) == []


def test_a_longer_key_is_hashed_to_squares_45_characters() -> None:
    long_key = "k" * 80
    assert len(square_key(long_key)) == 45
    assert square_key(long_key) == square_key(long_key) != square_key("k" * 81)
    assert square_key("rf_0123:refund") == "rf_0123:refund"


def test_the_factory_reads_the_access_token() -> None:
    built = _build(SquareSettings.model_validate({"SQUARE_API_BASE": "https://sq.example"}), "s", {"access_token": "t"})
    assert isinstance(built, SquareRefundProvider)
    for bad in ({}, {"access_token": ""}, {"access_token": 5}):
        with pytest.raises(ConfigurationError):
            _build(SquareSettings(), "s", bad)


def test_every_request_the_connector_sends_and_every_answer_match_squares_spec(
    served: tuple[SquareSimulator, str], simulator: SquareSimulator, provider: SquareRefundProvider
) -> None:
    contract.contracts()
    # GIVEN the scenarios: partials, an over-refund, a lost answer found again, reads, JPY
    payment = pay(simulator, behaviour=MANUAL)
    made = provider.create_refund(ask(payment, 2_500, name="a"))
    provider.create_refund(ask(payment, 7_000, name="b"))
    with pytest.raises(RejectedError):
        provider.create_refund(ask(payment, 1_000, name="c"))
    simulator.settle_refund(made.provider_refund_id, True)
    provider.get_refund(made.provider_refund_id, payment)
    provider.find_refund(made.refund_id or "", payment)
    yen = pay(simulator, 5_000, "JPY")
    provider.create_refund(ask(yen, 1_234, "JPY", name="d"))
    # WHEN each request is checked against the spec, and replayed for an answer to check
    seen = list(simulator.requests_seen)
    assert {request["method"] for request in seen} == {"GET", "POST"}
    for request in seen:
        contract.validate_request(request)
        rebuilt = contract.as_square_request(request)
        answer = requests.request(
            request["method"],
            f"{served[1]}{request['path']}",
            headers={k: v for k, v in request["headers"].items() if k.lower() not in {"host", "content-length"}},
            data=request["body"].encode() or None,
            timeout=5,
        )
        if answer.ok:
            contract.validate_exchange(rebuilt, answer)
    # THEN the JPY amount went in whole yen
    assert json.loads(sent(simulator)[-1]["body"])["amount_money"] == {"amount": 1_234, "currency": "JPY"}


def test_a_listed_refund_that_cannot_be_read_never_reads_as_not_made(
    simulator: SquareSimulator, provider: SquareRefundProvider
) -> None:
    # GIVEN a payment that lists a refund Square cannot answer for
    payment = pay(simulator)
    request = ask(payment, 1_000)
    provider.create_refund(request)
    with simulator.lock:
        simulator.payments[payment.payment_id]["refund_ids"].insert(0, "UnreadableRefund")
    # WHEN our refund is looked for THEN the answer is "ask again", not "never made" (which would send again)
    with pytest.raises(TransientError):
        provider.find_refund(request.refund_id, payment)
