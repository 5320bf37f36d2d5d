"""Every GraphQL request the connector sends, and every answer the simulator gives, against Braintree's schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from graphql import parse, validate

from local.simulators.braintree import DEFAULT_PRIVATE_KEY, DEFAULT_PUBLIC_KEY, US_BANK_ACCOUNT, BraintreeSimulator
from refundflow.errors import OutcomeUnknownError, RejectedError
from refundflow.ids import derive_refund_id, idempotency_key
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.platforms.braintree import graphql
from refundflow.platforms.braintree.connector import BraintreeRefundProvider
from refundflow.ports import ProviderRefundRequest
from tests.platforms.braintree import contract
from tests.platforms.braintree.conftest import Served


def _request(payment: PaymentReference, minor: int, currency: str = "EUR") -> ProviderRefundRequest:
    refund_id = derive_refund_id("contract", f"{payment.payment_id}-{minor}")
    return ProviderRefundRequest(
        refund_id=refund_id,
        payment=payment,
        amount=Money.of(minor, currency),
        reason=RefundReason.DAMAGED,
        idempotency_key=idempotency_key(refund_id, "refund"),
    )


def _pay(simulator: BraintreeSimulator, minor: int, currency: str = "EUR", **seed: Any) -> PaymentReference:
    seeded = simulator.seed_payment(minor, currency, **seed)
    return PaymentReference(provider=PaymentProvider.BRAINTREE, payment_id=seeded["payment_id"])


@pytest.mark.parametrize("name", sorted(graphql.DOCUMENTS))
def test_every_document_the_connector_sends_is_valid_for_the_schema(name: str) -> None:
    document = graphql.DOCUMENTS[name]
    assert [error.message for error in validate(contract.schema(), parse(document))] == []


def test_every_request_sent_and_every_answer_given_is_the_schemas(
    sandbox: Served, connector: BraintreeRefundProvider
) -> None:
    simulator, _, _ = sandbox
    # GIVEN every path the connector takes: refunds (card and bank), a void, an over-refund, reads, a legacy id
    settled = _pay(simulator, 10_000)
    connector.create_refund(_request(settled, 2_500))
    connector.create_refund(_request(settled, 1_000, "EUR"))
    with pytest.raises(RejectedError):
        connector.create_refund(_request(settled, 9_000))
    yen = _pay(simulator, 5_000, "JPY")
    made = connector.create_refund(_request(yen, 1_234, "JPY"))
    connector.get_refund(made.provider_refund_id, yen)
    bank = _pay(simulator, 4_000, instrument=US_BANK_ACCOUNT)
    pending = connector.create_refund(_request(bank, 4_000))
    connector.get_refund(pending.provider_refund_id, bank)
    connector.find_refund(_request(bank, 4_000).refund_id, bank)
    connector.get_payment(settled)
    unsettled = _pay(simulator, 3_000, settled=False)
    connector.create_refund(_request(unsettled, 3_000))
    legacy = simulator.transaction(_pay(simulator, 2_000).payment_id)["legacyId"]
    connector.get_payment(
        PaymentReference(provider=PaymentProvider.BRAINTREE, payment_id=legacy, locator={"id_type": "legacy"})
    )
    simulator.inject_fault("create_refund", "server_error")
    with pytest.raises(OutcomeUnknownError):
        connector.create_refund(_request(_pay(simulator, 1_000), 500))
    # WHEN each recorded request is replayed against the simulator's answer for it / THEN both are the schema's
    seen = [request for request in simulator.requests_seen if request["path"] == "/graphql"]
    assert len(seen) >= 15
    roots = set()
    for request in seen:
        body = json.loads(request["body"])
        assert contract.request_errors(body) == [], body["query"][:60]
        roots.add(contract.root_field(body))
    assert roots == {"node", "idFromLegacyId", "refundTransaction", "reverseTransaction"}


def test_the_simulators_answers_are_the_schemas(sandbox: Served) -> None:
    simulator, url, _ = sandbox
    settled = _pay(simulator, 10_000)
    unsettled = _pay(simulator, 3_000, settled=False)
    bodies = [
        {
            "query": graphql.REFUND_TRANSACTION,
            "variables": {
                "input": {"transactionId": settled.payment_id, "refund": {"amount": "25.00", "orderId": "rf_x"}}
            },
        },
        {
            "query": graphql.REFUND_TRANSACTION,
            "variables": {"input": {"transactionId": settled.payment_id, "refund": {"amount": "250.00"}}},
        },
        {"query": graphql.REVERSE_TRANSACTION, "variables": {"input": {"transactionId": unsettled.payment_id}}},
        {"query": graphql.TRANSACTION, "variables": {"id": settled.payment_id}},
        {"query": graphql.TRANSACTION, "variables": {"id": unsettled.payment_id}},
        {"query": graphql.TRANSACTION, "variables": {"id": "no-such-id"}},
        {"query": graphql.ID_FROM_LEGACY_ID, "variables": {"legacyId": "abc12345"}},
    ]
    for body in bodies:
        answer = requests.post(
            f"{url}/graphql",
            json=body,
            auth=(DEFAULT_PUBLIC_KEY, DEFAULT_PRIVATE_KEY),
            headers={"Braintree-Version": graphql.API_VERSION},
            timeout=5,
        ).json()
        assert contract.answer_errors(body, answer) == [], answer
