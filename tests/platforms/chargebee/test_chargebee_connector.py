"""Chargebee's connector against its simulator: money exact, partial refunds, errors in the small set, the
30-minute key, late failures, and every request it sends checked against what Chargebee documents."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.simulators.base import FaultRule
from local.simulators.chargebee import DEFAULT_API_KEY, REASON_CODES, to_chargebee_amount
from refundflow import catalog
from refundflow.connectors.factory import SecretBoundConnector
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
from refundflow.platforms.chargebee import connector as module
from refundflow.platforms.chargebee.connector import ChargebeeRefundProvider, ChargebeeSettings, chargebee_key
from refundflow.ports import ProviderRefundRequest, ProviderRefundStatus
from tests.platforms.chargebee.conftest import Served

DOCUMENTED_FIELDS = {"refund_amount", "comment", "customer_notes", "credit_note[reason_code]"}


def invoice(served: Served, minor_units: int = 10_000, currency: str = "EUR", **seed: object) -> PaymentReference:
    seeded = served.simulator.seed_payment(minor_units, currency, **seed)  # type: ignore[arg-type]
    return PaymentReference(
        provider=PaymentProvider.CHARGEBEE, payment_id=seeded["payment_id"], locator=seeded["locator"]
    )


def request(
    payment: PaymentReference, minor_units: int, currency: str = "EUR", key: str | None = None
) -> ProviderRefundRequest:
    refund_id = derive_refund_id("chargebee-tests", f"{payment.payment_id}-{minor_units}-{key}")
    return ProviderRefundRequest(
        refund_id=refund_id,
        payment=payment,
        amount=Money.of(minor_units, currency),
        reason=RefundReason.DAMAGED,
        idempotency_key=key or idempotency_key(refund_id, "refund"),
    )


# ---------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("minor_units", "currency", "sent"),
    [
        (1_234, "JPY", 1_234),
        (1_234, "ISK", 123_400),
        (1_234, "CLP", 123_400),
        (12_340, "KWD", 1_234),
        (999, "EUR", 999),
    ],
)
def test_amounts_go_out_in_chargebees_unit(served: Served, minor_units: int, currency: str, sent: int) -> None:
    payment = invoice(served, minor_units, currency)
    made = served.connector().create_refund(request(payment, minor_units, currency))
    assert made.amount == Money.of(minor_units, currency)
    (posted,) = [seen for seen in served.recorded() if seen["method"] == "POST"]
    assert dict(parse_qsl(str(posted["body"])))["refund_amount"] == str(sent)


def test_a_three_decimal_amount_chargebee_cannot_hold_is_refused_before_anything_is_sent(served: Served) -> None:
    payment = invoice(served, 12_340, "KWD")
    with pytest.raises(AmountNotRepresentable):
        served.connector().create_refund(request(payment, 1_235, "KWD"))
    assert [seen for seen in served.recorded() if seen["method"] == "POST"] == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    currency=st.sampled_from(["EUR", "JPY", "KRW", "XOF", "ISK", "CLP", "VND", "KWD", "BHD", "CLF", "USD"]),
    minor_units=st.integers(min_value=1, max_value=10**12),
)
def test_the_profile_and_chargebees_unit_agree_or_the_amount_is_refused(currency: str, minor_units: int) -> None:
    profile = catalog.payment_capabilities("chargebee").currencies
    money = Money.of(minor_units, currency)
    try:
        expected = to_chargebee_amount(minor_units, currency)
    except ValueError:
        assert profile.representable(money) is not None
        return
    assert profile.to_platform_units(money) == expected
    assert profile.from_platform(expected, currency) == money


# ---------------------------------------------------------------- partial refunds, over-refund, late failure


def test_several_partials_add_up_and_an_over_refund_is_refused(served: Served) -> None:
    payment = invoice(served, 10_000)
    connector = served.connector()
    for part in (1_000, 2_500, 3_500):
        assert connector.create_refund(request(payment, part)).status is ProviderRefundStatus.SUCCEEDED
    seen = connector.get_payment(payment)
    assert (seen.captured, seen.refunded) == (Money.of(10_000, "EUR"), Money.of(7_000, "EUR"))
    with pytest.raises(RejectedError) as refused:
        connector.create_refund(request(payment, 3_001))
    assert refused.value.code == "amount_exceeds_refundable"
    assert len(served.simulator.refunds()) == 3
    connector.create_refund(request(payment, 3_000))
    with pytest.raises(AlreadyDoneError):
        connector.create_refund(request(payment, 1))


def test_an_in_progress_refund_is_pending_and_reads_back_its_outcome(served: Served) -> None:
    payment = invoice(served, 5_000, behaviour="async")
    connector = served.connector()
    made = connector.create_refund(request(payment, 5_000))
    assert made.status is ProviderRefundStatus.PENDING
    assert connector.get_payment(payment).refunded == Money.of(5_000, "EUR")  # credited, refund due
    served.simulator.settle_refund(made.provider_refund_id, False)
    failed = connector.get_refund(made.provider_refund_id, payment)
    assert failed.status is ProviderRefundStatus.FAILED
    assert failed.failure_reason is not None
    assert failed.failure_reason.startswith("failure:")
    assert connector.get_payment(payment).refunded == Money.of(0, "EUR")  # the failed one's credit note is void


def test_a_refund_that_fails_after_it_succeeded_reads_as_failed(served: Served) -> None:
    payment = invoice(served, 5_000)
    connector = served.connector()
    made = connector.create_refund(request(payment, 2_000))
    assert made.status is ProviderRefundStatus.SUCCEEDED
    served.simulator.settle_refund(made.provider_refund_id, False)
    late = connector.get_refund(made.provider_refund_id, payment)
    assert late.status is ProviderRefundStatus.FAILED
    assert late.failure_reason is not None
    assert late.failure_reason.startswith("late_failure:")


@pytest.mark.parametrize(("status", "ours"), sorted(module.STATUSES.items()))
def test_every_transaction_status_has_its_meaning(status: str, ours: ProviderRefundStatus) -> None:
    pending = {"in_progress", "timeout", "needs_attention"}
    assert (ours is ProviderRefundStatus.PENDING) == (status in pending)


# ---------------------------------------------------------------- the key and lost answers


def test_a_lost_answer_is_resent_under_the_key_within_its_30_minutes_only(served: Served) -> None:
    payment = invoice(served, 10_000)
    connector = served.connector()
    asked = request(payment, 4_000)
    served.simulator.inject_fault("create_refund", "timeout_after_commit")
    with pytest.raises(OutcomeUnknownError):
        connector.create_refund(asked)
    # within the window the resend replays the refund Chargebee made
    again = connector.create_refund(asked)
    assert [held["id"] for held in served.simulator.refunds()] == [again.provider_refund_id]
    replays = [seen for seen in served.recorded() if seen["method"] == "POST"]
    assert len(replays) == 2
    # after it Chargebee has forgotten the key: the catalog's lifetime is what keeps the domain from resending
    first_sent = datetime(2026, 1, 1, tzinfo=UTC)
    lifetime = connector.capabilities.idempotency
    assert lifetime.key_alive(first_sent, first_sent + timedelta(minutes=29))
    assert not lifetime.key_alive(first_sent, first_sent + timedelta(minutes=30))
    served.clock.offset = 31 * 60
    connector.create_refund(asked)
    assert len(served.simulator.refunds()) == 2


def test_the_same_key_with_another_amount_is_refused(served: Served) -> None:
    payment = invoice(served, 10_000)
    connector = served.connector()
    first = request(payment, 1_000, key="rf-key-reused")
    connector.create_refund(first)
    with pytest.raises(RejectedError):
        connector.create_refund(first.model_copy(update={"amount": Money.of(2_000, "EUR")}))
    assert len(served.simulator.refunds()) == 1


def test_a_long_key_is_shortened_the_same_way_every_time() -> None:
    long_key = "k" * 150
    assert chargebee_key(long_key) == chargebee_key(long_key)
    assert len(chargebee_key(long_key)) <= 100
    assert chargebee_key("short") == "short"


# ---------------------------------------------------------------- errors in the small set


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (429, {"api_error_code": "api_request_limit_exceeded", "message": "slow"}, TransientError, "rate_limited"),
        (
            409,
            {"api_error_code": "invalid_request", "message": "in progress"},
            TransientError,
            "idempotency_key_in_use",
        ),
        (503, {"api_error_code": "internal_temporary_error", "message": "x"}, OutcomeUnknownError, None),
        (500, {"api_error_code": "internal_error", "message": "x"}, OutcomeUnknownError, None),
        (
            403,
            {"api_error_code": "api_authorization_failed", "message": "x"},
            RejectedError,
            "provider_permission_denied",
        ),
        (400, {"api_error_code": "param_wrong_value", "param": "comment", "message": "x"}, RejectedError, None),
        (502, "<html>bad gateway</html>", OutcomeUnknownError, None),
    ],
)
def test_chargebee_errors_map_to_the_small_set_on_a_refund(
    served: Served, status: int, body: object, error: type[Exception], code: str | None
) -> None:
    payment = invoice(served)
    served.simulator.add_fault(FaultRule(method="POST", path=r"/refund$", status=status, body=body))
    with pytest.raises(error) as raised:
        served.connector().create_refund(request(payment, 1_000))
    if code is not None:
        assert getattr(raised.value, "code", None) == code
    assert served.simulator.refunds() == []


def test_a_server_error_on_a_read_is_transient(served: Served) -> None:
    payment = invoice(served)
    served.simulator.inject_fault("get_payment", "server_error")
    with pytest.raises(TransientError):
        served.connector().get_payment(payment)


def test_a_gateway_refusal_is_rejected_with_its_code(served: Served) -> None:
    payment = invoice(served, behaviour="fail")
    with pytest.raises(RejectedError) as refused:
        served.connector().create_refund(request(payment, 1_000))
    assert refused.value.code == "payment_processing_failed"


def test_a_wrong_api_key_is_an_authentication_refusal(served: Served) -> None:
    payment = invoice(served)
    with pytest.raises(RejectedError) as refused:
        served.connector(api_key="test_not_the_key").create_refund(request(payment, 1_000))
    assert refused.value.code == "provider_authentication_failed"


def test_an_unknown_invoice_is_not_found_on_reads_and_refused_on_a_refund(served: Served) -> None:
    missing = PaymentReference(provider=PaymentProvider.CHARGEBEE, payment_id="INV-404")
    connector = served.connector()
    with pytest.raises(NotFound):
        connector.get_payment(missing)
    with pytest.raises(NotFound):
        connector.get_refund("txn_missing", missing)
    with pytest.raises(RejectedError) as refused:
        connector.create_refund(request(missing, 1_000))
    assert refused.value.code == "resource_missing"


def test_an_unpaid_invoice_has_nothing_to_refund(served: Served) -> None:
    payment = invoice(served, settled=False)
    with pytest.raises(RejectedError) as refused:
        served.connector().get_payment(payment)
    assert refused.value.code == "payment_not_captured"


def test_a_refund_of_another_invoice_is_not_ours(served: Served) -> None:
    first, second = invoice(served), invoice(served)
    made = served.connector().create_refund(request(first, 1_000))
    with pytest.raises(RejectedError):
        served.connector().get_refund(made.provider_refund_id, second)


def test_another_kind_of_payment_is_refused(served: Served) -> None:
    payment = PaymentReference(provider=PaymentProvider.CHARGEBEE, payment_id="txn_1", locator={"kind": "transaction"})
    with pytest.raises(RejectedError):
        served.connector().create_refund(request(payment, 1_000))
    assert served.recorded() == []


# ---------------------------------------------------------------- every request, as Chargebee documents it


def test_every_request_the_connector_sends_is_one_chargebee_documents(served: Served) -> None:
    payment = invoice(served, 10_000, behaviour="async")
    connector = served.connector()
    made = connector.create_refund(request(payment, 2_500))
    connector.get_refund(made.provider_refund_id, payment)
    connector.get_payment(payment)
    seen = served.recorded()
    assert [(item["method"], item["path"]) for item in seen] == [
        ("POST", f"/api/v2/invoices/{payment.payment_id}/refund"),
        ("GET", f"/api/v2/transactions/{made.provider_refund_id}"),
        ("GET", f"/api/v2/invoices/{payment.payment_id}"),
    ]
    for item in seen:
        headers = {key.lower(): value for key, value in dict(item["headers"]).items()}  # type: ignore[call-overload]
        assert headers["authorization"] == "Basic " + base64.b64encode(f"{DEFAULT_API_KEY}:".encode()).decode()
    post = {key.lower(): value for key, value in dict(seen[0]["headers"]).items()}  # type: ignore[call-overload]
    assert post["content-type"] == "application/x-www-form-urlencoded"
    assert 0 < len(post["chargebee-idempotency-key"]) <= 100
    form = dict(parse_qsl(str(seen[0]["body"])))
    assert set(form) <= DOCUMENTED_FIELDS
    assert re.fullmatch(r"[1-9][0-9]*", form["refund_amount"])
    assert len(form["comment"]) <= 300
    assert made.refund_id is not None
    assert made.refund_id in form["comment"]
    assert form["credit_note[reason_code]"] in REASON_CODES


# ---------------------------------------------------------------- the factory


def test_the_factory_builds_the_sites_base_from_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHARGEBEE_API_BASE", raising=False)
    built = module._build(ChargebeeSettings(), "refundflow/chargebee", {"api_key": "test_x", "site": "acme-test"})
    assert built.http.base_url == "https://acme-test.chargebee.com/api/v2"
    for secret in ({"api_key": "test_x"}, {"api_key": "", "site": "acme"}, {"api_key": "k", "site": "evil.com/x"}):
        with pytest.raises(ConfigurationError):
            module._build(ChargebeeSettings(), "refundflow/chargebee", secret)
    with pytest.raises(ConfigurationError):
        ChargebeeRefundProvider(api_key="k", api_base="https://{site}.chargebee.com/api/v2")
    assert isinstance(module.connector, SecretBoundConnector)
