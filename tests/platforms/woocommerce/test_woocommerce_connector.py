"""WooCommerce's connector against the simulator, beyond the conformance suites: no idempotency key, so our
reference (meta and reason) is what keeps a refund single; WooCommerce's refusals in the small set of errors."""

from __future__ import annotations

import uuid

import pytest
import requests

from local.simulators.woocommerce import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET
from refundflow.errors import OutcomeUnknownError, RejectedError
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.platforms.woocommerce.connector import REFUND_ID_META_KEY
from refundflow.ports import ProviderRefundRequest, ProviderRefundStatus
from tests.platforms.woocommerce.conftest import Served

AUTH = (DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET)


def order(served: Served, minor: int = 10_000, currency: str = "EUR", gateway: str = "stripe") -> PaymentReference:
    seeded = served.simulator.seed_payment(minor, currency, gateway=gateway)
    return PaymentReference(provider=PaymentProvider.WOOCOMMERCE, payment_id=seeded["payment_id"])


def request(payment: PaymentReference, minor: int, currency: str = "EUR") -> ProviderRefundRequest:
    refund_id = derive_refund_id("woo-test", uuid.uuid4().hex)
    return ProviderRefundRequest(
        refund_id=refund_id,
        payment=payment,
        amount=Money.of(minor, currency),
        reason=RefundReason.DAMAGED,
        idempotency_key=idempotency_key(refund_id, "refund"),
    )


def refund_posts(served: Served) -> list[dict[str, object]]:
    import json

    return [
        json.loads(seen["body"])
        for seen in served.simulator.requests_seen
        if seen["method"] == "POST" and seen["path"].endswith("/refunds")
    ]


def test_the_store_itself_has_no_idempotency_a_replayed_post_refunds_twice(served: Served) -> None:
    # GIVEN the simulator is as forgiving as WooCommerce: the same POST twice
    payment = order(served)
    body = {"amount": "10.00", "reason": "twice", "api_refund": True}
    url = f"{served.api_base}/orders/{payment.payment_id}/refunds"
    first = requests.post(url, json=body, auth=AUTH, timeout=5)
    second = requests.post(url, json=body, auth=AUTH, timeout=5)
    # THEN two refunds exist: only the connector can prevent it
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert len(served.simulator.refunds()) == 2


def test_the_same_refund_sent_twice_refunds_once_because_it_is_looked_for_first(served: Served) -> None:
    payment = order(served)
    wanted = request(payment, 2_500)
    first = served.connector().create_refund(wanted)
    second = served.connector().create_refund(wanted)
    assert second.provider_refund_id == first.provider_refund_id
    assert len(served.simulator.refunds()) == 1
    assert len(refund_posts(served)) == 1


def test_the_refund_goes_through_the_gateway_and_carries_our_reference_twice(served: Served) -> None:
    payment = order(served, 4_990)
    wanted = request(payment, 1_990)
    made = served.connector().create_refund(wanted)
    (sent,) = refund_posts(served)
    assert sent["amount"] == "19.90"
    assert sent["api_refund"] is True
    assert sent["meta_data"] == [{"key": REFUND_ID_META_KEY, "value": wanted.refund_id}]
    assert f"(refundflow {wanted.refund_id})" in str(sent["reason"])
    assert made.refund_id == wanted.refund_id
    assert made.status is ProviderRefundStatus.SUCCEEDED


def test_a_lost_answer_is_unknown_and_the_resend_finds_the_refund_instead_of_making_another(served: Served) -> None:
    payment = order(served)
    wanted = request(payment, 3_000)
    served.simulator.inject_fault("create_refund", "timeout_after_commit")
    with pytest.raises(OutcomeUnknownError):
        served.connector().create_refund(wanted)
    again = served.connector().create_refund(wanted)
    assert again.refund_id == wanted.refund_id
    assert again.amount == Money.of(3_000, "EUR")
    assert len(served.simulator.refunds()) == 1
    assert len(refund_posts(served)) == 1  # the resend was a look-up, not a POST


def test_a_refund_whose_meta_was_never_saved_is_found_by_the_reason(served: Served) -> None:
    # GIVEN WooCommerce saved the refund (and its reason) and died before saving its meta
    payment = order(served)
    wanted = request(payment, 1_000)
    requests.post(
        f"{served.api_base}/orders/{payment.payment_id}/refunds",
        json={"amount": "10.00", "reason": f"Damaged (refundflow {wanted.refund_id})", "api_refund": True},
        auth=AUTH,
        timeout=5,
    ).raise_for_status()
    # THEN it is ours, and sending again makes nothing new
    found = served.connector().find_refund(wanted.refund_id, payment)
    assert found is not None
    assert found.refund_id == wanted.refund_id
    served.connector().create_refund(wanted)
    assert len(served.simulator.refunds()) == 1


def test_a_gateway_refusal_is_final_and_leaves_no_refund(served: Served) -> None:
    payment = order(served)
    served.simulator.refuse_gateway("Refund failed: the card issuer declined the refund.")
    with pytest.raises(RejectedError) as refused:
        served.connector().create_refund(request(payment, 2_000))
    assert refused.value.code == "gateway_refused"
    assert "card issuer declined" in refused.value.message
    assert served.simulator.refunds() == []


def test_a_gateway_without_automatic_refunds_is_refused(served: Served) -> None:
    payment = order(served, gateway="cod")
    with pytest.raises(RejectedError) as refused:
        served.connector().create_refund(request(payment, 2_000))
    assert refused.value.code == "gateway_refused"
    assert "does not support automatic refunds" in refused.value.message


def test_more_than_is_left_is_refused_as_an_over_refund(served: Served) -> None:
    payment = order(served, 5_000)
    served.simulator.admin_refund(int(payment.payment_id), 4_000)
    with pytest.raises(RejectedError) as refused:
        served.connector().create_refund(request(payment, 2_000))
    assert refused.value.code == "amount_exceeds_refundable"


def test_a_refund_of_ours_recorded_without_the_gateway_moved_no_money(served: Served) -> None:
    # GIVEN a refund with our reference that WooCommerce recorded without its gateway (refunded_payment false)
    payment = order(served)
    wanted = request(payment, 1_500)
    requests.post(
        f"{served.api_base}/orders/{payment.payment_id}/refunds",
        json={
            "amount": "15.00",
            "reason": "manual",
            "api_refund": False,
            "meta_data": [{"key": REFUND_ID_META_KEY, "value": wanted.refund_id}],
        },
        auth=AUTH,
        timeout=5,
    ).raise_for_status()
    # THEN it is never taken for money returned
    found = served.connector().find_refund(wanted.refund_id, payment)
    assert found is not None
    assert found.status is ProviderRefundStatus.FAILED
    assert found.failure_reason is not None
    assert "refunded_payment false" in found.failure_reason


def test_the_payment_counts_every_refund_of_the_order_also_those_made_in_wp_admin(served: Served) -> None:
    payment = order(served, 8_000)
    served.connector().create_refund(request(payment, 1_000))
    served.simulator.admin_refund(int(payment.payment_id), 500, through_gateway=False)
    seen = served.connector().get_payment(payment)
    assert (seen.captured, seen.refunded) == (Money.of(8_000, "EUR"), Money.of(1_500, "EUR"))


def test_wrong_credentials_are_a_final_refusal(served: Served) -> None:
    payment = order(served)
    with pytest.raises(RejectedError) as refused:
        served.connector(consumer_secret="cs_wrong").get_payment(payment)
    assert refused.value.code == "provider_authentication_failed"


def test_an_unknown_order_cannot_be_refunded(served: Served) -> None:
    unknown = PaymentReference(provider=PaymentProvider.WOOCOMMERCE, payment_id="999999")
    with pytest.raises(RejectedError) as refused:
        served.connector().create_refund(request(unknown, 1_000))
    assert refused.value.code == "resource_missing"


def test_a_write_back_sets_the_state_meta_field_and_a_private_note(served: Served) -> None:
    from refundflow.ports import TicketUpdate

    order_id = served.simulator.seed_ticket({"payment_provider": "woocommerce", "payment_id": "1"})
    marker = "refundflow:evt_1"
    update = TicketUpdate(marker=marker, event="RefundIssued", label="issued", text=f"Refund issued. [{marker}]")
    served.connector().write_back(order_id, update)
    view = served.simulator.ticket_view(order_id)
    assert view["labels"] == ["issued"]
    assert view["notes"] == [f"Refund issued. [{marker}]"]
    assert view["public"] == []


def test_another_currency_than_the_orders_is_never_sent(served: Served) -> None:
    # WooCommerce would refund 20.00 in the order's currency whatever the request says
    payment = order(served, 5_000, "EUR")
    with pytest.raises(RejectedError) as refused:
        served.connector().create_refund(request(payment, 2_000, "USD"))
    assert refused.value.code == "currency_mismatch"
    assert refund_posts(served) == []
