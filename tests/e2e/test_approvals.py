"""People in the loop, over HTTP with locally minted JWTs: approval abuse (R12), escalation and
expiry of unanswered requests, and approvals given where the refund was asked for (a help desk)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from local.identity import ROLE_CLAIM, LocalIssuer
from local.stack import DevStack
from tests.e2e.harness import E2EClient, Orders, environment, eventually

TEAM_LEAD_AMOUNT = 75_000  # 750.00 EUR: above the agent limit, within the team lead's
AGENT_AMOUNT = 12_000  # 120.00 EUR: above the automatic limit, within the agent's


def issuer_of(stack: DevStack) -> LocalIssuer:
    """The local identity provider (to mint the tokens its HTTP endpoint will not: other audiences)."""
    issuer: LocalIssuer = stack._api.app.issuer
    return issuer


def pending(orders: Orders, client: E2EClient, minor_units: int, name: str) -> tuple[str, str]:
    """A refund waiting for a person: (refund id, payment id)."""
    order = orders.paid(minor_units, name=name)
    refund_id = orders.submit(Orders.request(order))
    refund = client.wait_for(refund_id, {"PENDING_APPROVAL", "COMPLETED", "REJECTED", "FAILED"})
    assert refund["status"] == "PENDING_APPROVAL", refund
    return refund_id, order.payment_id


def assert_problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.json()


def required_role_is(refund: dict[str, Any], role: str) -> dict[str, Any] | None:
    return refund if (refund.get("policy") or {}).get("required_role") == role else None


# ---------------------------------------------------------------------------- R12: who may decide


def test_approval_without_a_valid_token_is_refused_before_the_function_runs(
    client: E2EClient, orders: Orders, stack: DevStack
) -> None:
    # GIVEN a refund waiting for a team lead
    refund_id, payment_id = pending(orders, client, TEAM_LEAD_AMOUNT, "no-token")
    issuer = issuer_of(stack)
    stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {
            "iss": issuer.issuer,
            "aud": issuer.audience,
            "sub": "mallory",
            "iat": int(time.time()),
            "exp": int(time.time()) + 600,
            "jti": str(uuid.uuid4()),
            ROLE_CLAIM: "finance",
        },
        stranger_key,
        algorithm="RS256",
        headers={"kid": "refundflow-local-1"},
    )
    tokens = {
        "wrong audience": issuer.mint("lee.lead", "team_lead", audience="some-other-api"),
        "expired": client.approver_token("lee.lead", "team_lead", ttl_seconds=-120),
        "signed by someone else": forged,
        "not a JWT": "not-a-jwt",
    }
    runs_before = stack.functions.invocations["DecideApprovalFunction"]
    # WHEN each of them, and no token at all, is used to approve
    answers = {reason: client.decide(refund_id, token, "approve") for reason, token in tokens.items()}
    answers["no token"] = client.http.post(
        f"{client.api_url}/refunds/{refund_id}/approval", json={"decision": "approve"}, timeout=10
    )
    # THEN every attempt is answered 401 by the authorizer, the function never runs, nothing moves
    assert {reason: answer.status_code for reason, answer in answers.items()} == dict.fromkeys(answers, 401)
    # AND each answer is a problem document (the local authorizer's; API Gateway's own cannot be one)
    for answer in answers.values():
        assert_problem(answer, 401, "unauthorized")
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert stack.functions.invocations["DecideApprovalFunction"] == runs_before
    assert client.refund(refund_id)["status"] == "PENDING_APPROVAL"
    assert client.stripe_refunds(payment_id) == []
    client.decide(refund_id, client.approver_token("lee.lead", "team_lead"), "reject", "test clean-up")


def test_role_below_the_required_one_is_forbidden(client: E2EClient, orders: Orders) -> None:
    # GIVEN a refund waiting for a team lead
    refund_id, payment_id = pending(orders, client, TEAM_LEAD_AMOUNT, "low-role")
    # WHEN an agent (one role too low) and a made-up role try to approve it
    agent = client.decide(refund_id, client.approver_token("avery.agent", "agent"), "approve")
    intern = client.decide(refund_id, client.approver_token("ian.intern", "intern"), "approve")
    # THEN both are forbidden, and the refund still waits with nothing paid
    assert_problem(agent, 403, "role_not_allowed")
    assert_problem(intern, 403, "role_not_allowed")
    assert client.refund(refund_id)["status"] == "PENDING_APPROVAL"
    assert client.stripe_refunds(payment_id) == []
    # AND a finance approver (above the required role) may decide it
    finance = client.decide(refund_id, client.approver_token("fin.ops", "finance"), "approve")
    assert finance.status_code == 200, finance.text
    assert orders.settle(refund_id)["status"] == "COMPLETED"


def test_token_bound_to_another_refund_gets_the_same_404_as_an_unknown_refund(
    client: E2EClient, orders: Orders
) -> None:
    # GIVEN two refunds waiting for a team lead, and a team lead token minted for the first one only
    first, _ = pending(orders, client, TEAM_LEAD_AMOUNT, "bound-a")
    second, second_payment = pending(orders, client, TEAM_LEAD_AMOUNT, "bound-b")
    token = client.approver_token("lee.lead", "team_lead", refund_id=first)
    # WHEN it is used on the second refund, and on a refund id that does not exist
    answer = client.decide(second, token, "approve")
    unknown_id = "rf_" + "0" * 32
    unknown = client.decide(unknown_id, token, "approve")
    # THEN both are the same 404: the answer does not tell the token's holder that the second refund exists
    assert_problem(answer, 404, "not_found")
    assert answer.json() == {**unknown.json(), "detail": unknown.json()["detail"].replace(unknown_id, second)}
    # AND the token is still good for its own refund
    assert client.refund(second)["status"] == "PENDING_APPROVAL"
    assert client.stripe_refunds(second_payment) == []
    assert client.decide(first, token, "reject", "wrong customer").status_code == 200
    client.decide(second, client.approver_token("lee.lead", "team_lead"), "reject", "test clean-up")


def test_approval_token_is_single_use_even_on_another_refund(client: E2EClient, orders: Orders) -> None:
    # GIVEN two refunds waiting for an agent, and one agent token bound to no refund
    first, first_payment = pending(orders, client, AGENT_AMOUNT, "once-a")
    second, second_payment = pending(orders, client, AGENT_AMOUNT, "once-b")
    token = client.approver_token("avery.agent", "agent")
    # WHEN the token approves the first refund, then is presented again for the second
    assert client.decide(first, token, "approve").status_code == 200
    replay = client.decide(second, token, "approve")
    # THEN the second use is a 401: the token was spent, and the second refund still waits
    assert_problem(replay, 401, "token_spent")
    assert client.refund(second)["status"] == "PENDING_APPROVAL"
    assert client.stripe_refunds(second_payment) == []
    assert orders.settle(first)["status"] == "COMPLETED"
    assert len(client.stripe_refunds(first_payment)) == 1
    client.decide(second, client.approver_token("avery.agent", "agent"), "reject", "test clean-up")


def test_two_approvers_at_once_one_wins_and_money_moves_once(client: E2EClient, orders: Orders) -> None:
    # GIVEN a refund waiting for a team lead, and two team leads with their own valid tokens
    refund_id, payment_id = pending(orders, client, TEAM_LEAD_AMOUNT, "race-approve")
    tokens = {name: client.approver_token(name, "team_lead") for name in ("lee.lead", "kim.lead")}
    barrier = threading.Barrier(2)
    answers: dict[str, Any] = {}

    def approve(name: str) -> None:
        barrier.wait(timeout=10)
        answers[name] = client.decide(refund_id, tokens[name], "approve", f"ok by {name}")

    # WHEN both approve at the same moment
    threads = [threading.Thread(target=approve, args=(name,)) for name in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # THEN exactly one approval counts, the other is a conflict, and one Stripe refund is made
    statuses = sorted(answer.status_code for answer in answers.values())
    assert statuses == [200, 409], {name: answer.text for name, answer in answers.items()}
    winner = next(name for name, answer in answers.items() if answer.status_code == 200)
    refund = orders.settle(refund_id)
    assert refund["status"] == "COMPLETED", refund["failure"]
    assert refund["approval"]["approver"] == winner
    assert len(client.stripe_refunds(payment_id)) == 1
    decisions = [entry for entry in refund["timeline"] if entry["type"] == "StatusChanged:APPROVED"]
    assert len(decisions) == 1
    # AND the winning token, presented again, is refused as spent
    assert_problem(client.decide(refund_id, tokens[winner], "approve"), 401, "token_spent")


# ---------------------------------------------------------------------------- escalation and expiry


def test_unanswered_approval_escalates_role_by_role_then_expires(
    client: E2EClient, orders: Orders, sent_emails: Any
) -> None:
    # GIVEN approval requests escalate after 3 s, and a refund that needs an agent
    order = orders.paid(AGENT_AMOUNT, name="escalation")
    with environment(APPROVAL_ESCALATION_SECONDS="3"):
        refund_id = orders.submit(Orders.request(order))
    refund = client.wait_for(refund_id, {"PENDING_APPROVAL"})
    assert refund["policy"]["required_role"] == "agent"
    # WHEN nobody decides in time
    escalated = eventually(
        lambda: required_role_is(client.refund(refund_id), "team_lead"), timeout=20, what="escalation to team_lead"
    )
    # THEN it goes to a team lead: the policy record and the audit trail say so, and an agent may no longer approve
    escalated = client.wait_for_entry(refund_id, "ApprovalEscalated")
    entry = next(entry for entry in escalated["timeline"] if entry["type"] == "ApprovalEscalated")
    assert (entry["details"]["from_role"], entry["details"]["to_role"]) == ("agent", "team_lead")
    late_agent = client.decide(refund_id, client.approver_token("avery.agent", "agent"), "approve")
    assert late_agent.status_code in {403, 409}, late_agent.text
    if late_agent.status_code == 403:
        assert late_agent.json()["code"] == "role_not_allowed"
    # AND then to finance, and finally it is rejected as expired
    again = client.wait_for_entry(refund_id, "ApprovalEscalated", count=2, timeout=20)
    assert again["status"] in {"PENDING_APPROVAL", "REJECTED"}
    expired = client.wait_for(refund_id, {"REJECTED", "COMPLETED", "FAILED"}, timeout=20)
    assert expired["status"] == "REJECTED"
    assert expired["failure"]["code"] == "approval_expired"
    roles = [entry["details"]["to_role"] for entry in expired["timeline"] if entry["type"] == "ApprovalEscalated"]
    assert roles == ["team_lead", "finance"]
    # AND a decision after the expiry is a conflict, and nothing was paid
    after = client.decide(refund_id, client.approver_token("fin.ops", "finance"), "approve")
    assert_problem(after, 409, "not_pending_approval")
    assert client.stripe_refunds(order.payment_id) == []
    # AND ops heard of each escalation
    alerts = eventually(
        lambda: [
            mail
            for mail in sent_emails(to="ops@example.com")
            if mail["data"].get("refund_id") == refund_id and mail["data"].get("event") == "RefundApprovalEscalated"
        ],
        what="ops alerts for the escalations",
    )
    assert len(alerts) >= 1


# ---------------------------------------------------------------------------- approved at the source


def test_help_desk_approval_by_a_team_lead_needs_nobody_else(client: E2EClient, orders: Orders) -> None:
    # GIVEN a refund above the agent limit, already approved by a team lead in the help desk
    order = orders.paid(TEAM_LEAD_AMOUNT, name="helpdesk-lead")
    request = Orders.request(order, system="helpdesk", approved_by={"id": "tl-4711", "role": "team_lead"})
    # WHEN it is requested
    refund_id = orders.submit(request)
    refund = orders.settle(refund_id)
    # THEN it is approved without anyone at refundflow, and the approval names the help desk's team lead
    assert refund["status"] == "COMPLETED", refund["failure"]
    approval = refund["approval"]
    assert (approval["approver"], approval["role"], approval["channel"]) == ("tl-4711", "team_lead", "source:helpdesk")
    statuses = [entry["to_status"] for entry in refund["timeline"] if entry["to_status"] != entry["from_status"]]
    assert "PENDING_APPROVAL" not in statuses
    assert len(client.stripe_refunds(order.payment_id)) == 1


def test_help_desk_approval_by_a_role_too_low_still_needs_a_team_lead(client: E2EClient, orders: Orders) -> None:
    # GIVEN the same kind of refund, approved in the help desk by an agent only
    order = orders.paid(TEAM_LEAD_AMOUNT, name="helpdesk-agent")
    request = Orders.request(order, system="helpdesk", approved_by={"id": "ag-17", "role": "agent"})
    # WHEN it is requested
    refund_id = orders.submit(request)
    refund = client.wait_for(refund_id, {"PENDING_APPROVAL", "COMPLETED", "REJECTED", "FAILED"})
    # THEN it waits for a team lead, nothing paid
    assert refund["status"] == "PENDING_APPROVAL"
    assert refund["policy"]["required_role"] == "team_lead"
    assert refund["approval"] is None
    assert client.stripe_refunds(order.payment_id) == []
    client.decide(refund_id, client.approver_token("lee.lead", "team_lead"), "reject", "test clean-up")


def test_approval_note_with_a_card_number_is_refused(client: E2EClient, orders: Orders) -> None:
    # GIVEN a refund waiting for a team lead
    refund_id, _ = pending(orders, client, TEAM_LEAD_AMOUNT, "card-note")
    # WHEN an approver pastes a card number into the note
    token = client.approver_token("lee.lead", "team_lead")
    answer = client.decide(refund_id, token, "approve", "card 5555555555554444")
    # THEN the decision is refused as card data (a 400, like every body problem) and not recorded
    assert_problem(answer, 400, "card_data_refused")
    assert "5555555555554444" not in answer.text
    assert client.refund(refund_id)["status"] == "PENDING_APPROVAL"
    client.decide(refund_id, client.approver_token("lee.lead", "team_lead"), "reject", "test clean-up")
