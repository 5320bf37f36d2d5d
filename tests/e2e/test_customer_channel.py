"""The customer hears once per refund, through one channel, end to end on the local stack: a help desk's refund gets
one public reply in its ticket and no e-mail; the web shop's refund (the merchant webhook is configured for it) one
signed POST to the merchant's system, the same ``webhook-id`` on a retry, and no e-mail; an API refund without
either one e-mail."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from local.scenarios import ScenarioContext, ticket_refund_id, wait_for_notes, wait_until_stored
from local.stack import MERCHANT_SHOP, DevStack
from refundflow import catalog
from tests.e2e.harness import E2EClient, Orders, eventually
from tests.e2e.test_notifications import ISSUED, queue_drained

REPLY_DESKS = sorted(catalog.public_reply_desks())
DONE = {"COMPLETED", "FAILED", "REJECTED", "NEEDS_ATTENTION"}


@pytest.mark.parametrize("platform", REPLY_DESKS)
def test_a_help_desk_refund_gets_one_public_reply_and_no_email(
    stack: DevStack, client: E2EClient, sent_emails: Any, platform: str
) -> None:
    simulator = stack.simulators[platform]
    context = ScenarioContext(client, platform, simulator)
    customer = f"reply.{platform}.{uuid.uuid4().hex[:8]}@example.com"
    # GIVEN a team lead approves 30.00 EUR in a ticket
    ticket_id = simulator.seed_ticket(
        {
            "payment_provider": "stripe",
            "payment_id": client.create_payment(8_000, "EUR"),
            "amount": "30.00",
            "currency": "EUR",
            "customer_email": customer,
            "customer_name": "Ada Lovelace",
            "approver_role": "team_lead",
        }
    )
    simulator.agent_action(ticket_id, "approve")
    refund_id = ticket_refund_id(platform, ticket_id)
    wait_until_stored(context, refund_id)
    # WHEN the refund completes
    assert client.wait_for(refund_id, DONE, timeout=90)["status"] == "COMPLETED"
    # THEN the ticket has one public reply: the money is on its way, the amount, the refund id
    view = wait_for_notes(context, ticket_id, lambda notes: any("Refund completed" in note for note in notes))
    replies = [text for text in view["public"] if "refundflow:reply:" in text]
    assert len(replies) == 1, view["public"]
    assert "30.00 EUR" in replies[0]
    assert refund_id in replies[0]
    assert not any("refundflow:reply:" in note for note in view["notes"])
    # AND no e-mail went to the customer (notify left it to the ticket)
    eventually(lambda: queue_drained(stack, "CustomerNotificationsQueue"), what="the customer queue drained")
    assert sent_emails(to=customer) == []


def test_a_web_shop_refund_is_one_signed_post_to_the_merchant_and_no_email(
    orders: Orders, stack: DevStack, sent_emails: Any
) -> None:
    merchant = stack.simulators["merchant"]
    # GIVEN the merchant's endpoint refuses the first delivery (a 503: it is being deployed)
    merchant.inject_fault("receive", "transient")
    order = orders.paid(4_200, name="merchant-webhook")
    # WHEN the web shop asks for a refund of 42.00 EUR and it completes
    refund_id = orders.submit(Orders.request(order, system=MERCHANT_SHOP))
    assert orders.settle(refund_id)["status"] == "COMPLETED"
    # THEN the merchant's system has one message about it, signed (its receiver verified it), after two attempts
    # that carried the same webhook-id
    (message,) = eventually(lambda: merchant.messages_about(refund_id), timeout=60, what="the merchant's message")
    assert message["type"] == "refund.issued"
    assert message["webhook_id"] == f"msg_{refund_id}_issued"
    assert message["data"]["amount"] == {"minor_units": 4_200, "currency": "EUR"}
    assert message["data"]["customer"]["email"] == order.customer
    attempts = [
        request["headers"].get("Webhook-Id")
        for request in merchant.requests_seen
        if request["path"] == "/webhooks/refunds" and refund_id in request["body"]
    ]
    assert attempts == [f"msg_{refund_id}_issued"] * 2
    assert merchant.refused == []
    # AND the customer got no e-mail
    eventually(lambda: queue_drained(stack, "CustomerNotificationsQueue"), what="the customer queue drained")
    assert merchant.messages_about(refund_id)[0]["attempts"] == 1
    assert sent_emails(to=order.customer) == []


def test_an_api_refund_without_ticket_or_webhook_gets_one_email(
    orders: Orders, stack: DevStack, sent_emails: Any
) -> None:
    merchant = stack.simulators["merchant"]
    order = orders.paid(1_900, name="one-email")
    refund_id = orders.submit(Orders.request(order))  # the returns portal: not the merchant webhook's source
    assert orders.settle(refund_id)["status"] == "COMPLETED"
    eventually(lambda: sent_emails(to=order.customer), what="the customer's e-mail")
    eventually(lambda: queue_drained(stack, "CustomerNotificationsQueue"), what="the customer queue drained")
    assert [mail["template"] for mail in sent_emails(to=order.customer)] == [ISSUED]
    assert merchant.messages_about(refund_id) == []
