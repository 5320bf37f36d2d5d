"""Shopify's connector against its simulator: what it sends (the pinned version, the access token, the
@idempotent directive with our key, our note) and how Shopify's answers map to the domain's errors."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from local.simulators.base import FaultRule
from refundflow.errors import (
    AlreadyDoneError,
    NotFound,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.platforms.shopify.connector import ShopifyRefundProvider, throttle_wait
from refundflow.ports import ProviderRefundRequest, ProviderRefundStatus
from tests.platforms.shopify.conftest import API_VERSION, Served, provider


def order(served: Served, minor_units: int = 10_000, currency: str = "EUR", **seed: object) -> PaymentReference:
    seeded = served[0].seed_payment(minor_units, currency, **seed)  # type: ignore[arg-type]
    return PaymentReference(provider=PaymentProvider.SHOPIFY, payment_id=seeded["payment_id"])


def request(payment: PaymentReference, minor_units: int, currency: str = "EUR") -> ProviderRefundRequest:
    refund_id = derive_refund_id("shopify-test", uuid.uuid4().hex)
    return ProviderRefundRequest(
        refund_id=refund_id,
        payment=payment,
        amount=Money.of(minor_units, currency),
        reason=RefundReason.PRODUCT_RETURN,
        idempotency_key=idempotency_key(refund_id, "refund"),
    )


def refund_calls(served: Served) -> list[dict[str, object]]:
    return [seen for seen in served[0].requests_seen if "refundCreate" in seen["body"]]


def test_the_refund_is_sent_to_the_pinned_version_with_the_token_our_key_and_our_note(
    sandbox: Served, connector: ShopifyRefundProvider
) -> None:
    payment = order(sandbox)
    wanted = request(payment, 2_500)
    made = connector.create_refund(wanted)
    (call,) = refund_calls(sandbox)
    sent = json.loads(str(call["body"]))
    assert call["path"] == f"/admin/api/{API_VERSION}/graphql.json"
    assert call["headers"]["X-Shopify-Access-Token"] == sandbox[0].access_token  # type: ignore[index]
    assert "@idempotent(key: $idempotencyKey)" in sent["query"]
    assert sent["variables"]["idempotencyKey"] == wanted.idempotency_key
    assert sent["variables"]["input"]["note"] == f"refundflow {wanted.refund_id}"
    (line,) = sent["variables"]["input"]["transactions"]
    assert (line["kind"], line["amount"], line["gateway"]) == ("REFUND", "25.00", "shopify_payments")
    assert (made.refund_id, made.status, made.amount) == (
        wanted.refund_id,
        ProviderRefundStatus.SUCCEEDED,
        wanted.amount,
    )


def test_the_same_key_with_other_input_is_refused_and_the_same_input_answers_the_first_refund(
    sandbox: Served, connector: ShopifyRefundProvider
) -> None:
    simulator, url, _ = sandbox
    payment = order(sandbox)
    first = connector.create_refund(request(payment, 1_000))
    # the same key and input again, straight at Shopify (the connector would find its refund by the note first)
    (call,) = refund_calls(sandbox)
    replay = requests.post(
        f"{url}{call['path']}",
        data=str(call["body"]),
        headers={"X-Shopify-Access-Token": simulator.access_token},
        timeout=5,
    ).json()
    assert replay["data"]["refundCreate"]["refund"]["id"] == first.provider_refund_id
    changed = json.loads(str(call["body"]))
    changed["variables"]["input"]["transactions"][0]["amount"] = "11.00"
    conflict = requests.post(
        f"{url}{call['path']}", json=changed, headers={"X-Shopify-Access-Token": simulator.access_token}, timeout=5
    ).json()
    assert conflict["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
    assert len(simulator.refunds()) == 1


def test_a_throttled_query_is_transient_with_the_wait_the_bucket_needs(
    sandbox: Served, connector: ShopifyRefundProvider
) -> None:
    payment = order(sandbox)
    sandbox[0].inject_fault("create_refund", "transient")
    with pytest.raises(TransientError) as raised:
        connector.create_refund(request(payment, 1_000))
    # the query costs 12 points, the bucket holds 2 and refills 5 a second: 2 seconds
    assert (raised.value.code, raised.value.retry_after_seconds) == ("rate_limited", 2.0)
    assert sandbox[0].refunds() == []


def test_throttle_wait_reads_the_cost_extension() -> None:
    body = {
        "extensions": {
            "cost": {"requestedQueryCost": 101, "throttleStatus": {"currentlyAvailable": 1, "restoreRate": 50}}
        }
    }
    assert throttle_wait(body) == 2.0
    assert throttle_wait({}) is None


def test_a_wrong_token_is_a_final_refusal(sandbox: Served) -> None:
    payment = order(sandbox)
    stranger = provider(sandbox[1], token="shpat_not_the_shops_token_000000000")
    with pytest.raises(RejectedError) as raised:
        stranger.create_refund(request(payment, 1_000))
    assert raised.value.code == "provider_authentication_failed"


def test_an_order_paid_through_another_provider_is_never_refunded_by_shopify(
    sandbox: Served, connector: ShopifyRefundProvider
) -> None:
    payment = order(sandbox, gateway="stripe")
    with pytest.raises(RejectedError) as raised:
        connector.create_refund(request(payment, 1_000))
    assert raised.value.code == "paid_through_other_gateway"
    assert refund_calls(sandbox) == []


def test_a_fully_refunded_order_is_already_done_and_an_over_refund_is_refused_unsent(
    sandbox: Served, connector: ShopifyRefundProvider
) -> None:
    payment = order(sandbox, 5_000)
    connector.create_refund(request(payment, 4_000))
    with pytest.raises(RejectedError) as raised:
        connector.create_refund(request(payment, 1_001))
    assert raised.value.code == "amount_exceeds_refundable"
    connector.create_refund(request(payment, 1_000))
    with pytest.raises(AlreadyDoneError):
        connector.create_refund(request(payment, 1))
    assert len(refund_calls(sandbox)) == 2


def test_shopifys_own_over_refund_refusal_is_rejected(sandbox: Served, connector: ShopifyRefundProvider) -> None:
    # GIVEN a refund made elsewhere between our read of the order and our refundCreate (a userError answers it)
    simulator = sandbox[0]
    payment = order(sandbox, 5_000)
    simulator.add_fault(
        FaultRule(
            method="POST",
            path=r"#refundCreate$",
            status=200,
            body={
                "data": {
                    "refundCreate": {
                        "refund": None,
                        "userErrors": [
                            {
                                "field": ["transactions", "0", "amount"],
                                "message": "Refund amount is greater than the refundable amount of the transaction.",
                            }
                        ],
                    }
                }
            },
        )
    )
    with pytest.raises(RejectedError) as raised:
        connector.create_refund(request(payment, 1_000))
    assert raised.value.code == "amount_exceeds_refundable"


def test_a_refund_in_another_currency_is_refused(sandbox: Served, connector: ShopifyRefundProvider) -> None:
    payment = order(sandbox, 5_000, "USD")
    with pytest.raises(RejectedError) as raised:
        connector.create_refund(request(payment, 1_000, "EUR"))
    assert raised.value.code == "currency_mismatch"


def test_an_unknown_order_is_missing(sandbox: Served, connector: ShopifyRefundProvider) -> None:
    nowhere = PaymentReference(provider=PaymentProvider.SHOPIFY, payment_id="gid://shopify/Order/999999")
    with pytest.raises(NotFound):
        connector.get_payment(nowhere)
    with pytest.raises(RejectedError) as raised:
        connector.create_refund(request(nowhere, 1_000))
    assert raised.value.code == "resource_missing"
    assert connector.find_refund(derive_refund_id("x", "y"), nowhere) is None


def test_a_failed_refund_reads_back_failed_with_shopifys_error_code(
    sandbox: Served, connector: ShopifyRefundProvider
) -> None:
    payment = order(sandbox, refund_status="FAILURE")
    made = connector.create_refund(request(payment, 1_000))
    assert (made.status, made.failure_reason) == (ProviderRefundStatus.FAILED, "GENERIC_ERROR")
    # a failed refund gave nothing back: the whole order is still refundable
    assert connector.get_payment(payment).refunded == Money.of(0, "EUR")


def test_a_refund_of_another_order_is_not_found(sandbox: Served, connector: ShopifyRefundProvider) -> None:
    made = connector.create_refund(request(order(sandbox), 1_000))
    with pytest.raises(NotFound):
        connector.get_refund(made.provider_refund_id, order(sandbox))


def test_a_server_error_on_a_read_is_transient_and_on_the_refund_unknown(
    sandbox: Served, connector: ShopifyRefundProvider
) -> None:
    payment = order(sandbox)
    sandbox[0].inject_fault("get_payment", "server_error")
    with pytest.raises(TransientError):
        connector.get_payment(payment)
    # the order is read first (fine), then refundCreate answers 500: it may have happened
    sandbox[0].add_fault(FaultRule(method="POST", path=r"#refundCreate$", status=500))
    with pytest.raises(OutcomeUnknownError):
        connector.create_refund(request(payment, 1_000))


def test_a_429_with_retry_after_waits_what_shopify_says(sandbox: Served, connector: ShopifyRefundProvider) -> None:
    payment = order(sandbox)
    sandbox[0].add_fault(FaultRule(method="POST", path=r"#order$", status=429, headers={"Retry-After": "7"}))
    with pytest.raises(TransientError) as raised:
        connector.get_payment(payment)
    assert (raised.value.code, raised.value.retry_after_seconds) == ("rate_limited", 7.0)


def test_a_shopify_payments_refunds_arn_is_read_once_the_network_assigned_it(
    sandbox: Served, connector: ShopifyRefundProvider
) -> None:
    # GIVEN a succeeded Shopify Payments refund: its transaction's refundSet has no ARN yet
    payment = order(sandbox)
    made = connector.create_refund(request(payment, 2_500))
    assert made.status is ProviderRefundStatus.SUCCEEDED
    assert connector.get_refund(made.provider_refund_id, payment).acquirer_reference is None
    # WHEN the network assigns it (the control route; Shopify sends no webhook for it)
    number = made.provider_refund_id.rsplit("/", 1)[1]
    answer = requests.post(f"{sandbox[1]}/_control/refunds/{number}/acquirer-reference", timeout=5)
    assert answer.status_code == 200
    (transaction,) = answer.json()["transactions"]["nodes"]
    assigned = transaction["shopifyPaymentsSet"]["refundSet"]["acquirerReferenceNumber"]
    # THEN the refund read again carries it; it is assigned once
    assert connector.get_refund(made.provider_refund_id, payment).acquirer_reference == assigned
    again = requests.post(f"{sandbox[1]}/_control/refunds/{number}/acquirer-reference", timeout=5)
    assert again.status_code == 409


def test_a_refund_through_another_gateway_has_no_shopify_payments_arn(sandbox: Served) -> None:
    connector = provider(sandbox[1], gateways=frozenset({"shopify_payments", "manual"}))
    payment = order(sandbox, gateway="manual")
    made = connector.create_refund(request(payment, 1_000))
    number = made.provider_refund_id.rsplit("/", 1)[1]
    answer = requests.post(f"{sandbox[1]}/_control/refunds/{number}/acquirer-reference", timeout=5)
    assert answer.status_code == 409
    assert connector.get_refund(made.provider_refund_id, payment).acquirer_reference is None
