"""Every request PayPalRefundProvider sends, checked against PayPal's official Payments v2 spec.

The connector is driven against the simulator through the refund scenarios (full, partial, pending, refused,
look-ups of refunds and payments); the simulator records each request, which is rebuilt with PayPal's sandbox
URL and validated by openapi-core against ``paypal-payments-v2.json`` (path, headers, body). The spec allows any
extra property, so the refund body is also held to exactly the fields refundflow means to send. Outside that spec
and checked by hand: the OAuth token request (PayPal's documented form) and the v1 sale refund body (the v1
``refund_request`` fields), and the order read (Orders v2, a GET without a body).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from local.simulators.paypal import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, MANUAL, PayPalSimulator
from refundflow.connectors.http import HttpClient
from refundflow.errors import AlreadyDoneError, RejectedError
from refundflow.models import PaymentProvider, PaymentReference, RefundReason
from refundflow.money import Money
from refundflow.platforms.paypal.connector import PayPalRefundProvider
from refundflow.ports import ProviderRefundRequest
from tests.platforms.paypal import contract
from tests.support.servers import serve_wsgi

pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[PayPalSimulator, str]]:
    contract.contracts()
    simulator = PayPalSimulator(settle_after_seconds=None)
    with serve_wsgi(simulator) as url:
        yield simulator, url


def test_every_request_the_connector_sends_matches_paypals_spec(server: tuple[PayPalSimulator, str]) -> None:
    simulator, url = server
    simulator.requests_seen.clear()
    provider = PayPalRefundProvider(
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        http=HttpClient(platform="paypal", base_url=url, timeout=(2.0, 5.0)),
    )

    def ask(seeded: dict[str, object], minor: int, currency: str, refund_id: str) -> object:
        payment = PaymentReference(
            provider=PaymentProvider.PAYPAL,
            payment_id=str(seeded["payment_id"]),
            locator=seeded["locator"],  # type: ignore[arg-type]
        )
        return provider.create_refund(
            ProviderRefundRequest(
                refund_id=refund_id,
                payment=payment,
                amount=Money.of(minor, currency),
                reason=RefundReason.CHANGED_MIND,
                idempotency_key=f"{refund_id}:refund",
            )
        )

    # GIVEN the scenarios: partial, full, pending, over-refund, already refunded, JPY, a v1 sale
    capture = simulator.seed_payment(10_000, "EUR")
    pending = simulator.seed_payment(3_000, "USD", behaviour=MANUAL)
    yen = simulator.seed_payment(5_000, "JPY")
    sale = simulator.seed_payment(2_000, "USD", kind="sale")
    made = [ask(capture, 2_550, "EUR", "rf_p1"), ask(pending, 3_000, "USD", "rf_p2"), ask(yen, 1_200, "JPY", "rf_p3")]
    with pytest.raises(RejectedError):
        ask(capture, 9_000, "EUR", "rf_p4")
    made.append(ask(capture, 7_450, "EUR", "rf_p5"))
    with pytest.raises(AlreadyDoneError):
        ask(capture, 1, "EUR", "rf_p6")
    made.append(ask(sale, 700, "USD", "rf_p7"))
    for seeded in (capture, pending, yen, sale):
        reference = PaymentReference(
            provider=PaymentProvider.PAYPAL, payment_id=str(seeded["payment_id"]), locator=seeded["locator"]
        )
        provider.get_payment(reference)
    for refund, seeded in zip(made, (capture, pending, yen, capture, sale), strict=True):
        reference = PaymentReference(
            provider=PaymentProvider.PAYPAL, payment_id=str(seeded["payment_id"]), locator=seeded["locator"]
        )
        provider.get_refund(refund.provider_refund_id, reference)  # type: ignore[attr-defined]
    # WHEN each request is checked
    seen = simulator.requests_seen
    v2 = [request for request in seen if contract.is_v2(request["path"])]
    assert {request["method"] for request in v2} == {"GET", "POST"}
    for request in v2:
        contract.validate_request(request)
        assert request["headers"]["Authorization"].startswith("Bearer A21AA")
    # THEN every v2 refund body has exactly our fields, a request id and asks for the whole refund
    refunds = [request for request in v2 if request["method"] == "POST"]
    assert len(refunds) == 6
    for request in refunds:
        assert set(json.loads(request["body"])) == {"amount", "custom_id"}
        assert request["headers"]["Paypal-Request-Id"].endswith(":refund")
        assert request["headers"]["Prefer"] == "return=representation"
        assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(refunds[2]["body"])["amount"] == {"currency_code": "JPY", "value": "1200"}
    # AND outside the spec: the token form, the v1 refund body, the order read
    tokens = [request for request in seen if request["path"] == "/v1/oauth2/token"]
    assert [request["body"] for request in tokens] == ["grant_type=client_credentials"]
    assert tokens[0]["headers"]["Authorization"].startswith("Basic ")
    v1 = [
        request for request in seen if request["path"].startswith("/v1/payments/sale/") and request["method"] == "POST"
    ]
    assert [json.loads(request["body"]) for request in v1] == [
        {"amount": {"total": "7.00", "currency": "USD"}, "invoice_number": "rf_p7"}
    ]
    orders = [request for request in seen if request["path"].startswith("/v2/checkout/orders/")]
    assert orders
    assert all(request["method"] == "GET" and not request["body"] for request in orders)
