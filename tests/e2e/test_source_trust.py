"""Who may skip a human approval, over HTTP (issue 6, item 1): each source system signs with its own secret,
``source.system`` must be the source that signed, and an ``approved_by`` claim is honoured only within what the
policy lets that source assert, never for a non-waivable rule. The local policy lets the help desk assert
agent and team_lead, and the returns portal nothing (local/stack.py)."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from local.stack import SOURCE_SIGNING_SECRETS, DevStack, refund_request_secret_document
from tests.e2e.harness import E2EClient, Orders, environment, would_be_refund_id

WAITING_OR_FINAL = {"PENDING_APPROVAL", "COMPLETED", "REJECTED", "FAILED"}
ROOT = Path(__file__).resolve().parents[2]


def policy_entry(refund: dict[str, Any]) -> dict[str, Any]:
    """The audit entry of the policy decision."""
    [entry] = [item for item in refund["timeline"] if "source_approval" in (item.get("details") or {})]
    details: dict[str, Any] = entry["details"]
    return details


def reject(client: E2EClient, refund_id: str) -> None:
    answer = client.decide(refund_id, client.approver_token("fin.ops", "finance"), "reject", "test clean-up")
    assert answer.status_code == 200, answer.text


def signed_with(secret: str, body: str) -> dict[str, str]:
    at = datetime.now(UTC)
    msg_id = f"msg_{uuid.uuid4().hex}"
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }


@contextmanager
def secret_document(stack: DevStack, document: dict[str, Any]) -> Iterator[None]:
    """The refund-request secret replaced for the block and read without caching (SECRETS_CACHE_SECONDS=0),
    then put back. Entering drops the secrets the process cached: what their TTL running out does."""
    from aws_lambda_powertools.utilities import parameters

    name = stack.stack.parameters["RefundRequestsSecretName"]
    secrets = stack.client("secretsmanager")
    with environment(SECRETS_CACHE_SECONDS="0"):
        secrets.put_secret_value(SecretId=name, SecretString=json.dumps(document))
        parameters.clear_caches()
        try:
            yield
        finally:
            secrets.put_secret_value(SecretId=name, SecretString=json.dumps(refund_request_secret_document()))
            parameters.clear_caches()


# ---------------------------------------------------------------------------- claims the source may not make


def test_a_signed_finance_claim_from_a_source_allowed_nothing_does_not_pay_a_fraud_claim(
    client: E2EClient, orders: Orders
) -> None:
    # GIVEN the attack: a 9,000.00 EUR fraud claim from the returns portal, "approved" by nobody as finance
    order = orders.paid(900_000, name="fraud-claim")
    request = Orders.request(order, reason="fraudulent", approved_by={"id": "nobody", "role": "finance"})
    # WHEN it is sent, correctly signed by the returns portal
    refund_id = orders.submit(request)
    refund = client.wait_for(refund_id, WAITING_OR_FINAL)
    # THEN it waits for finance (fraud claims, like the daily cap, are never waived), nothing is paid
    assert refund["status"] == "PENDING_APPROVAL", refund
    assert refund["policy"]["required_role"] == "finance"
    assert refund["policy"]["rule_id"] in {"fraud_claim", "merchant_daily_cap"}
    assert refund["approval"] is None
    assert client.stripe_refunds(order.payment_id) == []
    # AND the audit trail records the claim, its source, and why it was not honoured
    details = policy_entry(refund)
    assert "source_approval_not_honoured" in details["flags"]
    check = details["source_approval"]
    assert (check["approver_id"], check["role"], check["source"], check["honoured"], check["verdict"]) == (
        "nobody",
        "finance",
        "returns-portal",
        False,
        "source_may_not_assert_role",
    )
    reject(client, refund_id)


def test_a_source_allowed_team_lead_claiming_finance_still_needs_finance(client: E2EClient, orders: Orders) -> None:
    # GIVEN a 2,500.00 EUR refund (above the team lead limit) that the help desk says finance approved
    order = orders.paid(250_000, name="lead-claims-finance")
    request = Orders.request(order, system="helpdesk", approved_by={"id": "tl-1", "role": "finance"})
    # WHEN it is requested by the help desk, which the local policy lets assert team_lead at most
    refund_id = orders.submit(request)
    refund = client.wait_for(refund_id, WAITING_OR_FINAL)
    # THEN finance approves through refundflow
    assert refund["status"] == "PENDING_APPROVAL", refund
    assert refund["policy"]["required_role"] == "finance"
    assert refund["approval"] is None
    assert policy_entry(refund)["source_approval"]["verdict"] == "source_may_not_assert_role"
    assert client.stripe_refunds(order.payment_id) == []
    reject(client, refund_id)


def test_customer_velocity_is_not_waived_by_a_trusted_team_lead_claim(client: E2EClient, orders: Orders) -> None:
    # GIVEN a customer whose three small refunds went through automatically
    customer = f"velocity-claim.{uuid.uuid4().hex[:10]}@example.com"
    for index in range(3):
        earlier = orders.paid(1000 + index, invoice=False, name=f"velocity-claim-{index}")
        assert orders.settle(orders.submit(Orders.request(earlier, customer=customer)))["status"] == "COMPLETED"
    # WHEN a fourth arrives from the help desk with a team lead's approval (a role it may assert)
    order = orders.paid(1000, invoice=False, name="velocity-claim-3")
    claim = {"id": "tl-2", "role": "team_lead"}
    refund_id = orders.submit(Orders.request(order, customer=customer, system="helpdesk", approved_by=claim))
    refund = client.wait_for(refund_id, WAITING_OR_FINAL)
    # THEN velocity still holds it for a person
    assert refund["status"] == "PENDING_APPROVAL", refund
    assert refund["policy"]["rule_id"] == "customer_velocity"
    assert refund["approval"] is None
    assert policy_entry(refund)["source_approval"]["verdict"] == "rule_not_waivable"
    reject(client, refund_id)


# ---------------------------------------------------------------------------- the signer is the source


def test_a_body_naming_another_source_than_the_signer_is_forbidden(client: E2EClient, orders: Orders) -> None:
    # GIVEN a request whose body says it comes from the help desk (trusted with team_lead)
    order = orders.paid(75_000, invoice=False, name="spoofed-source")
    request = Orders.request(order, system="helpdesk", approved_by={"id": "tl-3", "role": "team_lead"})
    # WHEN it is signed with the returns portal's secret
    answer = client.request_refund(request, source="returns-portal")
    # THEN it is refused with 403 source_mismatch and nothing is stored
    assert answer.status_code == 403, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "source_mismatch"
    assert client.refund_or_none(would_be_refund_id(request)) is None


def test_both_secrets_of_a_rotating_source_are_accepted(client: E2EClient, orders: Orders) -> None:
    # GIVEN the help desk in the middle of a rotation: its current and its previous secret are configured
    current, previous = SOURCE_SIGNING_SECRETS["helpdesk"]
    order = orders.paid(1500, invoice=False, name="rotation")
    # WHEN one request is signed with each THEN both are the help desk's, and accepted
    for secret in (current, previous):
        body = json.dumps(Orders.request(order, amount=500, system="helpdesk"))
        answer = client.post_raw("/refund-requests", body, signed_with(secret, body))
        assert answer.status_code == 202, answer.text


def test_a_revoked_secret_stops_working_without_a_restart(client: E2EClient, stack: DevStack, orders: Orders) -> None:
    # GIVEN the help desk's previous secret removed from the secret (rotation finished)
    current, previous = SOURCE_SIGNING_SECRETS["helpdesk"]
    revoked = {**SOURCE_SIGNING_SECRETS, "helpdesk": (current,)}
    order = orders.paid(1500, invoice=False, name="revoked")
    with secret_document(stack, refund_request_secret_document(revoked)):
        # WHEN a request signed with it arrives
        body = json.dumps(Orders.request(order, system="helpdesk"))
        answer = client.post_raw("/refund-requests", body, signed_with(previous, body))
        # THEN it is unauthenticated, while the current secret still works
        assert answer.status_code == 401, answer.text
        assert answer.json()["code"] == "signature_invalid"
        assert client.post_raw("/refund-requests", body, signed_with(current, body)).status_code == 202


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ({"signing_secrets": list(SOURCE_SIGNING_SECRETS["returns-portal"])}, "the old single list"),
        ({"sources": {"returns-portal": {"signing_secrets": ["whsec_c2hvcnQtc2VjcmV0"]}}}, "a 12-byte secret"),
    ],
)
def test_a_refused_secret_document_fails_closed_as_an_operator_error(
    client: E2EClient, stack: DevStack, orders: Orders, document: dict[str, Any], why: str
) -> None:
    # GIVEN the refund-request secret configured with {why}
    order = orders.paid(1500, invoice=False, name="bad-secret")
    request = Orders.request(order)
    with secret_document(stack, document):
        # WHEN a request signed with a secret it holds arrives
        answer = client.request_refund(request)
    # THEN the operator's mistake is a 500 problem document (logged), never an accepted request
    assert answer.status_code == 500, (why, answer.text)
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "configuration_error"
    assert client.refund_or_none(would_be_refund_id(request)) is None


# ---------------------------------------------------------------------------- the README's curl session


def test_the_readme_curl_session_gets_a_refund_request_accepted(client: E2EClient) -> None:
    # GIVEN the README's copy-paste session, steps 1 and 2, pointed at this stack
    readme = (ROOT / "README.md").read_text()
    [session] = re.findall(r"```bash\n(API=http://127\.0\.0\.1:3000\n.*?)```", readme, flags=re.DOTALL)
    steps = session.split("\n# 3.")[0].replace("http://127.0.0.1:3000", client.api_url, 1)
    # WHEN it runs in bash
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", steps], capture_output=True, text=True, timeout=60)
    # THEN the signed request is accepted
    assert run.returncode == 0, run.stderr
    accepted = json.loads(run.stdout.strip().splitlines()[-1])
    assert accepted["status"] == "RECEIVED"
    assert accepted["refund_id"].startswith("rf_")
