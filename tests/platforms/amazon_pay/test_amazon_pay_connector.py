"""Amazon Pay's connector against its strict simulator: errors in the small set, partials, over-refunds, the
late failure, the lost answer, and every request it sends signed and valid."""

from __future__ import annotations

import json
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.simulators.amazon_pay import DECLINE, MANUAL
from local.simulators.base import FaultRule
from refundflow.connectors.http import HttpClient
from refundflow.errors import ConfigurationError, NotFound, OutcomeUnknownError, RejectedError, TransientError
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.platforms.amazon_pay.connector import AmazonPayRefundProvider, AmazonPaySettings, _build
from refundflow.platforms.amazon_pay.signing import load_private_key
from refundflow.ports import ProviderRefundRequest, ProviderRefundStatus
from tests.platforms.amazon_pay.conftest import Served


def charge(served: Served, minor: int = 10_000, currency: str = "EUR", **seed: object) -> PaymentReference:
    seeded = served.simulator.seed_payment(minor, currency, **seed)  # type: ignore[arg-type]
    return PaymentReference(provider=PaymentProvider.AMAZON_PAY, payment_id=seeded["payment_id"])


def request(payment: PaymentReference, minor: int, currency: str = "EUR", **extra: str) -> ProviderRefundRequest:
    refund_id = derive_refund_id("test", uuid.uuid4().hex)
    return ProviderRefundRequest(
        refund_id=refund_id,
        payment=payment,
        amount=Money.of(minor, currency),
        reason=RefundReason.PRODUCT_RETURN,
        idempotency_key=idempotency_key(refund_id, "refund"),
        metadata={"refund_id": refund_id, **extra},
    )


def test_several_partials_add_up_at_the_charge_and_each_is_its_own_refund(fresh: Served) -> None:
    # GIVEN a captured charge of 100.00 EUR
    connector = fresh.connector()
    payment = charge(fresh)
    # WHEN three partial refunds are made
    made = [connector.create_refund(request(payment, minor)) for minor in (1_000, 2_550, 4_001)]
    # THEN three refunds, RefundInitiated, and the charge counts 75.51 EUR refunded
    assert len({refund.provider_refund_id for refund in made}) == 3
    assert {refund.status for refund in made} == {ProviderRefundStatus.PENDING}
    seen = connector.get_payment(payment)
    assert (seen.captured, seen.refunded) == (Money.of(10_000, "EUR"), Money.of(7_551, "EUR"))


def test_an_over_refund_beyond_the_allowance_is_refused_as_exceeding_what_is_refundable(fresh: Served) -> None:
    connector = fresh.connector()
    payment = charge(fresh)
    connector.create_refund(request(payment, 10_000))
    # Amazon Pay allows 15 % (at most 75 EUR) over the capture: 15.00 more is accepted, 0.01 beyond that is not
    connector.create_refund(request(payment, 1_500))
    with pytest.raises(RejectedError) as refused:
        connector.create_refund(request(payment, 1))
    assert refused.value.code == "amount_exceeds_refundable"


def test_the_same_key_with_another_amount_is_refused_not_made_twice(fresh: Served) -> None:
    connector = fresh.connector()
    payment = charge(fresh)
    first = request(payment, 1_000)
    connector.create_refund(first)
    with pytest.raises(RejectedError) as refused:
        connector.create_refund(first.model_copy(update={"amount": Money.of(2_000, "EUR")}))
    assert refused.value.code == "idempotency_key_reused"
    assert len(fresh.simulator.refunds()) == 1


def test_a_late_failure_reads_back_as_failed_with_amazons_reason(fresh: Served) -> None:
    # GIVEN a refund Amazon Pay takes, then declines
    connector = fresh.connector()
    payment = charge(fresh, behaviour=MANUAL)
    made = connector.create_refund(request(payment, 2_500))
    assert made.status is ProviderRefundStatus.PENDING
    fresh.simulator.settle_refund(made.provider_refund_id, False)
    # WHEN it is read
    read = connector.get_refund(made.provider_refund_id, payment)
    # THEN it failed with Amazon's reason, and no longer holds the charge
    assert (read.status, read.failure_reason) == (ProviderRefundStatus.FAILED, "AmazonRejected")
    assert connector.get_payment(payment).refunded == Money.of(0, "EUR")


def test_a_declining_charge_declines_by_itself_and_says_so_by_ipn(fresh: Served) -> None:
    fresh.simulator.settle_after_seconds = 0.0
    try:
        connector = fresh.connector()
        payment = charge(fresh, behaviour=DECLINE)
        made = connector.create_refund(request(payment, 2_500))
        fresh.receiver.wait_until(lambda deliveries: len(deliveries) >= 1)
    finally:
        fresh.simulator.settle_after_seconds = None
    assert connector.get_refund(made.provider_refund_id, payment).status is ProviderRefundStatus.FAILED
    ipn = json.loads(json.loads(fresh.receiver.deliveries[0][1])["Message"])
    assert (ipn["ObjectType"], ipn["ObjectId"]) == ("REFUND", made.provider_refund_id)


def test_an_answer_lost_after_the_work_is_unknown_and_the_same_key_gets_the_saved_answer(fresh: Served) -> None:
    connector = fresh.connector()
    payment = charge(fresh)
    ask = request(payment, 3_000)
    fresh.simulator.add_fault(FaultRule(method="POST", path=r"/v2/refunds$", status=500, when="after"))
    with pytest.raises(OutcomeUnknownError):
        connector.create_refund(ask)
    again = connector.create_refund(ask)
    assert [refund["refundId"] for refund in fresh.simulator.refunds()] == [again.provider_refund_id]


@pytest.mark.parametrize(("status", "error"), [(429, TransientError), (503, OutcomeUnknownError)])
def test_a_refused_or_failed_write_maps_to_retry_or_unknown(fresh: Served, status: int, error: type) -> None:
    connector = fresh.connector()
    payment = charge(fresh)
    fresh.simulator.add_fault(FaultRule(method="POST", path=r"/v2/refunds$", status=status))
    with pytest.raises(error):
        connector.create_refund(request(payment, 1_000))
    assert fresh.simulator.refunds() == []


def test_reads_that_fail_are_transient_and_unknown_objects_are_not_found(fresh: Served) -> None:
    connector = fresh.connector()
    payment = charge(fresh)
    fresh.simulator.add_fault(FaultRule(method="GET", path=r"/v2/charges/", status=500))
    with pytest.raises(TransientError):
        connector.get_payment(payment)
    with pytest.raises(NotFound):
        connector.get_refund("S01-0000000-0000000-R000000", payment)
    with pytest.raises(NotFound):
        connector.get_payment(PaymentReference(provider=PaymentProvider.AMAZON_PAY, payment_id="S01-1-1-C1"))


def test_an_unknown_or_uncaptured_charge_is_refused(fresh: Served) -> None:
    connector = fresh.connector()
    unknown = PaymentReference(provider=PaymentProvider.AMAZON_PAY, payment_id="S01-0000000-0000000-C000000")
    with pytest.raises(RejectedError) as missing:
        connector.create_refund(request(unknown, 1_000))
    assert missing.value.code == "resource_missing"
    authorized = charge(fresh, settled=False)
    with pytest.raises(RejectedError) as not_captured:
        connector.create_refund(request(authorized, 1_000))
    assert not_captured.value.code == "payment_not_captured"
    with pytest.raises(RejectedError):
        connector.get_payment(authorized)


def test_a_request_signed_with_another_key_is_refused_as_bad_credentials(fresh: Served) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    connector = AmazonPayRefundProvider(
        public_key_id=fresh.simulator.public_key_id,
        private_key=other,
        http=HttpClient(platform="amazon_pay", base_url=f"{fresh.url}/sandbox/v2", timeout=(5.0, 30.0)),
    )
    with pytest.raises(RejectedError) as refused:
        connector.create_refund(request(charge(fresh), 1_000))
    assert refused.value.code == "provider_authentication_failed"
    assert fresh.simulator.refunds() == []


def test_a_currency_other_than_the_charges_is_refused(fresh: Served) -> None:
    with pytest.raises(RejectedError) as refused:
        fresh.connector().create_refund(request(charge(fresh), 1_000, "USD"))
    assert refused.value.code == "currency_mismatch"


def test_every_request_sent_is_signed_valid_and_carries_the_reference_on_the_statement(fresh: Served) -> None:
    # GIVEN the connector's whole surface used once
    connector = fresh.connector()
    payment = charge(fresh, 5_000, "JPY")
    made = connector.create_refund(request(payment, 1_234, "JPY", source_reference="RMA-2026-000123-extra"))
    connector.get_refund(made.provider_refund_id, payment)
    connector.get_payment(payment)
    # THEN the strict simulator accepted every request (signature, headers, body) and the body is Amazon's shape
    seen = fresh.simulator.requests_seen
    assert [entry["method"] for entry in seen] == ["POST", "GET", "GET"]
    body = json.loads(seen[0]["body"])
    assert body == {
        "chargeId": payment.payment_id,
        "refundAmount": {"amount": "1234", "currencyCode": "JPY"},
        "softDescriptor": "RMA-2026-000123-",
    }
    assert len(seen[0]["headers"]["X-Amz-Pay-Idempotency-Key"]) == 32
    assert made.amount == Money.of(1_234, "JPY")


def test_the_factory_builds_from_the_secret_and_refuses_another_shape(fresh: Served) -> None:
    secret = fresh.simulator.local_secrets()["api"]
    config = AmazonPaySettings.model_validate({"AMAZON_PAY_API_BASE": f"{fresh.url}/sandbox/v2"})
    built = _build(config, "refundflow/amazon_pay", secret)
    assert built.get_payment(charge(fresh)).captured == Money.of(10_000, "EUR")
    with pytest.raises(ConfigurationError, match="private_key"):
        _build(config, "refundflow/amazon_pay", {"public_key_id": "x"})
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert load_private_key(pem.decode()).key_size == 2048
