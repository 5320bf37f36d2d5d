"""The Braintree simulator on its own: auth and version header, Braintree's refund and void rules and codes,
answers cut to the selection set, faults on one GraphQL operation only, and webhooks the official scheme signs."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from local.simulators.braintree import DEFAULT_PRIVATE_KEY, DEFAULT_PUBLIC_KEY
from refundflow.platforms.braintree import graphql, webhooks
from tests.platforms.braintree.conftest import Served

AUTH = (DEFAULT_PUBLIC_KEY, DEFAULT_PRIVATE_KEY)
VERSION = {"Braintree-Version": graphql.API_VERSION}


def call(url: str, query: str, variables: dict[str, Any], **options: Any) -> requests.Response:
    kwargs: dict[str, Any] = {"auth": AUTH, "headers": VERSION, **options}
    return requests.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=5, **kwargs)


def refund(url: str, transaction_id: str, amount: str | None, **more: Any) -> dict[str, Any]:
    details = {"amount": amount} if amount is not None else {}
    answer = call(
        url, graphql.REFUND_TRANSACTION, {"input": {"transactionId": transaction_id, "refund": details, **more}}
    )
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def codes(body: dict[str, Any]) -> list[str | None]:
    return [error["extensions"].get("legacyCode") for error in body.get("errors", [])]


def test_wrong_credentials_are_401_and_a_missing_version_is_refused(sandbox: Served) -> None:
    _, url, _ = sandbox
    wrong = call(url, graphql.TRANSACTION, {"id": "x"}, auth=(DEFAULT_PUBLIC_KEY, "nope"))
    assert wrong.status_code == 401
    assert wrong.json()["errors"][0]["extensions"]["errorClass"] == "AUTHENTICATION"
    unversioned = call(url, graphql.TRANSACTION, {"id": "x"}, headers={})
    assert unversioned.status_code == 400


def test_braintrees_refund_rules_and_codes(sandbox: Served) -> None:
    simulator, url, _ = sandbox
    settled = simulator.seed_payment(10_000, "EUR", order_id="ORD-9")["payment_id"]
    unsettled = simulator.seed_payment(10_000, "EUR", settled=False)["payment_id"]
    assert codes(refund(url, unsettled, "10.00")) == ["91506"]
    assert codes(refund(url, settled, "100.01")) == ["91521"]
    assert codes(refund(url, settled, "10.001")) == ["81503"]
    assert codes(refund(url, settled, "0.00")) == ["81531"]
    made = refund(url, settled, "40.00")["data"]["refundTransaction"]["refund"]
    assert (made["orderId"], made["status"]) == ("ORD-9", "SUBMITTED_FOR_SETTLEMENT")  # the transaction's order id
    rest = refund(url, settled, None)["data"]["refundTransaction"]["refund"]  # no amount: what is left
    assert rest["amount"] == {"value": "60.00", "currencyCode": "EUR"}
    assert codes(refund(url, settled, "1.00")) == ["91512"]
    unknown_field = call(url, graphql.REFUND_TRANSACTION, {"input": {"transactionId": settled, "amount": "1.00"}})
    assert unknown_field.json()["errors"][0]["extensions"]["errorClass"] == "VALIDATION"


def test_a_reversal_voids_an_unsettled_transaction_and_refunds_a_settled_one_whole(sandbox: Served) -> None:
    simulator, url, _ = sandbox
    unsettled = simulator.seed_payment(3_000, "JPY", settled=False)["payment_id"]
    settled = simulator.seed_payment(3_000, "JPY")["payment_id"]
    voided = call(url, graphql.REVERSE_TRANSACTION, {"input": {"transactionId": unsettled}}).json()
    assert voided["data"]["reverseTransaction"]["reversal"]["__typename"] == "Transaction"
    assert voided["data"]["reverseTransaction"]["reversal"]["status"] == "VOIDED"
    again = call(url, graphql.REVERSE_TRANSACTION, {"input": {"transactionId": unsettled}}).json()
    assert codes(again) == ["91504"]
    reversed_ = call(url, graphql.REVERSE_TRANSACTION, {"input": {"transactionId": settled}}).json()
    reversal = reversed_["data"]["reverseTransaction"]["reversal"]
    assert (reversal["__typename"], reversal["amount"]) == ("Refund", {"value": "3000", "currencyCode": "JPY"})


def test_answers_are_cut_to_the_selection_with_aliases_and_fragments(sandbox: Served) -> None:
    simulator, url, _ = sandbox
    payment_id = simulator.seed_payment(1_000, "EUR")["payment_id"]
    query = (
        "query($id: ID!) { it: node(id: $id) { __typename ... on Refund { orderId } ... on Transaction { status } } }"
    )
    assert call(url, query, {"id": payment_id}).json()["data"] == {
        "it": {"__typename": "Transaction", "status": "SETTLED"}
    }
    missing = call(url, graphql.TRANSACTION, {"id": "nope"}).json()
    assert missing["data"] == {"node": None}
    assert missing["errors"][0]["extensions"]["errorClass"] == "NOT_FOUND"


def test_a_fault_names_one_operation_of_the_single_endpoint(sandbox: Served) -> None:
    simulator, url, _ = sandbox
    payment_id = simulator.seed_payment(1_000, "EUR")["payment_id"]
    simulator.inject_fault("create_refund", "transient")
    assert call(url, graphql.TRANSACTION, {"id": payment_id}).status_code == 200  # a read is not the mutation
    faulted = call(url, graphql.REFUND_TRANSACTION, {"input": {"transactionId": payment_id}})
    assert faulted.status_code == 429
    assert faulted.json()["errors"][0]["extensions"]["errorClass"] == "RESOURCE_LIMIT"
    assert simulator.refunds() == []
    with pytest.raises(ValueError, match="unknown operation"):
        simulator.inject_fault("capture", "transient")


def test_settling_a_refund_sends_a_signed_form_delivery(sandbox: Served) -> None:
    simulator, url, receiver = sandbox
    payment_id = simulator.seed_payment(2_000, "EUR", instrument="us_bank_account")["payment_id"]
    made = refund(url, payment_id, "20.00", clientMutationId="m1")["data"]["refundTransaction"]["refund"]
    simulator.settle_refund(made["legacyId"], False)
    receiver.wait_until(lambda deliveries: len(deliveries) >= 1)
    headers, body = receiver.deliveries[0]
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(body.decode())
    assert set(form) == {"bt_signature", "bt_payload"}
    payload = webhooks.verify(body, webhooks.signing_keys(simulator.local_secrets()["verification"]))
    told = webhooks.notification(payload)
    assert told.kind == "transaction_settlement_declined"
    assert told.transaction is not None
    assert (told.transaction.id, told.transaction.status) == (made["legacyId"], "settlement_declined")
