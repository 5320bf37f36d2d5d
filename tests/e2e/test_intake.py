"""What the front door refuses, over HTTP: forged and stale deliveries (R6, R7), malformed ones (R18),
mass assignment (R14), a changed request under a known reference (R3), and the status API's answers."""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from local.stack import DevStack
from refundflow import catalog
from refundflow.models import PaymentProvider
from tests.e2e.harness import E2EClient, Orders, PaidOrder, would_be_refund_id

PROBLEM_JSON = "application/problem+json"


def assert_nothing_stored(client: E2EClient, stack: DevStack, request: dict[str, Any]) -> None:
    refund_id = would_be_refund_id(request)
    assert client.refund_or_none(refund_id) is None, f"{refund_id} was stored"
    sfn = stack.client("stepfunctions")
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.describe_execution(executionArn=stack.execution_arn(refund_id))


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers["content-type"]
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    if code is not None:
        assert problem["code"] == code, problem
    return problem


@pytest.fixture
def order(orders: Orders) -> PaidOrder:
    return orders.paid(3000, invoice=False, name="intake")


# ---------------------------------------------------------------------------- R6 / R7: forged and stale


def test_delivery_with_a_flipped_body_byte_is_refused_and_nothing_stored(
    client: E2EClient, stack: DevStack, order: PaidOrder
) -> None:
    # GIVEN a correctly signed delivery asking for 15.00
    request = Orders.request(order, amount=1500)
    body = json.dumps(request)
    headers = client.signed_headers(body)
    # WHEN one byte of the body changes on the way (1500 becomes 2500: a larger refund)
    tampered = body.replace('"minor_units": 1500', '"minor_units": 2500').encode()
    assert len(tampered) == len(body.encode())
    assert tampered != body.encode()
    response = client.post_raw("/refund-requests", tampered, headers)
    # THEN it is refused as unauthenticated, before anything is stored
    assert_problem(response, 401, "signature_invalid")
    assert_nothing_stored(client, stack, request)


def test_delivery_signed_with_another_secret_is_refused(client: E2EClient, stack: DevStack, order: PaidOrder) -> None:
    # GIVEN a delivery signed with a secret refundflow does not hold
    request = Orders.request(order)
    body = json.dumps(request)
    stranger = Webhook("whsec_" + base64.b64encode(b"somebody-elses-secret-0123456789").decode())
    delivery = f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": stranger.sign(delivery, now, body),
    }
    # WHEN it is posted
    response = client.post_raw("/refund-requests", body, headers)
    # THEN it is refused
    assert_problem(response, 401, "signature_invalid")
    assert_nothing_stored(client, stack, request)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_delivery_without_a_signature_header_is_refused(
    client: E2EClient, stack: DevStack, order: PaidOrder, missing: str
) -> None:
    # GIVEN a signed delivery with one of the three Standard Webhooks headers left out
    request = Orders.request(order)
    body = json.dumps(request)
    headers = {key: value for key, value in client.signed_headers(body).items() if key != missing}
    # WHEN it is posted
    response = client.post_raw("/refund-requests", body, headers)
    # THEN it is refused, and the answer names what is missing
    problem = assert_problem(response, 401, "signature_missing")
    assert missing in problem["detail"]
    assert_nothing_stored(client, stack, request)


def test_empty_delivery_is_refused_as_unauthenticated(client: E2EClient) -> None:
    # GIVEN a delivery whose body was dropped, under the signature headers of a real request
    real = json.dumps({"reason": "damaged"})
    headers = client.signed_headers(real)
    # WHEN it is posted with an empty body
    response = client.post_raw("/refund-requests", b"", headers)
    # THEN the signature does not match the (empty) body: refused before anything is parsed
    assert_problem(response, 401, "signature_invalid")


# A stale timestamp only grows staler while the request travels, so 301 s old stays outside; one from the
# future shrinks towards the window (whole-second truncation and a loaded machine eat a second or more), so it is
# dated far enough ahead that no scheduling delay brings it inside. The exact edges are unit-tested on a fixed clock.
@pytest.mark.parametrize("skew_seconds", [-301, 400], ids=["301s-old", "400s-ahead"])
def test_delivery_signed_outside_the_five_minute_window_is_refused(
    client: E2EClient, stack: DevStack, order: PaidOrder, skew_seconds: int
) -> None:
    # GIVEN a delivery with a valid signature over a timestamp 301 s in the past or 400 s in the future
    request = Orders.request(order)
    body = json.dumps(request)
    at = datetime.now(UTC) + timedelta(seconds=skew_seconds)
    headers = client.signed_headers(body, at=at)
    # WHEN it is posted
    response = client.post_raw("/refund-requests", body, headers)
    # THEN it is refused as stale (a replay) or as from the future
    assert_problem(response, 401, "timestamp_out_of_tolerance")
    assert_nothing_stored(client, stack, request)


# ---------------------------------------------------------------------------- R18: malformed deliveries


def test_malformed_json_is_a_400_problem(client: E2EClient) -> None:
    # GIVEN a correctly signed body that is not JSON
    body = '{"payment": {"provider": "stripe", '
    # WHEN it is posted
    response = client.post_signed(body)
    # THEN the answer says the body is not JSON
    assert_problem(response, 400, "invalid_json")


def test_json_that_is_not_an_object_is_a_400_problem(client: E2EClient) -> None:
    # GIVEN a signed JSON array
    response = client.post_signed("[1, 2, 3]")
    # THEN it is refused as not a refund request
    assert_problem(response, 400, "invalid_json")


def test_wrong_content_type_is_a_415_problem(client: E2EClient, stack: DevStack, order: PaidOrder) -> None:
    # GIVEN a valid, signed request sent as form data
    request = Orders.request(order)
    # WHEN it is posted with another content type
    response = client.post_signed(json.dumps(request), headers={"content-type": "text/plain"})
    # THEN it is refused as an unsupported media type, nothing stored
    assert_problem(response, 415, "unsupported_media_type")
    assert_nothing_stored(client, stack, request)


def test_oversized_body_is_a_413_problem(client: E2EClient, stack: DevStack, order: PaidOrder) -> None:
    # GIVEN a signed request padded past 64 KiB
    request = Orders.request(order, note="x" * 500)
    body = json.dumps(request)
    body = body[:-1] + ', "padding": "' + "p" * (64 * 1024) + '"}'
    assert len(body.encode()) > 64 * 1024
    # WHEN it is posted
    response = client.post_signed(body)
    # THEN it is refused for its size before it is parsed
    assert_problem(response, 413, "payload_too_large")
    assert_nothing_stored(client, stack, request)


def test_unknown_route_is_a_404_problem(client: E2EClient, order: PaidOrder) -> None:
    # GIVEN a signed request sent to a path the API does not have
    body = json.dumps(Orders.request(order))
    # WHEN it is posted there
    response = client.post_signed(body, path="/refund-request")
    # THEN the answer is a problem document, not a crash or an HTML page
    assert_problem(response, 404, "route_not_found")


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("approved", True),
        ("refundable", {"minor_units": 999999, "currency": "EUR"}),
        ("status", "APPROVED"),
        ("policy", {"outcome": "approve"}),
    ],
)
def test_client_cannot_mass_assign_refundflow_fields(
    client: E2EClient, stack: DevStack, order: PaidOrder, field_name: str, value: Any
) -> None:
    # GIVEN a signed request that also tries to set a field only refundflow may set
    request = Orders.request(order, **{field_name: value})
    # WHEN it is posted
    response = client.request_refund(request)
    # THEN it is refused and the problem names the field
    problem = assert_problem(response, 400, "validation_failed")
    assert any(error["field"] == field_name and error["type"] == "extra_forbidden" for error in problem["errors"])
    assert_nothing_stored(client, stack, request)


def test_client_cannot_smuggle_a_refundable_amount_inside_the_amount(
    client: E2EClient, stack: DevStack, order: PaidOrder
) -> None:
    # GIVEN an amount object carrying an extra "refundable" field
    request = Orders.request(order)
    request["amount"] = {"minor_units": 1000, "currency": "EUR", "refundable": 1_000_000}
    # WHEN it is posted
    response = client.request_refund(request)
    # THEN it is refused
    problem = assert_problem(response, 400, "validation_failed")
    assert any(error["field"].startswith("amount") for error in problem["errors"])
    assert_nothing_stored(client, stack, request)


@pytest.mark.parametrize(
    ("amount", "field_hint"),
    [
        ({"minor_units": -500, "currency": "EUR"}, "amount"),
        ({"minor_units": 0, "currency": "EUR"}, "amount"),
        ({"minor_units": 1000, "currency": "EUX"}, "amount"),
        ({"minor_units": 10.5, "currency": "EUR"}, "amount"),
    ],
    ids=["negative", "zero", "unknown-currency", "fractional-minor-units"],
)
def test_invalid_amount_is_a_400_problem(
    client: E2EClient, stack: DevStack, order: PaidOrder, amount: dict[str, Any], field_hint: str
) -> None:
    # GIVEN a signed request with an amount no refund can have
    request = Orders.request(order)
    request["amount"] = amount
    # WHEN it is posted
    response = client.request_refund(request)
    # THEN it is refused with field-level problems, nothing stored
    problem = assert_problem(response, 400, "validation_failed")
    assert any(field_hint in error["field"] or error["field"] == "body" for error in problem["errors"]), problem
    assert_nothing_stored(client, stack, request)


def test_unknown_payment_provider_is_a_400_problem(client: E2EClient, stack: DevStack, order: PaidOrder) -> None:
    # GIVEN a request naming a payment provider refundflow has never heard of
    request = Orders.request(order)
    request["payment"] = {"provider": "acme_pay", "payment_id": "ap_123"}
    # WHEN it is posted
    response = client.request_refund(request)
    # THEN it is refused at the door
    problem = assert_problem(response, 400, "validation_failed")
    assert any(error["field"].startswith("payment.provider") for error in problem["errors"])
    assert_nothing_stored(client, stack, request)


def test_every_provider_a_request_may_name_has_a_deployed_connector(stack: DevStack) -> None:
    # GIVEN the providers a refund request may name (the API's enum; any other is a 400 validation_failed, above)
    named = {provider.value for provider in PaymentProvider}
    # THEN each has its catalog entry and its own function in the deployed stack, so none is refused as
    # provider_not_supported (that refusal, for a catalog without the provider, is tests/unit/kit/test_catalog.py's)
    assert named == set(catalog.names("payment"))
    deployed = set(stack.stack.resources)
    assert {catalog.platform(name).logical_id("payment") for name in named} <= deployed


def test_card_number_in_free_text_is_refused_and_never_stored(
    client: E2EClient, stack: DevStack, order: PaidOrder
) -> None:
    # GIVEN a help desk that pastes the customer's card number into the note
    request = Orders.request(order, note="customer paid with 4242 4242 4242 4242, exp 12/34")
    # WHEN the request is posted
    response = client.request_refund(request)
    # THEN it is refused (card data is never accepted), and the problem does not echo the number
    problem = assert_problem(response, 400)
    assert "4242 4242 4242 4242" not in json.dumps(problem)
    assert_nothing_stored(client, stack, request)


# ---------------------------------------------------------------------------- R3: same reference, other content


def test_same_reference_with_another_amount_is_a_409_and_pays_nothing_more(client: E2EClient, orders: Orders) -> None:
    # GIVEN a refund of 20.00 that went through
    order = orders.paid(6000, invoice=False, name="conflict")
    first = Orders.request(order, amount=2000)
    refund_id = orders.submit(first)
    assert orders.settle(refund_id)["status"] == "COMPLETED"
    # WHEN the same source reference arrives again asking for 30.00
    changed = json.loads(json.dumps(first))
    changed["amount"]["minor_units"] = 3000
    response = client.request_refund(changed)
    # THEN it is a conflict, the refund keeps its amount and Stripe saw no second refund
    assert_problem(response, 409, "idempotency_conflict")
    assert client.refund(refund_id)["amount"] == {"minor_units": 2000, "currency": "EUR"}
    assert [refund["amount"] for refund in client.stripe_refunds(order.payment_id)] == [2000]
    assert not [post for post in client.stripe_refund_posts(order.payment_id) if "amount=3000" in post["body"]]


def test_same_request_under_a_new_delivery_id_lands_on_the_same_refund(client: E2EClient, orders: Orders) -> None:
    # GIVEN a refund request that was accepted
    order = orders.paid(2500, invoice=False, name="resent")
    request = Orders.request(order)
    first = client.request_refund(request)
    assert first.status_code == 202
    # WHEN the source sends the identical request again as a new delivery (a new webhook-id)
    second = client.request_refund(request)
    # THEN it is recognised as the same refund, and only one refund is paid
    assert second.status_code == 202
    assert second.json()["refund_id"] == first.json()["refund_id"]
    assert second.json()["duplicate"] is True
    assert orders.settle(first.json()["refund_id"])["status"] == "COMPLETED"
    assert len(client.stripe_refunds(order.payment_id)) == 1


def states_entered_by_the_steps(stack: DevStack, refund_id: str) -> list[str]:
    """The states the refund's Express child executions entered, in order (the real ASL on moto's interpreter)."""
    sfn = stack.client("stepfunctions")
    children = [
        json.loads(event["taskSubmittedEventDetails"]["output"])["ExecutionArn"]
        for event in stack.execution_history(refund_id)
        if event["type"] == "TaskSubmitted"
        and event["taskSubmittedEventDetails"]["resource"].startswith("startExecution")
    ]
    return [
        event["stateEnteredEventDetails"]["name"]
        for arn in children
        for event in sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        if event["type"].endswith("StateEntered")
    ]


def test_a_request_with_one_payment_starts_with_its_providers_look_up(
    client: E2EClient, stack: DevStack, orders: Orders
) -> None:
    # GIVEN a request with one payment, and an invoice to credit
    order = orders.paid(2500, name="lookup-first")
    refund_id = orders.submit(Orders.request(order))
    # WHEN it goes straight through
    assert orders.settle(refund_id)["status"] == "COMPLETED"
    # THEN its steps began with the provider's look-up, which made and validated the refund: no ValidateRefund
    entered = states_entered_by_the_steps(stack, refund_id)
    assert entered[:4] == ["RouteEntry", "ProviderKnown", "LookUpPayment", "EvaluatePolicy"], entered
    assert "ValidateRefund" not in entered
    # AND its trail is the one a ValidateRefund step would have begun, intact
    refund = client.refund(refund_id)
    assert [entry["type"] for entry in refund["timeline"]][:3] == [
        "RefundRequested",
        "StatusChanged:VALIDATED",
        "PaymentLookedUp",
    ]
    assert refund["audit"]["intact"] is True


# ---------------------------------------------------------------------------- GET /refunds/{id}


def test_unknown_refund_is_a_404_problem(client: E2EClient) -> None:
    # GIVEN a well-formed refund id nobody used
    refund_id = f"rf_{uuid.uuid4().hex}"
    # WHEN it is read
    response = client.http.get(f"{client.api_url}/refunds/{refund_id}", timeout=10)
    # THEN the answer is a 404 problem document
    assert_problem(response, 404, "not_found")


@pytest.mark.parametrize("refund_id", ["nope", "rf_XYZ", f"rf_{'a' * 31}", f"RF_{'a' * 32}"])
def test_malformed_refund_id_is_a_422_problem(client: E2EClient, refund_id: str) -> None:
    # WHEN a refund is read under an id that cannot be one
    response = client.http.get(f"{client.api_url}/refunds/{refund_id}", timeout=10)
    # THEN the path parameter is refused
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["field"] == "path.refund_id"


def test_refund_view_reports_an_intact_audit_chain_in_order(client: E2EClient, orders: Orders) -> None:
    # GIVEN a refund that went all the way
    order = orders.paid(1800, name="audit")
    refund_id = orders.submit(Orders.request(order))
    refund = orders.settle(refund_id)
    assert refund["status"] == "COMPLETED"
    # THEN its timeline is a gapless hash chain from the request to completion
    timeline = refund["timeline"]
    assert refund["audit"]["intact"] is True
    assert [entry["seq"] for entry in timeline] == list(range(1, len(timeline) + 1))
    assert timeline[0]["prev_hash"] == "0" * 64
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in itertools.pairwise(timeline))
    statuses = [entry["to_status"] for entry in timeline if entry["to_status"] != entry["from_status"]]
    assert statuses == [
        "RECEIVED",
        "VALIDATED",
        "APPROVED",
        "REFUND_SUBMITTED",
        "REFUNDED",
        "INVOICE_UPDATED",
        "COMPLETED",
    ], [(entry["type"], entry["actor"]) for entry in timeline]
    # AND the view holds references, not contact details beyond the customer block
    assert refund["credit_document"]["total"] == {"minor_units": 1800, "currency": "EUR"}
