"""AdyenRefundProvider against the Adyen simulator over real HTTP: the request Adyen gets, idempotent resends,
errors in our vocabulary, Adyen's currency exponents, and every request valid for the official spec."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from local.simulators.adyen import DEFAULT_API_KEY, DEFAULT_MERCHANT_ACCOUNT, AdyenSimulator
from refundflow.connectors.http import HttpClient
from refundflow.errors import (
    AmountNotRepresentable,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
    UnsupportedOperation,
)
from refundflow.ids import idempotency_key
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.platforms.adyen.connector import AdyenRefundProvider, adyen_key
from refundflow.ports import ProviderRefundRequest, ProviderRefundStatus
from tests.platforms.adyen import contract
from tests.support.servers import serve_wsgi

REFUND_ID = "rf_0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[AdyenSimulator, str]]:
    simulator = AdyenSimulator(settle_after_seconds=None)
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def simulator(served: tuple[AdyenSimulator, str]) -> AdyenSimulator:
    simulator, url = served
    requests.post(f"{url}/_control/reset", timeout=5).raise_for_status()
    return simulator


def provider_for(
    url: str, *, api_key: str = DEFAULT_API_KEY, merchant: str = DEFAULT_MERCHANT_ACCOUNT
) -> AdyenRefundProvider:
    http = HttpClient(platform="adyen", base_url=f"{url}/checkout/v71", timeout=(5.0, 30.0))
    return AdyenRefundProvider(api_key=api_key, merchant_account=merchant, api_base=f"{url}/checkout/v71", http=http)


@pytest.fixture
def provider(served: tuple[AdyenSimulator, str], simulator: AdyenSimulator) -> AdyenRefundProvider:
    return provider_for(served[1])


def ask(
    psp: str, amount: Money, *, refund_id: str = REFUND_ID, reason: RefundReason = RefundReason.CHANGED_MIND
) -> ProviderRefundRequest:
    return ProviderRefundRequest(
        refund_id=refund_id,
        payment=PaymentReference(provider=PaymentProvider.ADYEN, payment_id=psp),
        amount=amount,
        reason=reason,
        idempotency_key=idempotency_key(refund_id, "refund"),
    )


def eur(minor: int) -> Money:
    return Money(minor_units=minor, currency="EUR")


def test_a_refund_is_sent_as_adyen_documents_it(simulator: AdyenSimulator, provider: AdyenRefundProvider) -> None:
    # GIVEN a captured payment of 25.00 EUR
    psp = simulator.create_payment(value=2_500, currency="EUR")["pspReference"]
    # WHEN 10.00 is refunded
    refund = provider.create_refund(ask(psp, eur(1_000)))
    # THEN a pending refund with Adyen's reference, and Adyen got our reference, reason, key and account
    assert refund.status is ProviderRefundStatus.PENDING
    assert refund.amount == eur(1_000)
    assert refund.refund_id == REFUND_ID
    (held,) = simulator.refunds()
    assert held["pspReference"] == refund.provider_refund_id
    assert held["reference"] == REFUND_ID
    assert held["merchantRefundReason"] == "CUSTOMER REQUEST"
    assert held["merchantAccount"] == DEFAULT_MERCHANT_ACCOUNT
    sent = simulator.requests_seen[-1]
    assert sent["headers"]["Idempotency-Key"] == adyen_key(idempotency_key(REFUND_ID, "refund"))
    assert sent["headers"]["X-Api-Key"] == DEFAULT_API_KEY


def test_a_resend_under_the_key_returns_the_same_refund(
    simulator: AdyenSimulator, provider: AdyenRefundProvider
) -> None:
    psp = simulator.create_payment(value=2_500, currency="EUR")["pspReference"]
    first = provider.create_refund(ask(psp, eur(1_000)))
    again = provider.create_refund(ask(psp, eur(1_000)))
    assert again.provider_refund_id == first.provider_refund_id
    assert len(simulator.refunds()) == 1


def test_a_timeout_after_adyen_made_the_refund_is_an_unknown_outcome_and_a_resend_finds_it(
    simulator: AdyenSimulator, provider: AdyenRefundProvider
) -> None:
    # GIVEN Adyen answers after the client's read timeout, the refund made
    psp = simulator.create_payment(value=2_500, currency="EUR")["pspReference"]
    simulator.inject_fault("create_refund", "timeout_after_commit")
    # WHEN refunded / THEN the outcome is unknown
    with pytest.raises(OutcomeUnknownError):
        provider.create_refund(ask(psp, eur(1_000)))
    # WHEN sent again under the same key / THEN the refund Adyen made, not a second one
    again = provider.create_refund(ask(psp, eur(1_000)))
    assert [held["pspReference"] for held in simulator.refunds()] == [again.provider_refund_id]


@pytest.mark.parametrize(("fault", "error"), [("transient", TransientError), ("server_error", OutcomeUnknownError)])
def test_faults_map_to_our_vocabulary(
    simulator: AdyenSimulator, provider: AdyenRefundProvider, fault: str, error: type[Exception]
) -> None:
    psp = simulator.create_payment(value=2_500, currency="EUR")["pspReference"]
    simulator.inject_fault("create_refund", fault)
    with pytest.raises(error):
        provider.create_refund(ask(psp, eur(1_000)))
    assert simulator.refunds() == []


def test_the_key_in_use_is_transient(simulator: AdyenSimulator, provider: AdyenRefundProvider) -> None:
    # GIVEN the key already used for another amount (Adyen answers 704)
    psp = simulator.create_payment(value=2_500, currency="EUR")["pspReference"]
    provider.create_refund(ask(psp, eur(1_000)))
    with pytest.raises(TransientError) as caught:
        provider.create_refund(ask(psp, eur(999)))
    assert caught.value.code == "idempotency_key_in_use"


def test_refusals(served: tuple[AdyenSimulator, str], simulator: AdyenSimulator, provider: AdyenRefundProvider) -> None:
    psp = simulator.create_payment(value=2_500, currency="EUR")["pspReference"]
    with pytest.raises(RejectedError) as wrong_key:
        provider_for(served[1], api_key="AQE_wrong").create_refund(ask(psp, eur(100), refund_id=f"rf_{1:032x}"))
    assert wrong_key.value.code == "provider_authentication_failed"
    with pytest.raises(RejectedError) as wrong_account:
        provider_for(served[1], merchant="SomeoneElseECOM").create_refund(ask(psp, eur(100), refund_id=f"rf_{2:032x}"))
    assert wrong_account.value.code == "provider_permission_denied"
    with pytest.raises(NotFound):
        provider.create_refund(ask("ABCDEFGHIJKLMNOP", eur(100), refund_id=f"rf_{3:032x}"))
    assert simulator.refunds() == []


@pytest.mark.parametrize(
    ("money", "adyen_value"),
    [
        (Money(minor_units=2_790, currency="ISK"), 279_000),  # ISK: ISO 0 decimals, Adyen 2
        (Money(minor_units=15_000, currency="CLP"), 1_500_000),  # CLP: ISO 0, Adyen 2
        (Money(minor_units=150_000, currency="IDR"), 1_500),  # IDR: ISO 2, Adyen 0
        (Money(minor_units=12_345, currency="KWD"), 12_345),  # KWD: 3 at both
        (Money(minor_units=500, currency="JPY"), 500),
    ],
    ids=["ISK", "CLP", "IDR", "KWD", "JPY"],
)
def test_amounts_go_out_in_adyens_minor_units(
    simulator: AdyenSimulator, provider: AdyenRefundProvider, money: Money, adyen_value: int
) -> None:
    psp = simulator.create_payment(value=adyen_value * 2, currency=money.currency)["pspReference"]
    refund = provider.create_refund(ask(psp, money))
    assert simulator.refunds()[0]["amount"] == {"currency": money.currency, "value": adyen_value}
    assert refund.amount == money


def test_an_amount_adyen_cannot_carry_is_refused_before_sending(
    simulator: AdyenSimulator, provider: AdyenRefundProvider
) -> None:
    # GIVEN 1500.50 IDR (Adyen takes IDR without decimals)
    psp = simulator.create_payment(value=10_000, currency="IDR")["pspReference"]
    with pytest.raises(AmountNotRepresentable, match="Adyen"):
        provider.create_refund(ask(psp, Money(minor_units=150_050, currency="IDR")))
    assert simulator.requests_seen == []


def test_what_adyen_cannot_answer_is_unsupported(provider: AdyenRefundProvider) -> None:
    payment = PaymentReference(provider=PaymentProvider.ADYEN, payment_id="ABCDEFGHIJKLMNOP")
    with pytest.raises(UnsupportedOperation):
        provider.get_payment(payment)
    with pytest.raises(UnsupportedOperation):
        provider.get_refund("ABCDEFGHIJKLMNOQ", payment)
    with pytest.raises(UnsupportedOperation):
        provider.find_refund(REFUND_ID, payment)


def test_the_declared_capabilities(provider: AdyenRefundProvider) -> None:
    capabilities = provider.capabilities
    assert capabilities.outcome == "webhook_only"
    assert capabilities.find_by_reference is False
    assert (capabilities.idempotency.carrier, capabilities.idempotency.name) == ("header", "Idempotency-Key")
    assert capabilities.idempotency.key_lifetime_hours == 31 * 24


def test_every_request_the_connector_sends_is_valid_for_the_spec(
    simulator: AdyenSimulator, provider: AdyenRefundProvider
) -> None:
    # GIVEN refunds for each reason and several currencies
    for index, reason in enumerate(RefundReason):
        currency = ("EUR", "ISK", "IDR", "KWD")[index % 4]
        psp = simulator.create_payment(value=10_000_000, currency=currency)["pspReference"]
        amount = Money(minor_units=1_000 if currency != "IDR" else 100_000, currency=currency)
        provider.create_refund(ask(psp, amount, refund_id=f"rf_{index:032x}", reason=reason))
    # WHEN every recorded request is checked against the official Checkout spec
    failures = []
    for seen in simulator.requests_seen:
        try:
            contract.validate_request(seen)
        except Exception as error:
            failures.append(f"{seen['path']}: {error}")
    # THEN none breaks it
    assert len(simulator.requests_seen) == len(RefundReason)
    assert failures == []
    assert {json.loads(seen["body"])["merchantRefundReason"] for seen in simulator.requests_seen} == {
        "RETURN",
        "CUSTOMER REQUEST",
        "DUPLICATE",
        "FRAUD",
        "OTHER",
    }
