"""R16, after every other end-to-end test: what the suite left behind holds no card numbers anywhere,
and customer e-mail addresses only where they belong (the refund's own record), never in events,
queues, dead-letter queues, ops e-mails or logs.

Under xdist the scan runs on every worker, last, over that worker's own stack, log lines and bus events
(tests/e2e/conftest.py): together the workers' scans read what every test left."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from local.stack import DevStack
from tests.e2e.conftest import Observed

# A primary account number as scanners look for one: 13 to 19 digits (spaces or dashes between groups)
# standing alone, with a card network's leading digit, and a valid Luhn check digit.
_PAN_CANDIDATE = re.compile(r"(?<![0-9A-Za-z_])[2-6](?:[ -]?\d){12,18}(?![0-9A-Za-z_])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Numbers the suite tried to smuggle in (and that must have been refused everywhere).
SEEDED_CARDS = ("4242424242424242", "5555555555554444")
# The refund's own items (its request and its current state): where its customer's address belongs.
OWN = {"REQUEST", "STATE"}
QUEUES = (
    "CustomerNotificationsQueue",
    "CustomerNotificationsDeadLetterQueue",
    "OpsNotificationsQueue",
    "OpsNotificationsDeadLetterQueue",
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def card_shaped(candidate: str) -> bool:
    """Written whole, or in the groups card numbers are written in (4-4-4-4, 4-6-5, 4-6-4...): a platform id made
    of longer digit groups, such as Amazon Pay's ``S01-6237934-5899168-C…``, is not a card number."""
    groups = re.split(r"[ -]", candidate)
    return len(groups) == 1 or all(len(group) <= 6 for group in groups)


def card_numbers(text: str) -> list[str]:
    found = [
        re.sub(r"\D", "", match.group(0)) for match in _PAN_CANDIDATE.finditer(text) if card_shaped(match.group(0))
    ]
    squeezed = re.sub(r"[ -]", "", text)
    return [digits for digits in found if luhn_valid(digits)] + [card for card in SEEDED_CARDS if card in squeezed]


def as_text(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def table_items(stack: DevStack, logical_id: str) -> list[dict[str, Any]]:
    deserializer = TypeDeserializer()
    pages = stack.client("dynamodb").get_paginator("scan").paginate(TableName=stack.stack.physical_name(logical_id))
    return [
        {key: deserializer.deserialize(value) for key, value in item.items()}
        for page in pages
        for item in page.get("Items", [])
    ]


def queue_messages(stack: DevStack, logical_id: str) -> list[str]:
    sqs = stack.client("sqs")
    url = sqs.get_queue_url(QueueName=stack.stack.physical_name(logical_id))["QueueUrl"]
    bodies: dict[str, str] = {}
    for _ in range(100):
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=900).get("Messages", [])
        new = {message["MessageId"]: message["Body"] for message in batch if message["MessageId"] not in bodies}
        if not new:
            break
        bodies.update(new)
    return list(bodies.values())


def leaks(places: dict[str, list[str]], customers: set[str]) -> dict[str, dict[str, list[str]]]:
    """Card numbers found anywhere, and customers' addresses found anywhere but their ``refund records``."""
    cards = {where: found for where, texts in places.items() if (found := [c for t in texts for c in card_numbers(t)])}
    contacts = {
        where: found
        for where, texts in places.items()
        if where != "refund records"
        and (found := sorted({address for text in texts for address in _EMAIL.findall(text) if address in customers}))
    }
    return {"card numbers": cards, "customer addresses": contacts}


def test_the_scan_finds_a_planted_card_number_and_contact_detail() -> None:
    # GIVEN what a leaking suite would leave: a card written in groups in a log line, a customer's address in a
    # bus event, a seeded card squeezed into a queue message, and the address where it belongs
    customer = "robin.4f2a@example.com"
    places = {
        "refund records": [as_text({"customer": {"email": customer}})],
        "bus events": [as_text({"detail": {"refund_id": "rf_1", "to": customer}})],
        "queue OpsNotificationsQueue": [as_text({"note": "card 5555-5555-5555-4444 refused"})],
        "logs": ["refund rf_1 paid with 4000 0566 5566 5556", "payout S01-6237934-5899168-C123 settled"],
    }
    # WHEN the after-suite scan reads it THEN it reports each leak where it is, and nothing else
    assert leaks(places, {customer}) == {
        "card numbers": {
            "queue OpsNotificationsQueue": ["5555555555554444", "5555555555554444"],
            "logs": ["4000056655665556"],
        },
        "customer addresses": {"bus events": [customer]},
    }


@pytest.mark.after_suite
def test_no_card_numbers_and_no_customer_emails_outside_the_refund_record(
    observed: Observed, stack: DevStack, sent_emails: Any
) -> None:
    # GIVEN everything the suite left: both tables, the bus events, the queues and DLQs, ops mail and logs
    refunds = table_items(stack, "RefundsTable")
    idempotency = table_items(stack, "IdempotencyTable")
    events = observed.bus_events()
    messages = {logical_id: queue_messages(stack, logical_id) for logical_id in QUEUES}
    ops_mail = sent_emails(to="ops@example.com")
    logs = list(observed.log_lines)
    if not refunds:
        pytest.skip("nothing to scan: this test reads what the rest of the end-to-end suite left behind")
    assert events, "refunds were made, but no event was seen on the bus"
    assert logs, "refunds were made, but nothing was logged"
    records = [item for item in refunds if str(item.get("pk", "")).startswith("REFUND#") and item.get("sk") in OWN]
    own_items = {id(item) for item in records}
    customers = {item["customer"]["email"] for item in records if isinstance(item.get("customer"), dict)}
    assert customers, "refunds without customers: the scan would prove nothing"

    places: dict[str, list[str]] = {
        "refund records": [as_text(item) for item in records],
        "other refunds-table items": [as_text(item) for item in refunds if id(item) not in own_items],
        "idempotency records": [as_text(item) for item in idempotency],
        "bus events": [as_text(event) for event in events],
        **{f"queue {name}": bodies for name, bodies in messages.items()},
        "ops e-mails": [as_text(mail["data"]) for mail in ops_mail],
        "logs": logs,
    }

    # THEN no card number is stored, published, queued, mailed or logged anywhere
    # AND customer e-mail addresses appear only in the refund records they belong to
    assert leaks(places, customers) == {"card numbers": {}, "customer addresses": {}}

    # AND the events carry what consumers need without contact details
    # (a reconciliation mismatch that belongs to no refund names its settlement line instead)
    refund_events = [event for event in events if event["detail"].get("refund_id") is not None]
    unowned = [event for event in events if event["detail"].get("refund_id") is None]
    assert all(event["detail"]["refund_id"].startswith("rf_") for event in refund_events)
    assert all(
        event["detail-type"] == "ReconciliationMismatch" and event["detail"]["match_class"] and event["detail"]["file"]
        for event in unowned
    )
    assert not any("customer" in event["detail"] for event in events)
