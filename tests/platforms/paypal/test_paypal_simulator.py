"""The PayPal simulator's own strictness, spoken to over plain HTTP the way PayPal is."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.simulators.paypal import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    INSUFFICIENT_FUNDS,
    MANUAL,
    PENDING_THEN_FAIL,
    PayPalSimulator,
    to_value,
)
from tests.platforms.paypal.receiver import Receiver
from tests.support.servers import serve_wsgi

OTHER_CLIENT = "AZotherRestApp"
OTHER_SECRET = "EKotherSecret"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    endpoint = Receiver()
    with serve_wsgi(endpoint) as url:
        yield endpoint, url


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def server(receiver: tuple[Receiver, str], clock: Clock) -> Iterator[tuple[PayPalSimulator, str]]:
    simulator = PayPalSimulator(
        {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET, OTHER_CLIENT: OTHER_SECRET},
        settle_after_seconds=None,
        now=clock,
    )
    with serve_wsgi(simulator) as url:
        yield simulator, url


@pytest.fixture
def simulator(server: tuple[PayPalSimulator, str], receiver: tuple[Receiver, str]) -> PayPalSimulator:
    simulator, _ = server
    simulator.webhooks.wait_idle()
    requests.post(f"{server[1]}/_control/reset", timeout=5).raise_for_status()
    simulator.processing_delay_seconds = 0.0
    receiver[0].clear()
    simulator.webhooks.configure(f"{receiver[1]}/hook", "WH1D")
    return simulator


@pytest.fixture
def url(server: tuple[PayPalSimulator, str], simulator: PayPalSimulator) -> str:
    return server[1]


def token(url: str, client: str = DEFAULT_CLIENT_ID, secret: str = DEFAULT_CLIENT_SECRET) -> str:
    answer = requests.post(
        f"{url}/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client, secret), timeout=5
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def refund(
    url: str,
    capture_id: str,
    body: dict[str, Any] | None,
    *,
    key: str | None = None,
    bearer: str | None = None,
    prefer: str = "return=representation",
    path: str = "/v2/payments/captures/{}/refund",
) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer or token(url)}", "Prefer": prefer}
    if key is not None:
        headers["PayPal-Request-Id"] = key
    return requests.post(f"{url}{path.format(capture_id)}", json=body, headers=headers, timeout=5)


def get(url: str, path: str) -> requests.Response:
    return requests.get(f"{url}{path}", headers={"Authorization": f"Bearer {token(url)}"}, timeout=5)


def issue(answer: requests.Response) -> str:
    return str(answer.json()["details"][0]["issue"])


# ---------------------------------------------------------------- OAuth


def test_token_needs_the_apps_credentials_as_basic_auth(url: str) -> None:
    # GIVEN a wrong secret / WHEN a token is asked for / THEN PayPal's OAuth error, no token
    answer = requests.post(
        f"{url}/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=(DEFAULT_CLIENT_ID, "x"), timeout=5
    )
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_client", "error_description": "Client Authentication failed"}


def test_token_needs_the_client_credentials_grant(url: str) -> None:
    answer = requests.post(f"{url}/v1/oauth2/token", auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET), timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"] == "unsupported_grant_type"


def test_token_answer_has_paypals_fields(url: str) -> None:
    answer = requests.post(
        f"{url}/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        timeout=5,
    ).json()
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 32_400
    assert set(answer) == {"scope", "access_token", "token_type", "app_id", "expires_in", "nonce"}


def test_api_without_or_with_unknown_token_is_401(url: str, simulator: PayPalSimulator) -> None:
    capture = simulator.seed_payment(1_000, "USD")["payment_id"]
    missing = requests.get(f"{url}/v2/payments/captures/{capture}", timeout=5)
    assert missing.status_code == 401
    assert missing.json()["name"] == "AUTHENTICATION_FAILURE"
    unknown = requests.get(
        f"{url}/v2/payments/captures/{capture}", headers={"Authorization": "Bearer A21AAnope"}, timeout=5
    )
    assert unknown.status_code == 401
    assert unknown.json() == {"error": "invalid_token", "error_description": "Token signature verification failed"}


def test_expired_token_is_refused_and_a_new_one_works(url: str, simulator: PayPalSimulator, clock: Clock) -> None:
    # GIVEN a token, then the clock past its expires_in
    capture = simulator.seed_payment(1_000, "USD")["payment_id"]
    old = token(url)
    clock.now += 32_401
    try:
        # WHEN it is used / THEN 401 "not found in cache"; a fresh token reads the capture
        answer = requests.get(
            f"{url}/v2/payments/captures/{capture}", headers={"Authorization": f"Bearer {old}"}, timeout=5
        )
        assert answer.status_code == 401
        assert answer.json()["error_description"] == "Access Token not found in cache"
        assert get(url, f"/v2/payments/captures/{capture}").status_code == 200
    finally:
        clock.now -= 32_401


# ---------------------------------------------------------------- v2 refunds


def test_empty_body_refunds_the_rest_and_then_the_capture_is_fully_refunded(
    url: str, simulator: PayPalSimulator
) -> None:
    # GIVEN a 25.00 EUR capture with 10.00 refunded
    capture = simulator.seed_payment(2_500, "EUR")["payment_id"]
    first = refund(url, capture, {"amount": {"currency_code": "EUR", "value": "10.00"}})
    assert first.status_code == 201
    assert get(url, f"/v2/payments/captures/{capture}").json()["status"] == "PARTIALLY_REFUNDED"
    # WHEN an empty body is sent / THEN the remaining 15.00 is refunded and the capture is REFUNDED
    rest = refund(url, capture, None)
    assert rest.status_code == 201
    assert rest.json()["amount"] == {"currency_code": "EUR", "value": "15.00"}
    assert rest.json()["seller_payable_breakdown"]["total_refunded_amount"]["value"] == "25.00"
    assert get(url, f"/v2/payments/captures/{capture}").json()["status"] == "REFUNDED"
    # AND another refund is the spec's CAPTURE_FULLY_REFUNDED
    again = refund(url, capture, {"amount": {"currency_code": "EUR", "value": "0.01"}})
    assert again.status_code == 422
    assert again.json()["name"] == "UNPROCESSABLE_ENTITY"
    assert again.json()["details"][0] == {
        "issue": "CAPTURE_FULLY_REFUNDED",
        "description": "The capture has already been fully refunded",
    }
    assert again.json()["debug_id"]


def test_over_refund_is_refund_amount_exceeded(url: str, simulator: PayPalSimulator) -> None:
    capture = simulator.seed_payment(1_000, "USD")["payment_id"]
    answer = refund(url, capture, {"amount": {"currency_code": "USD", "value": "10.01"}})
    assert answer.status_code == 422
    assert issue(answer) == "REFUND_AMOUNT_EXCEEDED"
    assert simulator.refunds() == []


def test_minimal_answer_is_the_default(url: str, simulator: PayPalSimulator) -> None:
    capture = simulator.seed_payment(1_000, "USD")["payment_id"]
    answer = refund(url, capture, {"amount": {"currency_code": "USD", "value": "1.00"}}, prefer="return=minimal")
    assert set(answer.json()) == {"id", "status", "links"}
    full = get(url, f"/v2/payments/refunds/{answer.json()['id']}").json()
    assert full["amount"] == {"currency_code": "USD", "value": "1.00"}
    assert {"rel": "up", "method": "GET"}.items() <= full["links"][1].items()


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({"amount": {"currency_code": "USD", "value": "1.00"}, "reason": "x"}, 400, "INVALID_PARAMETER_SYNTAX"),
        ({"amount": {"value": "1.00"}}, 400, "MISSING_REQUIRED_PARAMETER"),
        ({"amount": {"currency_code": "USD", "value": 1}}, 400, "INVALID_PARAMETER_SYNTAX"),
        ({"amount": {"currency_code": "USD", "value": "1,00"}}, 400, "INVALID_PARAMETER_SYNTAX"),
        ({"amount": {"currency_code": "USD", "value": "1.00"}, "custom_id": "x" * 128}, 400, "INVALID_STRING_LENGTH"),
        ({"amount": {"currency_code": "USD", "value": "0.00"}}, 422, "CANNOT_BE_ZERO_OR_NEGATIVE"),
        ({"amount": {"currency_code": "USD", "value": "1.001"}}, 422, "DECIMAL_PRECISION"),
        ({"amount": {"currency_code": "XTS", "value": "1.00"}}, 422, "INVALID_CURRENCY_CODE"),
        ({"amount": {"currency_code": "EUR", "value": "1.00"}}, 422, "REFUND_CAPTURE_CURRENCY_MISMATCH"),
        (
            {"payment_instruction": {"platform_fees": [{"amount": {"currency_code": "USD", "value": "1.00"}}]}},
            422,
            "PLATFORM_FEE_NOT_ENABLED",
        ),
    ],
    ids=[
        "undefined-field",
        "missing-currency",
        "number-value",
        "comma-value",
        "long-custom-id",
        "zero",
        "three-decimals",
        "unknown-currency",
        "other-currency",
        "platform-fees",
    ],
)
def test_refund_body_is_checked_like_the_spec_says(
    url: str, simulator: PayPalSimulator, body: dict[str, Any], status: int, expected: str
) -> None:
    capture = simulator.seed_payment(1_000, "USD")["payment_id"]
    answer = refund(url, capture, body)
    assert (answer.status_code, issue(answer)) == (status, expected)
    assert simulator.refunds() == []


@pytest.mark.parametrize(("currency", "value"), [("JPY", "100.00"), ("HUF", "10.50"), ("TWD", "1.5")])
def test_currencies_without_decimals_at_paypal_refuse_decimals(
    url: str, simulator: PayPalSimulator, currency: str, value: str
) -> None:
    capture = simulator.seed_payment(1_000_000, currency)["payment_id"]
    answer = refund(url, capture, {"amount": {"currency_code": currency, "value": value}})
    assert (answer.status_code, issue(answer)) == (422, "DECIMALS_NOT_SUPPORTED")
    whole = refund(url, capture, {"amount": {"currency_code": currency, "value": value.split(".")[0]}})
    assert whole.status_code == 201


def test_seed_amounts_are_iso_minor_units_in_paypals_decimals() -> None:
    assert to_value(123_400, "HUF") == "1234"
    assert to_value(1_234, "JPY") == "1234"
    assert to_value(1_999, "EUR") == "19.99"
    with pytest.raises(ValueError, match="decimals PayPal does not take"):
        to_value(123_450, "HUF")
    with pytest.raises(ValueError, match="not a PayPal currency"):
        to_value(100, "KWD")


def test_pending_capture_and_insufficient_funds_are_refused(url: str, simulator: PayPalSimulator) -> None:
    pending = simulator.seed_payment(1_000, "USD", settled=False)["payment_id"]
    assert issue(refund(url, pending, None)) == "PENDING_CAPTURE"
    poor = simulator.seed_payment(1_000, "USD", behaviour=INSUFFICIENT_FUNDS)["payment_id"]
    assert issue(refund(url, poor, None)) == "REFUND_FAILED_INSUFFICIENT_FUNDS"


def test_unknown_capture_and_refund_are_404_invalid_resource_id(url: str) -> None:
    answer = refund(url, "NOSUCHCAPTURE", None)
    assert answer.status_code == 404
    assert answer.json()["name"] == "RESOURCE_NOT_FOUND"
    assert issue(answer) == "INVALID_RESOURCE_ID"
    assert get(url, "/v2/payments/refunds/NOSUCHREFUND").status_code == 404


def test_invoice_id_used_by_an_earlier_refund_is_a_duplicate(url: str, simulator: PayPalSimulator) -> None:
    capture = simulator.seed_payment(1_000, "USD")["payment_id"]
    body = {"amount": {"currency_code": "USD", "value": "1.00"}, "invoice_id": "INV-1"}
    assert refund(url, capture, body).status_code == 201
    assert issue(refund(url, capture, body)) == "DUPLICATE_INVOICE_ID"


# ---------------------------------------------------------------- PayPal-Request-Id


def test_same_request_id_answers_the_same_refund_as_it_is_now(url: str, simulator: PayPalSimulator) -> None:
    # GIVEN a pending refund made under a request id
    capture = simulator.seed_payment(1_000, "USD", behaviour=MANUAL)["payment_id"]
    body = {"amount": {"currency_code": "USD", "value": "4.00"}, "custom_id": "rf_1"}
    first = refund(url, capture, body, key="key-1")
    assert (first.status_code, first.json()["status"]) == (201, "PENDING")
    simulator.settle_refund(first.json()["id"], succeeded=True)
    # WHEN the same request is sent again / THEN the same refund, now COMPLETED, and nothing new
    second = refund(url, capture, body, key="key-1")
    assert second.status_code == 201
    assert (second.json()["id"], second.json()["status"]) == (first.json()["id"], "COMPLETED")
    assert len(simulator.refunds()) == 1


def test_request_ids_are_scoped_to_the_rest_app(url: str, simulator: PayPalSimulator) -> None:
    capture = simulator.seed_payment(1_000, "USD")["payment_id"]
    body = {"amount": {"currency_code": "USD", "value": "1.00"}}
    mine = refund(url, capture, body, key="shared")
    theirs = refund(url, capture, body, key="shared", bearer=token(url, OTHER_CLIENT, OTHER_SECRET))
    assert mine.json()["id"] != theirs.json()["id"]
    assert len(simulator.refunds()) == 2


def test_a_refused_request_keeps_no_request_id(url: str, simulator: PayPalSimulator) -> None:
    capture = simulator.seed_payment(1_000, "USD")["payment_id"]
    refused = refund(url, capture, {"amount": {"currency_code": "USD", "value": "11.00"}}, key="k")
    assert refused.status_code == 422
    made = refund(url, capture, {"amount": {"currency_code": "USD", "value": "1.00"}}, key="k")
    assert made.status_code == 201


def test_same_request_id_while_the_first_is_in_flight_is_409(url: str, simulator: PayPalSimulator) -> None:
    # GIVEN a first request holding its key (the simulator keeps it in flight after the work)
    capture = simulator.seed_payment(1_000, "USD")["payment_id"]
    simulator.processing_delay_seconds = 1.0
    bearer = token(url)
    body = {"amount": {"currency_code": "USD", "value": "1.00"}}
    answers: list[requests.Response] = []
    first = threading.Thread(target=lambda: answers.append(refund(url, capture, body, key="k", bearer=bearer)))
    first.start()
    deadline = time.monotonic() + 10
    while not simulator.refunds() and time.monotonic() < deadline:
        time.sleep(0.01)
    # WHEN the same key comes again / THEN the spec's 409 PREVIOUS_REQUEST_IN_PROGRESS
    second = refund(url, capture, body, key="k", bearer=bearer)
    first.join(10)
    assert (second.status_code, issue(second)) == (409, "PREVIOUS_REQUEST_IN_PROGRESS")
    assert second.json()["name"] == "RESOURCE_CONFLICT"
    assert answers[0].status_code == 201
    assert len(simulator.refunds()) == 1


def test_timeout_after_commit_then_retry_with_the_key_gets_the_refund(url: str, simulator: PayPalSimulator) -> None:
    # GIVEN the refund call times out after PayPal made the refund
    capture = simulator.seed_payment(1_000, "USD")["payment_id"]
    simulator.inject_fault("create_refund", "timeout_after_commit")
    body = {"amount": {"currency_code": "USD", "value": "2.00"}}
    bearer = token(url)
    with pytest.raises(requests.ConnectionError):
        requests.post(
            f"{url}/v2/payments/captures/{capture}/refund",
            json=body,
            headers={"Authorization": f"Bearer {bearer}", "PayPal-Request-Id": "k-timeout"},
            timeout=(5, 30),
        )
    # WHEN it is retried with the same PayPal-Request-Id / THEN the one refund comes back
    retry = refund(url, capture, body, key="k-timeout", bearer=bearer)
    assert retry.status_code == 201
    assert [item["id"] for item in simulator.refunds()] == [retry.json()["id"]]


@pytest.mark.parametrize(
    ("fault", "status", "name"),
    [("transient", 429, "RATE_LIMIT_REACHED"), ("server_error", 500, "INTERNAL_SERVER_ERROR")],
)
def test_injected_faults_answer_in_paypals_shape_and_do_nothing(
    url: str, simulator: PayPalSimulator, fault: str, status: int, name: str
) -> None:
    capture = simulator.seed_payment(1_000, "USD")["payment_id"]
    simulator.inject_fault("create_refund", fault)
    answer = refund(url, capture, None, key="k")
    assert (answer.status_code, answer.json()["name"]) == (status, name)
    assert simulator.refunds() == []
    assert refund(url, capture, None, key="k").status_code == 201


# ---------------------------------------------------------------- async outcomes and webhooks


def test_pending_refund_that_fails_gives_its_amount_back(url: str, simulator: PayPalSimulator) -> None:
    capture = simulator.seed_payment(1_000, "USD", behaviour=PENDING_THEN_FAIL)["payment_id"]
    made = refund(url, capture, None).json()
    assert (made["status"], made["status_details"]) == ("PENDING", {"reason": "ECHECK"})
    assert get(url, f"/v2/payments/captures/{capture}").json()["status"] == "REFUNDED"
    simulator.settle_refund(made["id"], succeeded=False)
    assert get(url, f"/v2/payments/refunds/{made['id']}").json()["status"] == "FAILED"
    assert get(url, f"/v2/payments/captures/{capture}").json()["status"] == "COMPLETED"
    assert refund(url, capture, None).status_code == 201


def test_pending_refunds_settle_on_their_own_after_the_delay(url: str, simulator: PayPalSimulator) -> None:
    simulator.settle_after_seconds = 0.05
    try:
        capture = simulator.seed_payment(1_000, "USD", behaviour=PENDING_THEN_FAIL)["payment_id"]
        made = refund(url, capture, None).json()
        deadline = time.monotonic() + 30
        while get(url, f"/v2/payments/refunds/{made['id']}").json()["status"] == "PENDING":
            assert time.monotonic() < deadline, "the refund never settled"
            time.sleep(0.02)
        assert get(url, f"/v2/payments/refunds/{made['id']}").json()["status"] == "FAILED"
    finally:
        simulator.settle_after_seconds = None


def test_completed_refund_sends_a_signed_capture_refunded_event(
    url: str, simulator: PayPalSimulator, receiver: tuple[Receiver, str]
) -> None:
    capture = simulator.seed_payment(1_000, "USD", behaviour=MANUAL)["payment_id"]
    made = refund(url, capture, {"amount": {"currency_code": "USD", "value": "3.00"}, "custom_id": "rf_x"}).json()
    simulator.settle_refund(made["id"], succeeded=True)
    delivery = receiver[0].wait_for(1)[0]
    event = delivery.event()
    assert (event["event_type"], event["resource_type"], event["resource_version"]) == (
        "PAYMENT.CAPTURE.REFUNDED",
        "refund",
        "2.0",
    )
    assert (event["resource"]["id"], event["resource"]["custom_id"]) == (made["id"], "rf_x")
    assert delivery.headers["Paypal-Auth-Algo"] == "SHA256withRSA"
    cert = requests.get(delivery.headers["Paypal-Cert-Url"], timeout=5)
    assert cert.text.startswith("-----BEGIN CERTIFICATE-----")


def test_control_outcome_refuses_a_refund_that_is_not_pending(url: str, simulator: PayPalSimulator) -> None:
    capture = simulator.seed_payment(1_000, "USD")["payment_id"]
    made = refund(url, capture, None).json()
    answer = requests.post(f"{url}/_control/refunds/{made['id']}/outcome", json={"succeeded": False}, timeout=5)
    assert answer.status_code == 409


# ---------------------------------------------------------------- v1 sales


def test_sale_refunds_partial_then_over_and_already_refunded(url: str, simulator: PayPalSimulator) -> None:
    # GIVEN a 20.00 USD sale
    seeded = simulator.seed_payment(2_000, "USD", kind="sale")
    assert seeded["locator"] == {"kind": "sale"}
    sale = seeded["payment_id"]
    path = "/v1/payments/sale/{}/refund"
    # WHEN 5.00 is refunded / THEN a completed v1 refund naming the sale, echoing invoice_number
    body = {"amount": {"total": "5.00", "currency": "USD"}, "invoice_number": "rf_v1"}
    first = refund(url, sale, body, path=path, key="v1-key")
    assert first.status_code == 201
    assert (first.json()["state"], first.json()["sale_id"], first.json()["invoice_number"]) == (
        "completed",
        sale,
        "rf_v1",
    )
    assert get(url, f"/v1/payments/sale/{sale}").json()["state"] == "partially_refunded"
    assert refund(url, sale, body, path=path, key="v1-key").json()["id"] == first.json()["id"]
    # AND more than the rest is REFUND_EXCEEDED_TRANSACTION_AMOUNT, the rest then TRANSACTION_ALREADY_REFUNDED
    over = refund(url, sale, {"amount": {"total": "15.01", "currency": "USD"}}, path=path)
    assert (over.status_code, over.json()["name"]) == (400, "REFUND_EXCEEDED_TRANSACTION_AMOUNT")
    assert refund(url, sale, {}, path=path).json()["amount"] == {"total": "15.00", "currency": "USD"}
    done = refund(url, sale, {}, path=path)
    assert (done.status_code, done.json()["name"]) == (400, "TRANSACTION_ALREADY_REFUNDED")
    assert get(url, f"/v1/payments/refund/{first.json()['id']}").json()["amount"]["total"] == "5.00"
    assert get(url, f"/v2/payments/refunds/{first.json()['id']}").status_code == 404


def test_sale_refund_fields_outside_the_v1_request_are_refused(url: str, simulator: PayPalSimulator) -> None:
    sale = simulator.seed_payment(2_000, "USD", kind="sale")["payment_id"]
    answer = refund(
        url, sale, {"amount": {"currency_code": "USD", "value": "1.00"}}, path="/v1/payments/sale/{}/refund"
    )
    assert (answer.status_code, answer.json()["name"]) == (400, "VALIDATION_ERROR")
    assert answer.json()["details"][0]["field"] == "amount"


def test_the_local_stack_layout_gives_webhooks_and_the_certificate_url() -> None:
    # GIVEN a simulator the local stack built without arguments
    simulator = PayPalSimulator()
    # WHEN it is told where the stack wants webhooks
    simulator.send_webhooks_to("http://127.0.0.1:4750/webhooks/paypal")
    # THEN it signs for its webhook id, and intake's secret allows its certificate URL (served under /_sandbox)
    assert simulator.webhooks.url == "http://127.0.0.1:4750/webhooks/paypal"
    verification = simulator.local_secrets()["verification"]
    assert verification["webhook_ids"] == [simulator.webhook_id]
    assert verification["cert_url_prefixes"] == ["http://127.0.0.1:4750/_sandbox/paypal/v1/notifications/certs/"]
    assert simulator.cert_url.startswith(verification["cert_url_prefixes"][0])
