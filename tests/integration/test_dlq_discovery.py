"""``refundflow dlq`` on moto: the dead-letter queues come from the stack's resources (every queue another queue's
RedrivePolicy names, every queue a rule target dead-letters into), not from a list; ``copy`` sends each message
back where it came from, an EventBridge dead letter to the target its TARGET_ARN names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from refundflow_cli.app import app
from refundflow_cli.errors import Exit
from refundflow_cli.target import Target

REGION = "us-east-1"
BUS = "refunds"


class MiniStack:
    """Queues and rules shaped like the template's: a notification queue and its DLQ (SQS redrive and the rule's
    dead letters), a books external-refunds queue and its DLQ, two help-desk write-back queues whose rules
    dead-letter into one shared queue only EventBridge uses, and a queue nobody dead-letters into."""

    def __init__(self) -> None:
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.events = boto3.client("events", region_name=REGION)
        self.events.create_event_bus(Name=BUS)
        self.urls: dict[str, str] = {}
        self.resources: list[dict[str, str]] = []
        for logical_id, dead_letters in (
            ("OpsNotificationsDeadLetterQueue", None),
            ("OpsNotificationsQueue", "OpsNotificationsDeadLetterQueue"),
            ("BooksXeroExternalRefundsDeadLetterQueue", None),
            ("BooksXeroExternalRefundsQueue", "BooksXeroExternalRefundsDeadLetterQueue"),
            ("TicketEventsUndeliveredQueue", None),
            ("TicketZendeskWriteBackQueue", None),
            ("TicketGorgiasWriteBackQueue", None),
            ("SettlementWorkQueue", None),
        ):
            attributes = (
                {"RedrivePolicy": json.dumps({"deadLetterTargetArn": self.arn(dead_letters), "maxReceiveCount": 5})}
                if dead_letters
                else {}
            )
            url = self.sqs.create_queue(QueueName=f"mini-{logical_id}", Attributes=attributes)["QueueUrl"]
            self.urls[logical_id] = url
            self.resources.append(
                {"LogicalResourceId": logical_id, "ResourceType": "AWS::SQS::Queue", "PhysicalResourceId": url}
            )
        for logical_id, queue, dead_letters in (
            ("OpsNotificationsRule", "OpsNotificationsQueue", "OpsNotificationsDeadLetterQueue"),
            ("TicketZendeskRule", "TicketZendeskWriteBackQueue", "TicketEventsUndeliveredQueue"),
            ("TicketGorgiasRule", "TicketGorgiasWriteBackQueue", "TicketEventsUndeliveredQueue"),
        ):
            name = f"mini-{logical_id}"
            self.events.put_rule(Name=name, EventBusName=BUS, EventPattern=json.dumps({"source": ["refundflow"]}))
            self.events.put_targets(
                Rule=name,
                EventBusName=BUS,
                Targets=[{"Id": "t", "Arn": self.arn(queue), "DeadLetterConfig": {"Arn": self.arn(dead_letters)}}],
            )
            self.resources.append(
                {
                    "LogicalResourceId": logical_id,
                    "ResourceType": "AWS::Events::Rule",
                    "PhysicalResourceId": f"{BUS}|{name}",
                }
            )

    @staticmethod
    def arn(logical_id: str) -> str:
        return f"arn:aws:sqs:{REGION}:123456789012:mini-{logical_id}"

    def messages(self, logical_id: str) -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=self.urls[logical_id], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        return received


@pytest.fixture
def mini(monkeypatch: pytest.MonkeyPatch) -> Iterator[MiniStack]:
    with mock_aws():
        built = MiniStack()
        description = {"StackName": "mini", "Region": REGION, "Outputs": {}, "Resources": built.resources}
        monkeypatch.setattr(Target, "description", property(lambda _self: description))
        monkeypatch.setattr(Target, "client", lambda _self, service: boto3.client(service, region_name=REGION))
        yield built


def cli(*arguments: str, expect: int = 0) -> Any:
    result = CliRunner().invoke(app, ["dlq", *arguments, "--json"])
    assert result.exit_code == expect, result.output
    return json.loads(result.stdout)


def test_the_dead_letter_queues_are_the_ones_something_dead_letters_into(mini: MiniStack) -> None:
    queues = {queue["name"]: queue for queue in cli("list")["queues"]}
    assert set(queues) == {"OpsNotifications", "BooksXeroExternalRefunds", "TicketEventsUndelivered"}
    assert queues["OpsNotifications"]["sources"] == [mini.urls["OpsNotificationsQueue"]]
    assert queues["OpsNotifications"]["dead_lettered_targets"] == [mini.arn("OpsNotificationsQueue")]
    assert queues["TicketEventsUndelivered"]["sources"] == []
    assert queues["TicketEventsUndelivered"]["dead_lettered_targets"] == sorted(
        [mini.arn("TicketZendeskWriteBackQueue"), mini.arn("TicketGorgiasWriteBackQueue")]
    )
    assert {queue["depth"] for queue in queues.values()} == {0}


def test_copy_sends_each_message_back_where_it_came_from(mini: MiniStack) -> None:
    # GIVEN a message the books queue's consumer gave up on, and two events EventBridge could not deliver to the
    # help desks' queues (with the attributes EventBridge adds), and one naming a queue outside the stack
    mini.sqs.send_message(QueueUrl=mini.urls["BooksXeroExternalRefundsDeadLetterQueue"], MessageBody='{"book": 1}')

    def dead_letter(body: str, target_arn: str) -> None:
        attributes = {
            "RULE_ARN": {"DataType": "String", "StringValue": "arn:aws:events:us-east-1:123456789012:rule/refunds/x"},
            "TARGET_ARN": {"DataType": "String", "StringValue": target_arn},
            "ERROR_CODE": {"DataType": "String", "StringValue": "SDKClientException"},
        }
        mini.sqs.send_message(
            QueueUrl=mini.urls["TicketEventsUndeliveredQueue"], MessageBody=body, MessageAttributes=attributes
        )

    dead_letter('{"to": "zendesk"}', mini.arn("TicketZendeskWriteBackQueue"))
    dead_letter('{"to": "gorgias"}', mini.arn("TicketGorgiasWriteBackQueue"))
    dead_letter('{"to": "elsewhere"}', "arn:aws:sqs:us-east-1:123456789012:not-in-the-stack")
    listed = {queue["name"]: queue["depth"] for queue in cli("list")["queues"]}
    assert (listed["BooksXeroExternalRefunds"], listed["TicketEventsUndelivered"]) == (1, 3)
    # WHEN both are redriven (locally: copy)
    redriven = {item["name"]: item for item in cli("redrive")["redriven"]}
    # THEN the books message is back on the books queue, each event on its own help desk's queue without
    # EventBridge's attributes, and the stranger stays for a person
    assert (redriven["BooksXeroExternalRefunds"]["moved"], redriven["TicketEventsUndelivered"]["moved"]) == (1, 2)
    assert redriven["TicketEventsUndelivered"]["left"] == 1
    assert [m["Body"] for m in mini.messages("BooksXeroExternalRefundsQueue")] == ['{"book": 1}']
    zendesk = mini.messages("TicketZendeskWriteBackQueue")
    assert [m["Body"] for m in zendesk] == ['{"to": "zendesk"}']
    assert "MessageAttributes" not in zendesk[0]
    assert [m["Body"] for m in mini.messages("TicketGorgiasWriteBackQueue")] == ['{"to": "gorgias"}']


def test_a_queue_only_eventbridge_dead_letters_into_refuses_a_move_task(mini: MiniStack) -> None:
    refused = cli("redrive", "TicketEventsUndelivered", "--method", "move-task", expect=Exit.NOT_ALLOWED)
    assert refused["error"]["code"] == "move_task_unsupported"


def test_the_table_says_where_each_queue_sends_its_messages_back(mini: MiniStack) -> None:
    result = CliRunner().invoke(app, ["dlq", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") >= 4}
    assert "mini-BooksXeroExternalRefundsQueue" in rows["BooksXeroExternalRefunds"]
    assert "mini-TicketGorgiasWriteBackQueue (EventBridge)" in result.stdout
    assert "mini-TicketZendeskWriteBackQueue (EventBridge)" in result.stdout
    assert "SettlementWork" not in result.stdout
