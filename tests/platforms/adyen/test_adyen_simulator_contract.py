"""The Adyen simulator against Adyen's official specs: its rules are the spec's, its answers and notifications
are valid instances of the spec's schemas, and the validators used here are live (they refuse a wrong body)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from openapi_core.validation.request.exceptions import InvalidRequestBody
from openapi_core.validation.response.exceptions import InvalidData

from local.simulators import adyen as simulator_module
from local.simulators.adyen import DEFAULT_API_KEY, DEFAULT_HMAC_KEY, DEFAULT_MERCHANT_ACCOUNT, AdyenSimulator
from tests.platforms.adyen import contract
from tests.platforms.adyen.receiver import Receiver
from tests.support.servers import serve_wsgi


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[AdyenSimulator, str, Receiver]]:
    endpoint = Receiver()
    simulator = AdyenSimulator(settle_after_seconds=0.0, late_outcome_after_seconds=0.0)
    with serve_wsgi(endpoint) as hook_url, serve_wsgi(simulator) as url:
        simulator.webhooks.configure(f"{hook_url}/webhooks/adyen", DEFAULT_HMAC_KEY)
        yield simulator, url, endpoint


@pytest.fixture
def checkout() -> dict[str, Any]:
    return contract.checkout_document(str(contract.contracts() / contract.CHECKOUT))


def _refund_request(url: str, psp: str, body: Any, headers: dict[str, str] | None = None) -> requests.Request:
    return requests.Request(
        "POST",
        f"{url}/checkout/v71/payments/{psp}/refunds",
        headers={"X-API-Key": DEFAULT_API_KEY, "Content-Type": "application/json", **(headers or {})},
        data=json.dumps(body).encode(),
    )


def _exchange(url: str, psp: str, body: Any, headers: dict[str, str] | None = None) -> tuple[Any, Any]:
    local = _refund_request(url, psp, body, headers)
    answer = requests.Session().send(local.prepare(), timeout=5)
    as_adyen = requests.Request(
        "POST",
        f"{contract.SERVER}/payments/{psp}/refunds",
        headers=local.headers,
        data=local.data,
    )
    return as_adyen, answer


def test_the_simulators_request_rules_are_the_specs(checkout: dict[str, Any]) -> None:
    # GIVEN the spec's PaymentRefundRequest and Idempotency-Key parameter
    schemas = checkout["components"]["schemas"]
    request_schema = schemas["PaymentRefundRequest"]
    # THEN the simulator knows exactly its fields, requires what it requires, and takes its enum and limits
    assert set(request_schema["properties"]) == simulator_module._MODELLED_FIELDS | simulator_module._UNMODELLED_FIELDS
    assert set(request_schema["required"]) <= simulator_module._MODELLED_FIELDS
    assert request_schema["additionalProperties"] is False
    enum = request_schema["properties"]["merchantRefundReason"]["enum"]
    assert tuple(enum) == simulator_module.REFUND_REASONS
    assert "Maximum length: 80" in request_schema["properties"]["reference"]["description"]
    key = checkout["components"]["parameters"]["Idempotency-Key"]["description"]
    assert f"maximum of {simulator_module.MAX_IDEMPOTENCY_KEY_LENGTH} characters" in key
    assert schemas["PaymentRefundResponse"]["properties"]["status"]["enum"] == ["received"]
    assert checkout["components"]["securitySchemes"]["ApiKeyAuth"]["name"] == "X-API-Key"


def test_a_refund_and_its_answer_are_valid_for_the_spec(running: tuple[AdyenSimulator, str, Receiver]) -> None:
    # GIVEN a payment and a refund request with every field refundflow sends
    simulator, url, _ = running
    psp = simulator.create_payment(value=2_500, currency="EUR")["pspReference"]
    body = {
        "merchantAccount": DEFAULT_MERCHANT_ACCOUNT,
        "amount": {"currency": "EUR", "value": 1_000},
        "reference": "rf_0123456789abcdef0123456789abcdef",
        "merchantRefundReason": "CUSTOMER REQUEST",
    }
    # WHEN sent
    request, answer = _exchange(url, psp, body, {"Idempotency-Key": "rf_x:refund"})
    # THEN 201, and request and answer both validate
    assert answer.status_code == 201
    contract.checkout_spec(str(contract.contracts() / contract.CHECKOUT)).validate_request(
        contract.RequestsOpenAPIRequest(request)
    )
    contract.validate_exchange(request, answer)


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (
            {"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": {"currency": "EUR", "value": 1}},
            {"X-API-Key": "x"},
            401,
        ),
        ({"merchantAccount": "Nope", "amount": {"currency": "EUR", "value": 1}}, {}, 403),
        ({"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": {"currency": "EUR", "value": 0}}, {}, 422),
        ({"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": {"currency": "EUR", "value": 1}, "x": 1}, {}, 400),
    ],
    ids=["401", "403", "422", "400"],
)
def test_error_answers_are_service_errors(
    running: tuple[AdyenSimulator, str, Receiver], body: dict[str, Any], headers: dict[str, str], status: int
) -> None:
    simulator, url, _ = running
    psp = simulator.create_payment(value=2_500, currency="EUR")["pspReference"]
    request, answer = _exchange(url, psp, body, headers)
    assert answer.status_code == status
    contract.validate_exchange(request, answer)


def test_every_notification_is_valid_for_its_webhook(running: tuple[AdyenSimulator, str, Receiver]) -> None:
    # GIVEN refunds ending each way the simulator can end them
    simulator, url, endpoint = running
    assert simulator.wait_delivered()  # what earlier tests caused is in before this test starts counting
    endpoint.clear()
    cases = [("succeed", 1), ("fail", 1), ("succeed_then_fail", 2), ("succeed_then_reverse", 2)]
    for behaviour, _count in cases:
        psp = simulator.create_payment(value=2_500, currency="EUR", behaviour=behaviour)["pspReference"]
        request = _refund_request(
            url, psp, {"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": {"currency": "EUR", "value": 100}}
        )
        assert requests.Session().send(request.prepare(), timeout=5).status_code == 201
    later = simulator.create_payment(value=2_500, currency="EUR", captured=False)["pspReference"]
    simulator.capture_payment(later)
    # WHEN every notification has arrived (an AUTHORISATION per payment, a CAPTURE, the refunds' own)
    endpoint.wait_for(len(cases) + 1 + 1 + sum(count for _, count in cases))
    items = endpoint.items()
    # THEN each one is a valid item of its webhook, and every event code was exercised
    codes = {"AUTHORISATION", "CAPTURE", "REFUND", "REFUND_FAILED", "REFUNDED_REVERSED"}
    assert {item["eventCode"] for item in items} == codes
    assert {item["success"] for item in items if item["eventCode"] == "REFUND"} == {"true", "false"}
    assert [error for item in items for error in contract.item_errors(item)] == []


def test_the_validators_are_live(running: tuple[AdyenSimulator, str, Receiver]) -> None:
    # GIVEN a valid request, answer and item, each broken in one place
    simulator, url, _ = running
    psp = simulator.create_payment(value=2_500, currency="EUR")["pspReference"]
    good = {"merchantAccount": DEFAULT_MERCHANT_ACCOUNT, "amount": {"currency": "EUR", "value": 100}}
    request, answer = _exchange(url, psp, good)
    broken_request = requests.Request(
        "POST", request.url, headers=request.headers, data=json.dumps({**good, "colour": "red"}).encode()
    )
    answer._content = json.dumps({**answer.json(), "status": "refunded"}).encode()
    item = {
        "amount": {"currency": "EUR", "value": 100},
        "eventCode": "REFUND",
        "eventDate": "2026-12-06T03:00:00+00:00",
        "merchantAccountCode": DEFAULT_MERCHANT_ACCOUNT,
        "merchantReference": "rf_1",
        "pspReference": "ABCDEFGHIJKLMNOP",
        "success": True,
    }
    # THEN each is refused
    with pytest.raises(InvalidRequestBody, match="colour"):
        contract.checkout_spec(str(contract.contracts() / contract.CHECKOUT)).validate_request(
            contract.RequestsOpenAPIRequest(broken_request)
        )
    with pytest.raises(InvalidData):
        contract.validate_exchange(request, answer)
    assert any("success" in error for error in contract.item_errors(item))
