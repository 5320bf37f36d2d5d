"""End to end against a deployed stack, over its public API only, as an integrator would: a signed refund
request for a Stripe test-mode payment, followed through ``GET /refunds/{refund_id}`` (SigV4) to its final
status. Skipped unless a stack is configured (see conftest.py); run with ``make aws-e2e``."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from standardwebhooks.webhooks import Webhook

from refundflow.status import TERMINAL_STATUSES
from tests.aws.conftest import DeployedStack

pytestmark = pytest.mark.aws

FINAL = {status.value for status in TERMINAL_STATUSES}
TIMEOUT = 30


def post_signed(stack: DeployedStack, request: dict[str, Any], secret: str | None = None) -> requests.Response:
    """A refund request signed per Standard Webhooks with the source system's secret (a new delivery id)."""
    body = json.dumps(request)
    delivery_id, at = f"msg_{uuid.uuid4().hex}", datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret or stack.signing_secret).sign(delivery_id, at, body),
    }
    return requests.post(f"{stack.api_url}/refund-requests", data=body, headers=headers, timeout=TIMEOUT)


def get_refund(stack: DeployedStack, refund_id: str, *, signed: bool = True) -> requests.Response:
    url = f"{stack.api_url}/refunds/{refund_id}"
    if not signed:
        return requests.get(url, timeout=TIMEOUT)
    aws_request = AWSRequest(method="GET", url=url)
    SigV4Auth(stack.credentials, "execute-api", stack.region).add_auth(aws_request)
    return requests.get(url, headers=dict(aws_request.headers), timeout=TIMEOUT)


def final_refund(stack: DeployedStack, refund_id: str) -> dict[str, Any]:
    """The refund once it is final, read every few seconds until the configured deadline."""
    deadline = time.monotonic() + stack.timeout_seconds
    while True:
        response = get_refund(stack, refund_id)
        assert response.status_code == 200, response.text
        refund: dict[str, Any] = response.json()
        if refund["status"] in FINAL:
            return refund
        if time.monotonic() > deadline:
            pytest.fail(f"{refund_id} is still {refund['status']} after {stack.timeout_seconds:.0f} s: {refund}")
        time.sleep(3)


def refund_request(stack: DeployedStack) -> dict[str, Any]:
    request: dict[str, Any] = {
        "payment": {"provider": "stripe", "payment_id": stack.payment_id},
        "reason": "damaged",
        "customer": {"email": "aws-e2e@example.com", "name": "AWS E2E"},
        "source": {"system": stack.source_system, "reference": f"aws-e2e-{uuid.uuid4().hex[:16]}"},
        "order": {"order_id": f"aws-e2e-{uuid.uuid4().hex[:12]}"},
    }
    if stack.invoice_id:
        request["invoice"] = {"system": "xero", "invoice_id": stack.invoice_id}
    return request


def test_a_signed_refund_request_is_refunded_and_completed(deployed: DeployedStack) -> None:
    # GIVEN a refund request for all that is left of a Stripe test-mode payment
    request = refund_request(deployed)

    # WHEN the source system sends it, and then sends it again (a retried delivery)
    first = post_signed(deployed, request)
    again = post_signed(deployed, request)

    # THEN it is accepted once: the retry names the same refund and starts nothing
    assert first.status_code == 202, first.text
    refund_id = first.json()["refund_id"]
    assert first.json()["duplicate"] is False
    assert again.status_code == 202, again.text
    assert again.json() == {**again.json(), "refund_id": refund_id, "duplicate": True}

    # AND the workflow takes it to COMPLETED: money back at Stripe, the trail intact
    refund = final_refund(deployed, refund_id)
    assert refund["status"] in {"COMPLETED", "SETTLED"}, refund
    assert refund["provider_refund_id"].startswith("re_"), refund
    assert refund["amount"]["minor_units"] > 0, refund
    assert refund["audit"]["intact"] is True, refund["audit"]
    if deployed.invoice_id:
        assert refund["credit_document"], refund


def test_a_request_signed_with_another_secret_is_refused(deployed: DeployedStack) -> None:
    # GIVEN a request signed with a secret the stack does not hold
    forged = "whsec_" + "Zm9yZ2VkLXNpZ25pbmctc2VjcmV0LWZvci1hd3MtZTJl"

    # WHEN it is sent
    response = post_signed(deployed, refund_request(deployed), secret=forged)

    # THEN it is refused with a problem document, and no refund exists
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_reading_a_refund_needs_sigv4(deployed: DeployedStack) -> None:
    # GIVEN a refund id (whether it exists does not matter to IAM)
    refund_id = f"rf_{uuid.uuid4().hex}"

    # WHEN it is read without a signature, then with one
    unsigned = get_refund(deployed, refund_id, signed=False)
    signed = get_refund(deployed, refund_id)

    # THEN API Gateway refuses the first; the second reaches the handler, which knows no such refund
    assert unsigned.status_code == 403, unsigned.text
    assert signed.status_code == 404, signed.text
