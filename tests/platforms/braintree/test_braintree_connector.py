"""Braintree's connector against its simulator: refunds of settled transactions, voids of unsettled ones, several
partials, over-refunds, declines, late failures, lost answers found by our order id, legacy ids, and the error
mapping of Braintree's GraphQL answers."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.simulators.braintree import US_BANK_ACCOUNT, BraintreeSimulator
from refundflow.connectors.http import HttpClient, HttpResponse
from refundflow.errors import (
    AlreadyDoneError,
    AmountNotRepresentable,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.platforms.braintree.connector import BraintreeRefundProvider, _raise_for
from refundflow.ports import ProviderRefundRequest, ProviderRefundStatus
from tests.platforms.braintree.conftest import Served


def pay(simulator: BraintreeSimulator, minor: int = 10_000, currency: str = "EUR", **seed: Any) -> PaymentReference:
    seeded = simulator.seed_payment(minor, currency, **seed)
    return PaymentReference(provider=PaymentProvider.BRAINTREE, payment_id=seeded["payment_id"])


def ask(payment: PaymentReference, minor: int, currency: str = "EUR") -> ProviderRefundRequest:
    refund_id = derive_refund_id("braintree-tests", uuid.uuid4().hex)
    return ProviderRefundRequest(
        refund_id=refund_id,
        payment=payment,
        amount=Money.of(minor, currency),
        reason=RefundReason.PRODUCT_RETURN,
        idempotency_key=idempotency_key(refund_id, "refund"),
    )


def mutations(simulator: BraintreeSimulator) -> list[dict[str, Any]]:
    bodies = [json.loads(seen["body"]) for seen in simulator.requests_seen if seen["path"] == "/graphql"]
    return [body for body in bodies if body["query"].lstrip().startswith("mutation")]


# ---------------------------------------------------------------- refunds of a settled transaction


def test_several_partials_add_up_and_carry_our_order_id(sandbox: Served, connector: BraintreeRefundProvider) -> None:
    simulator, _, _ = sandbox
    payment = pay(simulator, 10_000)
    requests_ = [ask(payment, minor) for minor in (1_000, 2_550, 3_000)]
    made = [connector.create_refund(request) for request in requests_]
    assert [refund.status for refund in made] == [ProviderRefundStatus.SUCCEEDED] * 3
    assert [refund.refund_id for refund in made] == [request.refund_id for request in requests_]
    assert [refund["orderId"] for refund in simulator.refunds()] == [request.refund_id for request in requests_]
    assert [body["variables"]["input"]["refund"]["amount"] for body in mutations(simulator)] == [
        "10.00",
        "25.50",
        "30.00",
    ]
    seen = connector.get_payment(payment)
    assert (seen.captured, seen.refunded, seen.settled) == (Money.of(10_000, "EUR"), Money.of(6_550, "EUR"), True)


def test_an_over_refund_is_refused_and_the_last_cent_is_not(
    sandbox: Served, connector: BraintreeRefundProvider
) -> None:
    simulator, _, _ = sandbox
    payment = pay(simulator, 10_000)
    connector.create_refund(ask(payment, 6_000))
    with pytest.raises(RejectedError) as refused:
        connector.create_refund(ask(payment, 4_001))
    assert refused.value.code == "amount_exceeds_refundable"
    assert connector.create_refund(ask(payment, 4_000)).amount == Money.of(4_000, "EUR")
    with pytest.raises(AlreadyDoneError):
        connector.create_refund(ask(payment, 1))
    assert len(simulator.refunds()) == 2


def test_a_refund_in_another_currency_is_refused_before_anything_is_sent(
    sandbox: Served, connector: BraintreeRefundProvider
) -> None:
    simulator, _, _ = sandbox
    payment = pay(simulator, 10_000, "EUR")
    with pytest.raises(RejectedError) as refused:
        connector.create_refund(ask(payment, 1_000, "USD"))
    assert refused.value.code == "currency_mismatch"
    assert mutations(simulator) == []


def test_an_unknown_transaction_is_a_final_refusal_and_find_says_none(
    sandbox: Served, connector: BraintreeRefundProvider
) -> None:
    missing = PaymentReference(provider=PaymentProvider.BRAINTREE, payment_id="dHJhbnNhY3Rpb25fbm9wZQ")
    with pytest.raises(RejectedError) as refused:
        connector.create_refund(ask(missing, 1_000))
    assert refused.value.code == "resource_missing"
    with pytest.raises(NotFound):
        connector.get_payment(missing)
    assert connector.find_refund(derive_refund_id("x", "y"), missing) is None


# ---------------------------------------------------------------- void before settlement


def test_an_unsettled_transaction_is_voided_whole_and_read_back_as_a_void(
    sandbox: Served, connector: BraintreeRefundProvider
) -> None:
    simulator, _, _ = sandbox
    payment = pay(simulator, 3_000, settled=False)
    assert connector.get_payment(payment).settled is False
    request = ask(payment, 3_000)
    voided = connector.create_refund(request)
    assert (voided.method, voided.status, voided.amount) == ("void", ProviderRefundStatus.SUCCEEDED, request.amount)
    assert voided.refund_id == request.refund_id
    assert simulator.transaction(payment.payment_id)["status"] == "VOIDED"
    assert simulator.refunds() == []  # a void is no refund at Braintree
    assert connector.get_refund(voided.provider_refund_id, payment).method == "void"
    found = connector.find_refund(request.refund_id, payment)
    assert found is not None
    assert (found.method, found.provider_refund_id) == ("void", voided.provider_refund_id)
    assert connector.get_payment(payment).refunded == Money.of(3_000, "EUR")
    with pytest.raises(AlreadyDoneError):
        connector.create_refund(ask(payment, 3_000))


def test_a_partial_refund_of_an_unsettled_transaction_is_refused_unsent(
    sandbox: Served, connector: BraintreeRefundProvider
) -> None:
    simulator, _, _ = sandbox
    payment = pay(simulator, 3_000, settled=False)
    with pytest.raises(RejectedError) as refused:
        connector.create_refund(ask(payment, 1_000))
    assert refused.value.code == "partial_refund_before_settlement"
    assert mutations(simulator) == []
    assert simulator.transaction(payment.payment_id)["status"] == "SUBMITTED_FOR_SETTLEMENT"


# ---------------------------------------------------------------- outcomes decided later


def test_a_declined_refund_is_failed_with_the_processors_reason(
    sandbox: Served, connector: BraintreeRefundProvider
) -> None:
    simulator, _, _ = sandbox
    payment = pay(simulator, 5_000, decline_refunds=True)
    made = connector.create_refund(ask(payment, 5_000))
    assert made.status is ProviderRefundStatus.FAILED
    assert made.failure_reason == "Processor Declined"
    assert connector.get_payment(payment).refunded == Money.of(0, "EUR")


def test_a_bank_account_refund_is_pending_until_settlement_decides(
    sandbox: Served, connector: BraintreeRefundProvider
) -> None:
    simulator, _, _ = sandbox
    payment = pay(simulator, 5_000, instrument=US_BANK_ACCOUNT)
    settles, declined = connector.create_refund(ask(payment, 2_000)), connector.create_refund(ask(payment, 3_000))
    assert {settles.status, declined.status} == {ProviderRefundStatus.PENDING}
    simulator.settle_refund(settles.provider_refund_id, True)
    simulator.settle_refund(declined.provider_refund_id, False)
    assert connector.get_refund(settles.provider_refund_id, payment).status is ProviderRefundStatus.SUCCEEDED
    late = connector.get_refund(declined.provider_refund_id, payment)
    assert late.status is ProviderRefundStatus.FAILED
    assert connector.get_payment(payment).refunded == Money.of(2_000, "EUR")


def test_a_card_refund_that_fails_after_success_reads_back_failed(
    sandbox: Served, connector: BraintreeRefundProvider
) -> None:
    simulator, _, _ = sandbox
    payment = pay(simulator, 5_000)
    made = connector.create_refund(ask(payment, 5_000))
    assert made.status is ProviderRefundStatus.SUCCEEDED
    simulator.settle_refund(made.provider_refund_id, False)
    assert connector.get_refund(made.provider_refund_id, payment).status is ProviderRefundStatus.FAILED
    with pytest.raises(NotFound):
        connector.get_refund("nosuchid", payment)


def test_a_transaction_named_by_its_legacy_id_is_translated_once(
    sandbox: Served, connector: BraintreeRefundProvider
) -> None:
    simulator, _, _ = sandbox
    global_id = pay(simulator, 4_000).payment_id
    legacy = PaymentReference(
        provider=PaymentProvider.BRAINTREE,
        payment_id=simulator.transaction(global_id)["legacyId"],
        locator={"id_type": "legacy"},
    )
    assert connector.get_payment(legacy).captured == Money.of(4_000, "EUR")
    assert connector.create_refund(ask(legacy, 1_000)).amount == Money.of(1_000, "EUR")
    translations = [seen for seen in simulator.requests_seen if "idFromLegacyId" in seen["body"]]
    assert len(translations) == 1


def test_bad_credentials_are_a_final_refusal(sandbox: Served) -> None:
    simulator, url, _ = sandbox
    endpoint = f"{url}/graphql"
    stranger = BraintreeRefundProvider(
        public_key="someoneelse",
        private_key="not-the-key",
        api_base=endpoint,
        http=HttpClient(platform="braintree", base_url=endpoint, timeout=(5.0, 30.0)),
    )
    with pytest.raises(RejectedError) as refused:
        stranger.get_payment(pay(simulator, 1_000))
    assert refused.value.code == "provider_authentication_failed"


# ---------------------------------------------------------------- amounts, exactly


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    currency=st.sampled_from(["EUR", "JPY", "KWD", "HUF"]),
    captured=st.integers(min_value=2, max_value=10**9),
    data=st.data(),
)
def test_amounts_reach_braintree_exactly_in_every_exponent(
    sandbox: Served, connector: BraintreeRefundProvider, currency: str, captured: int, data: st.DataObject
) -> None:
    simulator, _, _ = sandbox
    refund = data.draw(st.integers(min_value=1, max_value=captured))
    payment = pay(simulator, captured, currency)
    made = connector.create_refund(ask(payment, refund, currency))
    assert made.amount == Money.of(refund, currency)
    assert connector.get_payment(payment).refunded == Money.of(refund, currency)


def test_a_currency_that_is_not_iso_is_refused_before_sending(connector: BraintreeRefundProvider) -> None:
    payment = PaymentReference(provider=PaymentProvider.BRAINTREE, payment_id="dHJhbnNhY3Rpb25fYQ")
    request = ask(payment, 1_000).model_copy(
        update={"amount": Money.model_construct(minor_units=1_000, currency="XXQ")}
    )
    with pytest.raises(AmountNotRepresentable):
        connector.create_refund(request)


# ---------------------------------------------------------------- Braintree's answers in our vocabulary


def _answer(status: int, errors: list[dict[str, Any]]) -> HttpResponse:
    return HttpResponse(status=status, headers={}, body=json.dumps({"errors": errors}).encode())


def _error(legacy_code: str | None = None, error_class: str | None = None) -> dict[str, Any]:
    extensions = {key: value for key, value in (("legacyCode", legacy_code), ("errorClass", error_class)) if value}
    return {"message": "m", "extensions": extensions}


@pytest.mark.parametrize(
    ("status", "error", "write", "expected", "code"),
    [
        (429, _error(error_class="RESOURCE_LIMIT"), True, TransientError, "rate_limited"),
        (200, _error(error_class="RESOURCE_LIMIT"), True, TransientError, "rate_limited"),
        (401, _error(error_class="AUTHENTICATION"), False, RejectedError, "provider_authentication_failed"),
        (200, _error(error_class="AUTHORIZATION"), True, RejectedError, "provider_permission_denied"),
        (500, _error(error_class="INTERNAL"), True, OutcomeUnknownError, None),
        (500, _error(error_class="INTERNAL"), False, TransientError, None),
        (200, _error(error_class="SERVICE_AVAILABILITY"), True, OutcomeUnknownError, None),
        (502, {}, False, TransientError, None),
        (200, _error("91512", "VALIDATION"), True, AlreadyDoneError, "already_refunded"),
        (200, _error("91521", "VALIDATION"), True, RejectedError, "amount_exceeds_refundable"),
        (200, _error("91506", "VALIDATION"), True, RejectedError, "payment_not_settled"),
        (200, _error("91504", "VALIDATION"), True, RejectedError, "payment_not_voidable"),
        (200, _error(error_class="NOT_FOUND"), False, NotFound, "resource_missing"),
        (200, _error(error_class="UNSUPPORTED_CLIENT"), True, RejectedError, "provider_version_unsupported"),
        (200, _error("81503", "VALIDATION"), True, RejectedError, "braintree_81503"),
    ],
)
def test_braintree_errors_map_to_the_small_set(
    status: int, error: dict[str, Any], write: bool, expected: type[Exception], code: str | None
) -> None:
    with pytest.raises(expected) as raised:
        _raise_for(_answer(status, [error] if error else []), [error] if error else [], write=write)
    if code is not None:
        assert raised.value.code == code  # type: ignore[attr-defined]


def test_a_transaction_that_settles_while_it_is_being_voided_is_refunded_whole_instead(
    sandbox: Served, connector: BraintreeRefundProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator, _, _ = sandbox
    payment = pay(simulator, 3_000, settled=False)
    read = connector._transaction

    def read_then_settle(reference: PaymentReference) -> Any:
        seen = read(reference)
        simulator.transactions[reference.payment_id]["status"] = "SETTLED"  # Braintree's batch ran meanwhile
        return seen

    monkeypatch.setattr(connector, "_transaction", read_then_settle)
    request = ask(payment, 3_000)
    made = connector.create_refund(request)
    assert (made.method, made.status, made.refund_id) == ("refund", ProviderRefundStatus.SUCCEEDED, request.refund_id)
    (held,) = simulator.refunds()
    assert (held["legacyId"], held["amount"]["value"]) == (made.provider_refund_id, "30.00")


def test_a_query_that_gets_no_answer_is_transient_not_an_unknown_outcome(
    sandbox: Served, connector: BraintreeRefundProvider
) -> None:
    simulator, _, _ = sandbox
    payment = pay(simulator, 1_000)
    simulator.inject_fault("get_payment", "timeout_after_commit")
    with pytest.raises(TransientError):
        connector.get_payment(payment)


def test_a_refund_made_elsewhere_is_not_taken_for_ours(sandbox: Served, connector: BraintreeRefundProvider) -> None:
    simulator, _, _ = sandbox
    payment = pay(simulator, 1_000, order_id="ORD-77")
    made = connector.create_refund(ask(payment, 400))
    simulator.transactions[payment.payment_id]["refundIds"].append("elsewhere")
    simulator.refund_objects["elsewhere"] = {
        **simulator.refund_objects[made.provider_refund_id],
        "legacyId": "elsewhere",
    }
    simulator.refund_objects["elsewhere"]["orderId"] = "ORD-77"  # Braintree's default: the sale's order id
    assert connector.get_refund("elsewhere", payment).refund_id is None
    assert connector.get_refund(made.provider_refund_id, payment).refund_id == made.refund_id
