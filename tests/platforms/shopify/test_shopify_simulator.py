"""The Shopify sandbox is as strict as the GraphQL Admin API where the connector depends on it: the access token,
unknown fields and input fields refused with Shopify's error shapes, the @idempotent directive required from
2026-04, and every document the connector sends within the schema the sandbox serves."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from graphql import parse
from graphql.language import OperationDefinitionNode

from local.simulators.shopify import UNAUTHORIZED, ShopifySimulator, undefined_fields
from refundflow.platforms.shopify import graphql as documents
from refundflow.platforms.shopify.returns import RETURN_DOCUMENTS
from tests.platforms.shopify.conftest import API_VERSION, Served


def post(served: Served, query: str, variables: dict[str, Any] | None = None, **headers: str) -> requests.Response:
    simulator, url, _ = served
    sent = {"X-Shopify-Access-Token": simulator.access_token, **headers}
    return requests.post(
        f"{url}/admin/api/{API_VERSION}/graphql.json",
        json={"query": query, "variables": variables or {}},
        headers=sent,
        timeout=5,
    )


@pytest.mark.parametrize("name", sorted({**documents.DOCUMENTS, **RETURN_DOCUMENTS}))
def test_every_document_the_connector_sends_is_within_the_schema(name: str) -> None:
    text = {**documents.DOCUMENTS, **RETURN_DOCUMENTS}[name]
    (operation,) = [item for item in parse(text).definitions if isinstance(item, OperationDefinitionNode)]
    assert operation.name is not None
    assert operation.name.value == name
    root = "Mutation" if operation.operation.value == "mutation" else "QueryRoot"
    assert undefined_fields(operation.selection_set, root) == []


def test_a_wrong_access_token_is_shopifys_401(sandbox: Served) -> None:
    answer = post(sandbox, documents.ORDER, {"id": "gid://shopify/Order/1"}, **{"X-Shopify-Access-Token": "shpat_no"})
    assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED)


def test_an_unknown_field_is_refused_as_undefined(sandbox: Served) -> None:
    answer = post(sandbox, 'query { order(id: "gid://shopify/Order/1") { id secretField } }').json()
    (error,) = answer["errors"]
    assert error["extensions"]["code"] == "undefinedField"
    assert (error["extensions"]["typeName"], error["extensions"]["fieldName"]) == ("Order", "secretField")
    assert "data" not in answer


def test_an_unknown_input_field_is_refused_naming_it(sandbox: Served) -> None:
    simulator = sandbox[0]
    order_id = simulator.seed_payment(1_000, "EUR")["payment_id"]
    variables = {"input": {"orderId": order_id, "refundEverything": True}, "idempotencyKey": "k-1"}
    answer = post(sandbox, documents.REFUND_CREATE, variables).json()
    (error,) = answer["errors"]
    assert error["extensions"]["problems"][0]["path"] == ["refundEverything"]
    assert simulator.refunds() == []


def test_refund_create_without_the_idempotent_directive_is_refused_from_2026_04(sandbox: Served) -> None:
    simulator = sandbox[0]
    order_id = simulator.seed_payment(1_000, "EUR")["payment_id"]
    without = documents.REFUND_CREATE.replace(" @idempotent(key: $idempotencyKey)", "").replace(
        ", $idempotencyKey: String!", ""
    )
    answer = post(sandbox, without, {"input": {"orderId": order_id, "transactions": []}}).json()
    assert "@idempotent" in answer["errors"][0]["message"]
    assert simulator.refunds() == []


def test_a_throttled_answer_carries_the_bucket() -> None:
    body = ShopifySimulator.throttled_body(requested=50, available=10, restore_rate=20.0)
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 10


def test_ticket_controls_are_served_over_http(sandbox: Served) -> None:
    simulator, url, _ = sandbox
    seeded = requests.post(
        f"{url}/_control/tickets", json={"payment_provider": "shopify", "amount": "10.00"}, timeout=5
    ).json()
    viewed = requests.post(
        f"{url}/_control/tickets/{seeded['id']}/agent-action", json={"intent": "withdraw"}, timeout=5
    ).json()
    assert viewed["ticket"]["status"] == "DECLINED"
    assert simulator.ticket_view(seeded["id"])["ticket"]["status"] == "DECLINED"
