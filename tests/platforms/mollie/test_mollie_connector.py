"""Mollie's connector against its simulator: several partials, an over-refund and a fully refunded payment refused,
Mollie's errors in the small set, an answer lost after the refund was made (found by our id, or replayed under the
same Idempotency-Key), a late failure, paging through a payment's refunds, and every request the connector sends
(and the simulator's answers) checked against Mollie's official spec."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.base import FaultRule
from local.simulators.mollie import DEFAULT_API_KEY, MANUAL, MollieSimulator
from refundflow.connectors.http import HttpClient
from refundflow.errors import (
    AlreadyDoneError,
    ConfigurationError,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.platforms.mollie import connector as module
from refundflow.platforms.mollie.connector import MollieRefundProvider, MollieSettings
from refundflow.platforms.mollie.payloads import acquirer_reference
from refundflow.ports import ProviderRefundRequest, ProviderRefundStatus
from tests.platforms.mollie import contract
from tests.support.servers import serve_wsgi


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[MollieSimulator, str]]:
    simulator = MollieSimulator(settle_after_seconds=None)
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def simulator(served: tuple[MollieSimulator, str]) -> MollieSimulator:
    requests.post(f"{served[1]}/_control/reset", timeout=5).raise_for_status()
    return served[0]


@pytest.fixture
def mollie(served: tuple[MollieSimulator, str], simulator: MollieSimulator) -> MollieRefundProvider:
    return MollieRefundProvider(
        api_key=DEFAULT_API_KEY, http=HttpClient(platform="mollie", base_url=served[1], timeout=(5.0, 30.0))
    )


def pay(simulator: MollieSimulator, minor: int = 10_000, currency: str = "EUR", **seed: Any) -> PaymentReference:
    seeded = simulator.seed_payment(minor, currency, **seed)
    return PaymentReference(provider=PaymentProvider.MOLLIE, payment_id=seeded["payment_id"])


def ask(payment: PaymentReference, minor: int, currency: str = "EUR", name: str | None = None) -> ProviderRefundRequest:
    refund_id = derive_refund_id("mollie-tests", name or f"{payment.payment_id}-{minor}-{currency}")
    return ProviderRefundRequest(
        refund_id=refund_id,
        payment=payment,
        amount=Money.of(minor, currency),
        reason=RefundReason.DAMAGED,
        idempotency_key=idempotency_key(refund_id, "refund"),
        metadata={"refund_id": refund_id, "source_reference": "RMA-7"},
    )


# ------------------------------------------------------------------ money


def test_several_partials_add_up_then_more_is_refused_and_a_full_payment_is_already_done(
    mollie: MollieRefundProvider, simulator: MollieSimulator
) -> None:
    payment = pay(simulator, 10_000)
    for part, name in ((3_000, "a"), (2_000, "b")):
        made = mollie.create_refund(ask(payment, part, name=name))
        assert (made.amount, made.status) == (Money.of(part, "EUR"), ProviderRefundStatus.PENDING)
    assert mollie.get_payment(payment).refunded == Money.of(5_000, "EUR")
    with pytest.raises(RejectedError) as over:
        mollie.create_refund(ask(payment, 6_000, name="c"))
    assert over.value.code == "amount_exceeds_refundable"
    mollie.create_refund(ask(payment, 5_000, name="d"))
    with pytest.raises(AlreadyDoneError):
        mollie.create_refund(ask(payment, 100, name="e"))
    assert [refund["amount"]["value"] for refund in simulator.refunds()] == ["30.00", "20.00", "50.00"]


def test_zero_decimal_currencies_go_as_whole_units(mollie: MollieRefundProvider, simulator: MollieSimulator) -> None:
    payment = pay(simulator, 5_000, "JPY")
    made = mollie.create_refund(ask(payment, 1_234, "JPY"))
    assert made.amount == Money.of(1_234, "JPY")
    assert simulator.refunds()[-1]["amount"] == {"currency": "JPY", "value": "1234"}


def test_a_late_failure_gives_the_amount_back(mollie: MollieRefundProvider, simulator: MollieSimulator) -> None:
    payment = pay(simulator, 10_000, behaviour=MANUAL)
    made = mollie.create_refund(ask(payment, 4_000))
    assert mollie.get_payment(payment).refunded == Money.of(4_000, "EUR")
    simulator.settle_refund(made.provider_refund_id, False)
    failed = mollie.get_refund(made.provider_refund_id, payment)
    assert (failed.status, failed.failure_reason) == (ProviderRefundStatus.FAILED, "mollie refund failed")
    assert mollie.get_payment(payment).refunded == Money.of(0, "EUR")


# ------------------------------------------------------------------ unknown outcomes, idempotency


def test_an_answer_lost_after_the_work_is_found_by_our_id_and_a_resend_is_replayed(
    mollie: MollieRefundProvider, simulator: MollieSimulator
) -> None:
    payment = pay(simulator)
    request = ask(payment, 2_500)
    simulator.inject_fault("create_refund", "timeout_after_commit")
    with pytest.raises(OutcomeUnknownError):
        mollie.create_refund(request)
    found = mollie.find_refund(request.refund_id, payment)
    assert found is not None
    assert found.refund_id == request.refund_id
    again = mollie.create_refund(request)
    assert again.provider_refund_id == found.provider_refund_id
    assert len(simulator.refunds()) == 1
    assert simulator.requests_seen[-1]["headers"]["Idempotency-Key"] == request.idempotency_key


def test_the_same_key_with_another_amount_is_refused(mollie: MollieRefundProvider, simulator: MollieSimulator) -> None:
    payment = pay(simulator)
    request = ask(payment, 2_500)
    mollie.create_refund(request)
    with pytest.raises(RejectedError) as reused:
        mollie.create_refund(request.model_copy(update={"amount": Money.of(2_600, "EUR")}))
    assert reused.value.code == "idempotency_key_reused"
    assert len(simulator.refunds()) == 1


def test_find_pages_through_a_payments_refunds(
    mollie: MollieRefundProvider, simulator: MollieSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "PAGE_LIMIT", 2)
    payment = pay(simulator)
    first = ask(payment, 100, name="first")
    made = mollie.create_refund(first)
    for index in range(4):
        mollie.create_refund(ask(payment, 100, name=f"later-{index}"))
    assert mollie.find_refund(first.refund_id, payment) == made
    assert mollie.find_refund(derive_refund_id("mollie-tests", "never"), payment) is None
    listed = [seen for seen in simulator.requests_seen if seen["method"] == "GET"]
    assert sum("from=" in seen["query"] for seen in listed) >= 2


# ------------------------------------------------------------------ errors in the small set


@pytest.mark.parametrize(
    ("status", "method", "expected", "code"),
    [
        (429, "POST", TransientError, "rate_limited"),
        (409, "POST", TransientError, "idempotency_key_in_use"),
        (500, "POST", OutcomeUnknownError, None),
        (503, "GET", TransientError, None),
        (403, "POST", RejectedError, "provider_permission_denied"),
    ],
)
def test_mollies_errors_map_to_the_small_set(
    mollie: MollieRefundProvider,
    simulator: MollieSimulator,
    status: int,
    method: str,
    expected: type[Exception],
    code: str | None,
) -> None:
    payment = pay(simulator)
    simulator.add_fault(FaultRule(method=method, path=r"^/v2/payments/", status=status))
    call = (
        (lambda: mollie.create_refund(ask(payment, 100))) if method == "POST" else lambda: mollie.get_payment(payment)
    )
    with pytest.raises(expected) as raised:
        call()
    if code is not None:
        assert getattr(raised.value, "code", None) == code
    assert simulator.refunds() == []


def test_unknown_payments_refunds_and_credentials(mollie: MollieRefundProvider, simulator: MollieSimulator) -> None:
    missing = PaymentReference(provider=PaymentProvider.MOLLIE, payment_id="tr_unknown0001")
    with pytest.raises(RejectedError) as refused:
        mollie.create_refund(ask(missing, 100))
    assert refused.value.code == "resource_missing"
    with pytest.raises(NotFound):
        mollie.get_payment(missing)
    with pytest.raises(NotFound):
        mollie.get_refund("re_unknown0001", pay(simulator))
    stranger = MollieRefundProvider(api_key="test_someoneelse", http=mollie._http)
    with pytest.raises(RejectedError) as denied:
        stranger.get_payment(pay(simulator))
    assert denied.value.code == "provider_authentication_failed"


def test_an_id_that_is_not_mollies_never_reaches_a_path(
    mollie: MollieRefundProvider, simulator: MollieSimulator
) -> None:
    before = len(simulator.requests_seen)
    hostile = PaymentReference(provider=PaymentProvider.MOLLIE, payment_id="tr_1/../../v2/refunds")
    with pytest.raises(RejectedError):
        mollie.create_refund(ask(hostile, 100))
    with pytest.raises(NotFound):
        mollie.get_refund("re_1/../x", pay(simulator))
    assert len(simulator.requests_seen) == before


def test_the_secret_and_key_shapes_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        MollieRefundProvider(api_key="sk_test_not_mollie")
    with pytest.raises(ConfigurationError):
        module._build(MollieSettings(), "refundflow/mollie", {"api_key": ""})
    assert isinstance(module._build(MollieSettings(), "refundflow/mollie", {"api_key": "live_x"}), MollieRefundProvider)


# ------------------------------------------------------------------ the official spec


def test_every_request_the_connector_sends_is_mollies(
    mollie: MollieRefundProvider, simulator: MollieSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "PAGE_LIMIT", 1)
    payment = pay(simulator)
    made = mollie.create_refund(ask(payment, 1_000, name="one"))
    mollie.create_refund(ask(payment, 1_000, name="two"))
    mollie.get_refund(made.provider_refund_id, payment)
    mollie.find_refund(derive_refund_id("mollie-tests", "absent"), payment)
    mollie.get_payment(payment)
    seen = list(simulator.requests_seen)
    assert {(item["method"], item["path"].count("/")) for item in seen} == {
        ("POST", 4),
        ("GET", 5),
        ("GET", 4),
        ("GET", 3),
    }
    for item in seen:
        contract.validate_request(item)


def test_the_simulators_answers_are_mollies(served: tuple[MollieSimulator, str], simulator: MollieSimulator) -> None:
    payment = pay(simulator).payment_id
    auth = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
    exchanges = [
        requests.Request(
            "POST",
            f"{contract.SERVER}/v2/payments/{payment}/refunds",
            headers={**auth, "Content-Type": "application/json", "Idempotency-Key": "k-1"},
            json={"amount": {"currency": "EUR", "value": "12.34"}, "description": "Refund", "metadata": {"a": "b"}},
        ),
        requests.Request(
            "POST",
            f"{contract.SERVER}/v2/payments/{payment}/refunds",
            headers={**auth, "Content-Type": "application/json"},
            json={"amount": {"currency": "EUR", "value": "999.00"}},
        ),
        requests.Request("GET", f"{contract.SERVER}/v2/payments/{payment}", headers=auth),
        requests.Request("GET", f"{contract.SERVER}/v2/payments/{payment}/refunds?limit=5", headers=auth),
        requests.Request("GET", f"{contract.SERVER}/v2/payments/tr_nothere01", headers=auth),
    ]
    statuses = []
    with requests.Session() as session:
        for exchange in exchanges:
            prepared = exchange.prepare()
            assert prepared.url is not None
            prepared.url = prepared.url.replace(contract.SERVER, served[1])
            answer = session.send(prepared, timeout=5)
            statuses.append(answer.status_code)
            contract.validate_exchange(exchange, answer)
    assert statuses == [201, 422, 200, 200, 404]
    refund = simulator.refunds()[0]
    made = requests.get(f"{served[1]}/v2/payments/{payment}/refunds/{refund['id']}", headers=auth, timeout=5).json()
    assert made["status"] == "pending"
    assert made["metadata"] == {"a": "b"}


# ------------------------------------------------------------------ the acquirer reference


def test_the_acquirer_reference_is_read_once_the_refund_shows_it(
    mollie: MollieRefundProvider, simulator: MollieSimulator, served: tuple[MollieSimulator, str]
) -> None:
    # GIVEN a refunded refund: Mollie shows no externalReference yet
    payment = pay(simulator, 4_000)
    made = mollie.create_refund(ask(payment, 4_000))
    simulator.settle_refund(made.provider_refund_id, succeeded=True)
    read = mollie.get_refund(made.provider_refund_id, payment)
    assert (read.status, read.acquirer_reference) == (ProviderRefundStatus.SUCCEEDED, None)
    # WHEN the network assigns it (no event is sent for it)
    events = len(simulator.events)
    answer = requests.post(f"{served[1]}/_control/refunds/{made.provider_refund_id}/acquirer-reference", timeout=5)
    assert answer.status_code == 200
    assigned = answer.json()["externalReference"]
    assert assigned["type"] == "acquirer-reference"
    # THEN reading the refund gives it; it was assigned once and told by no event
    assert mollie.get_refund(made.provider_refund_id, payment).acquirer_reference == assigned["id"]
    assert len(simulator.events) == events
    again = requests.post(f"{served[1]}/_control/refunds/{made.provider_refund_id}/acquirer-reference", timeout=5)
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("external", "expected"),
    [
        ({"type": "acquirer-reference", "id": "123456789012345"}, "123456789012345"),
        ({"type": "something-else", "id": "123456789012345"}, None),
        ({"type": "acquirer-reference", "id": "12 34"}, None),
        (None, None),
    ],
    ids=["arn", "another-type", "not-a-reference", "absent"],
)
def test_only_an_acquirer_reference_is_taken(external: dict[str, str] | None, expected: str | None) -> None:
    refund = {"externalReference": external} if external is not None else {}
    assert acquirer_reference(refund) == expected
