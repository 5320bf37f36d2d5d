"""The simulator is as strict as Amazon Pay: what the connector never sends is refused, in Amazon Pay's shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from refundflow.platforms.amazon_pay.signing import load_private_key, signed_headers
from tests.platforms.amazon_pay.conftest import Served


def post(
    served: Served, body: Any, *, key: str | None = "k-1", at: datetime | None = None, host: str | None = None
) -> requests.Response:
    payload = json.dumps(body).encode()
    secret = served.simulator.local_secrets()["api"]
    headers = signed_headers(
        key=load_private_key(secret["private_key"]),
        public_key_id=secret["public_key_id"],
        method="POST",
        path="/sandbox/v2/refunds",
        host=host or urlsplit(served.url).netloc,
        region="na",
        payload=payload,
        at=at or datetime.now(UTC),
        idempotency_key=key,
    )
    return requests.post(f"{served.url}/sandbox/v2/refunds", data=payload, headers=headers, timeout=5)


def body(served: Served, **changes: Any) -> dict[str, Any]:
    charge_id = served.simulator.seed_payment(10_000, "EUR")["payment_id"]
    return {"chargeId": charge_id, "refundAmount": {"amount": "10.00", "currencyCode": "EUR"}, **changes}


def test_a_well_formed_signed_request_makes_a_refund_initiated(fresh: Served) -> None:
    answer = post(fresh, body(fresh))
    assert answer.status_code == 201
    assert answer.json()["statusDetails"]["state"] == "RefundInitiated"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"refundAmount": {"amount": "10.005", "currencyCode": "EUR"}}, "InvalidParameterValue"),
        ({"refundAmount": {"amount": 10, "currencyCode": "EUR"}}, "InvalidParameterValue"),
        ({"refundAmount": {"amount": "10.00", "currencyCode": "KWD"}}, "InvalidParameterValue"),
        ({"refundAmount": {"amount": "10.00", "currencyCode": "USD"}}, "CurrencyMismatch"),
        ({"softDescriptor": "seventeen chars!!"}, "InvalidParameterValue"),
        ({"merchantMetadata": {"merchantReferenceId": "RMA-1"}}, "UnrecognizedField"),
        ({"refundAmount": {"amount": "150000.01", "currencyCode": "EUR"}}, "InvalidParameterValue"),
    ],
)
def test_a_body_amazon_pay_would_refuse_is_a_400_with_its_reason(
    fresh: Served, changes: dict[str, Any], reason: str
) -> None:
    answer = post(fresh, body(fresh, **changes))
    assert (answer.status_code, answer.json()["reasonCode"]) == (400, reason)
    assert fresh.simulator.refunds() == []


def test_requests_without_a_key_or_with_a_bad_signature_are_refused(fresh: Served) -> None:
    assert post(fresh, body(fresh), key=None).json()["reasonCode"] == "MissingHeader"
    assert post(fresh, body(fresh), key="has:colon").status_code == 400
    stale = post(fresh, body(fresh), at=datetime.now(UTC) - timedelta(hours=1))
    assert (stale.status_code, stale.json()["reasonCode"]) == (401, "InvalidRequestSignature")
    assert post(fresh, body(fresh), host="pay-api.amazon.com").status_code == 401
    unsigned = requests.post(f"{fresh.url}/sandbox/v2/refunds", json=body(fresh), timeout=5)
    assert (unsigned.status_code, unsigned.json()["reasonCode"]) == (401, "InvalidRequestSignature")
    assert fresh.simulator.refunds() == []


def test_a_refusal_is_saved_under_its_key_like_a_success(fresh: Served) -> None:
    # GIVEN a refund refused for its amount under key k-9
    ask = body(fresh, refundAmount={"amount": "500.00", "currencyCode": "EUR"})
    first = post(fresh, ask, key="k-9")
    # WHEN the same request comes again / THEN the same answer, and nothing was made
    again = post(fresh, ask, key="k-9")
    assert (first.status_code, first.json()) == (again.status_code, again.json())
    assert first.json()["reasonCode"] == "TransactionAmountExceeded"
    assert fresh.simulator.refunds() == []
