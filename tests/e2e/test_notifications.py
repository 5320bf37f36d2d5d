"""Telling people, end to end: EventBridge rules feed SQS queues, the notifier e-mails through SES; an
outage longer than the queue's retries parks the messages in the DLQ and a redrive delivers them (R13)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from local.stack import DevStack
from tests.e2e.harness import E2EClient, Orders, eventually

ISSUED = "refundflow-local-refund-issued"
OPS = "ops@example.com"


def queue_url(stack: DevStack, logical_id: str) -> str:
    sqs = stack.client("sqs")
    return str(sqs.get_queue_url(QueueName=stack.stack.physical_name(logical_id))["QueueUrl"])


def messages_about(stack: DevStack, url: str, refund_id: str) -> list[dict[str, Any]]:
    """Messages in a queue that concern ``refund_id`` (read and left there: visible again at once)."""
    sqs = stack.client("sqs")
    found: dict[str, dict[str, Any]] = {}
    for _ in range(20):
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=2).get("Messages", [])
        if not batch:
            break
        for message in batch:
            body = json.loads(message["Body"])
            if body.get("detail", {}).get("refund_id") == refund_id:
                found[message["MessageId"]] = body
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return list(found.values())


def redrive(stack: DevStack, dead_letters: str, source: str) -> int:
    """What an operator's redrive does: move every message from the DLQ back to its source queue."""
    sqs = stack.client("sqs")
    moved = 0
    while batch := sqs.receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10, VisibilityTimeout=30).get(
        "Messages", []
    ):
        for message in batch:
            sqs.send_message(QueueUrl=source, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dead_letters, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved


def issued_sent(mails: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return mails if ISSUED in {mail["template"] for mail in mails} else None


def at_least(count: int, items: list[Any]) -> list[Any] | None:
    return items if len(items) >= count else None


def test_a_completed_refund_emails_the_customer_once(
    orders: Orders, stack: DevStack, client: E2EClient, sent_emails: Any
) -> None:
    # GIVEN a refund that goes straight through (from the returns portal: no ticket, no merchant webhook)
    order = orders.paid(2100, name="mails")
    refund_id = orders.submit(Orders.request(order))
    assert orders.settle(refund_id)["status"] == "COMPLETED"
    # THEN the customer gets one e-mail, "issued", about this refund and amount, and no second one at completion
    mails = eventually(lambda: issued_sent(sent_emails(to=order.customer)), what="the customer's e-mail")
    eventually(lambda: queue_drained(stack, "CustomerNotificationsQueue"), what="the customer queue drained")
    mails = sent_emails(to=order.customer)
    assert [mail["template"] for mail in mails] == [ISSUED]
    (mail,) = mails
    assert mail["data"]["refund_id"] == refund_id
    assert "21.00" in mail["data"]["amount"]
    assert mail["to"] == [order.customer]


def queue_drained(stack: DevStack, logical_id: str) -> bool:
    """No message waits in the queue or is being handled (every event notify was given is done)."""
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=queue_url(stack, logical_id),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 0
    )


def test_approval_request_reaches_ops(orders: Orders, client: E2EClient, sent_emails: Any) -> None:
    # GIVEN a refund that needs an agent
    order = orders.paid(12_500, name="ops-mail")
    refund_id = orders.submit(Orders.request(order))
    assert client.wait_for(refund_id, {"PENDING_APPROVAL"})["status"] == "PENDING_APPROVAL"
    # THEN the ops queue carried RefundApprovalRequested to the ops mailbox, with the policy's reason
    [alert] = eventually(
        lambda: [
            mail
            for mail in sent_emails(to=OPS)
            if mail["data"].get("refund_id") == refund_id and mail["data"]["event"] == "RefundApprovalRequested"
        ],
        what="the ops alert",
    )
    assert alert["data"]["status"] == "PENDING_APPROVAL"
    assert "amount_above_auto_approve_limit" in alert["data"]["details"]
    # AND the customer was not e-mailed about an internal step
    assert sent_emails(to=order.customer) == []
    client.decide(refund_id, client.approver_token("avery.agent", "agent"), "reject", "test clean-up")


@pytest.fixture
def mail_outage(stack: DevStack) -> Iterator[Any]:
    """SES refuses to send (the sender identity is gone) until ``restore()`` is called."""
    ses = stack.client("ses")
    sender = stack.stack.parameters["NotificationSenderEmail"]
    ses.delete_identity(Identity=sender)
    restored = False

    def restore() -> None:
        nonlocal restored
        if not restored:
            ses.verify_email_identity(EmailAddress=sender)
            restored = True

    try:
        yield restore
    finally:
        restore()


def test_notifications_outlive_a_mail_outage_through_the_dlq_and_a_redrive(
    orders: Orders, stack: DevStack, sent_emails: Any, mail_outage: Any
) -> None:
    # GIVEN SES refuses every message
    order = orders.paid(1600, invoice=False, name="mail-outage")
    # WHEN a refund completes
    refund_id = orders.submit(Orders.request(order))
    assert orders.settle(refund_id)["status"] == "COMPLETED"
    # THEN after the queue's retries the customer's message waits in the dead-letter queue, not lost, not sent
    dead_letters = queue_url(stack, "CustomerNotificationsDeadLetterQueue")
    parked = eventually(
        lambda: at_least(1, messages_about(stack, dead_letters, refund_id)),
        timeout=60,
        interval=0.5,
        what="the customer message in the DLQ",
    )
    assert [message["detail-type"] for message in parked] == ["RefundIssued"]
    assert sent_emails(to=order.customer) == []
    # WHEN mail works again and the DLQ is redriven
    mail_outage()
    assert redrive(stack, dead_letters, queue_url(stack, "CustomerNotificationsQueue")) >= 1
    # THEN the message is delivered, once
    mails = eventually(lambda: issued_sent(sent_emails(to=order.customer)), what="the redriven e-mail")
    assert Counter(mail["template"] for mail in mails) == {ISSUED: 1}
    assert messages_about(stack, dead_letters, refund_id) == []
