"""The acquirer reference (ARN) that comes later without an event, end to end on the local stack (issue 17, part 2):
a refund asked for in a Zendesk ticket and paid through PayPal. The customer's first message (the ticket's public
reply) says when the money usually arrives and has no ARN; PayPal's network assigns the ARN days later and says
nothing; the scheduled re-read (run now through ``POST /_local/schedules/WatchAcquirerReferencesFunction``) finds it,
the refund shows it, the customer gets one follow-up, however often the schedule runs, and the agent's note has it."""

from __future__ import annotations

import time
from typing import Any

from local.scenarios import ScenarioContext, ticket_refund_id, wait_for_notes, wait_until_stored
from local.stack import DevStack
from tests.e2e.harness import E2EClient

DESK = "zendesk"  # a desk with a public reply: the customer's messages are in the ticket
WATCH = "/_local/schedules/WatchAcquirerReferencesFunction"
ARN_MEANING = "the number your bank can use to find the refund"


def run_schedule(client: E2EClient) -> dict[str, Any]:
    answer = client.http.post(f"{client.api_url}{WATCH}", timeout=60)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["result"]
    return result


def wait_for_public(context: ScenarioContext, ticket_id: str, count: int, timeout: float = 60.0) -> list[str]:
    """The ticket's public replies once there are ``count`` of them (a bound, not a pace)."""
    deadline = time.monotonic() + timeout
    while True:
        public: list[str] = context.simulator.ticket_view(ticket_id)["public"]
        if len(public) >= count or time.monotonic() > deadline:
            return public
        time.sleep(0.05)


def test_paypals_late_arn_is_read_on_schedule_shown_and_told_to_the_customer_once(
    stack: DevStack, client: E2EClient
) -> None:
    desk = stack.simulators[DESK]
    paypal = stack.simulators["paypal"]
    context = ScenarioContext(client, DESK, desk)
    # GIVEN a refund a team lead approved in a ticket, paid through PayPal and completed
    payment = paypal.seed_payment(6_000, "EUR")
    ticket_id = desk.seed_ticket(
        {
            "payment_provider": "paypal",
            "payment_id": payment["payment_id"],
            "amount": "25.00",
            "currency": "EUR",
            "customer_email": "arn.paypal@example.com",
            "approver_role": "team_lead",
        }
    )
    desk.agent_action(ticket_id, "approve")
    refund_id = ticket_refund_id(DESK, ticket_id)
    wait_until_stored(context, refund_id)
    refund = client.wait_for(refund_id, {"COMPLETED", "FAILED", "REJECTED", "NEEDS_ATTENTION"}, timeout=60)
    assert refund["status"] == "COMPLETED", refund
    # THEN the refund shows PayPal's documented window, counted from when the money moved, and no ARN yet
    assert refund["acquirer_reference"] is None
    window = refund["expected_arrival"]
    assert (window["from_days"], window["to_days"], window["day_kind"]) == (0, 30, "calendar")
    assert window["source"].startswith("https://www.paypal.com/")
    # AND the customer's first message (the ticket's public reply) quotes the window, and no ARN
    [first] = wait_for_public(context, ticket_id, 1)
    assert "usually reaches your account within 30 days of the refund" in first, first
    assert ARN_MEANING not in first
    # WHEN the schedule runs before the network has assigned the ARN: the refund is read, nothing recorded
    assert run_schedule(client)["failed"] == 0
    assert client.refund(refund_id)["acquirer_reference"] is None
    # WHEN PayPal's network assigns it (no webhook) and the schedule runs, twice
    arn = paypal.assign_acquirer_reference(refund["provider_refund_id"])["acquirer_reference_number"]
    run_schedule(client)
    run_schedule(client)
    # THEN the refund shows it, its status unchanged, recorded once
    refund = client.refund(refund_id)
    assert (refund["status"], refund["acquirer_reference"]) == ("COMPLETED", arn)
    assert [entry["type"] for entry in refund["timeline"]].count("RefundAcquirerReference") == 1
    # AND the agent's internal note has it, and the customer got exactly one follow-up with it and its meaning
    view = wait_for_notes(context, ticket_id, lambda notes: any(arn in note for note in notes))
    assert [note for note in view["notes"] if arn in note] != [], view["notes"]
    public = wait_for_public(context, ticket_id, 2)
    follow_ups = [reply for reply in public if arn in reply]
    assert len(follow_ups) == 1, public
    assert ARN_MEANING in follow_ups[0]
    # AND a later run finds nothing left to read for it
    run_schedule(client)
    assert len([reply for reply in desk.ticket_view(ticket_id)["public"] if arn in reply]) == 1
    # AND the schedule itself only listed (the by-status index, three attributes of the state) and invoked
    calls = {
        (call.operation, call.params.get("IndexName"))
        for call in stack.functions.aws_calls
        if call.function == "WatchAcquirerReferencesFunction"
    }
    assert calls == {("Query", "by-status"), ("BatchGetItem", None), ("Invoke", None)}, calls
