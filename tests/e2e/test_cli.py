"""The ``refundflow`` CLI against the local stack, as an operator and a developer use it (typer's CliRunner,
in-process; the CLI reaches the stack only over HTTP and its AWS endpoint, as from another terminal)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from local.stack import DevStack
from refundflow_cli.app import app
from refundflow_cli.errors import Exit
from tests.e2e.conftest import Observed
from tests.e2e.harness import E2EClient, Orders, PaidOrder, eventually

ROOT = Path(__file__).resolve().parents[2]
XERO_REFUSES_CREDIT_NOTES = {
    "method": "PUT",
    "path": "^/api\\.xro/2\\.0/CreditNotes$",
    "status": 400,
    "when": "before",
    "times": -1,
    "body": {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": [{"ValidationErrors": [{"Message": "Account code '200' is archived"}]}],
    },
}


@pytest.fixture
def cli(stack: DevStack) -> Any:
    runner = CliRunner()

    def run(*arguments: str, expect: int = 0) -> Any:
        result = runner.invoke(app, ["--api-url", stack.api_url, *arguments], catch_exceptions=False)
        assert result.exit_code == expect, f"exit {result.exit_code}, expected {expect}:\n{result.output}"
        return result

    return run


def as_json(result: Any) -> Any:
    return json.loads(result.stdout)


def sent(cli: Any, order: PaidOrder, *more: str, expect: int = 0) -> Any:
    """``refundflow send`` for all of the order's payment, followed, as JSON."""
    arguments = ("send", "--payment-id", order.payment_id, "--reason", "damaged", "--email", order.customer)
    return as_json(cli(*arguments, *more, "--json", expect=expect))


def test_send_signs_as_the_curl_source_and_follows_the_refund_to_completed(cli: Any, orders: Orders) -> None:
    order = orders.paid(4200, invoice=False, name="cli-send")
    document = sent(cli, order)
    refund = document["refund"]
    assert document["accepted"]["duplicate"] is False
    assert (refund["status"], refund["amount"]) == ("COMPLETED", {"minor_units": 4200, "currency": "EUR"})
    assert refund["source"]["system"] == "curl"
    assert refund["audit"]["intact"] is True
    # the human view of the same refund: amounts, references, timeline, the audit verdict
    shown = cli("refunds", "show", refund["refund_id"]).stdout
    assert refund["refund_id"] in shown
    assert "42.00 EUR" in shown
    assert "COMPLETED" in shown
    assert "audit chain verified" in shown
    assert "RefundCompleted" not in shown


def test_send_from_a_file_prints_the_id_and_a_second_send_is_the_same_refund(
    cli: Any, orders: Orders, tmp_path: Path
) -> None:
    order = orders.paid(1500, invoice=False, name="cli-file")
    request = Orders.request(order, system="helpdesk", amount=1000)
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    first = cli("send", str(path))
    second = as_json(cli("send", str(path), "--no-follow", "--json"))
    refund_id = second["accepted"]["refund_id"]
    assert second["accepted"]["duplicate"] is True
    assert f"refund {refund_id}" in first.stdout
    assert "signed as helpdesk" in first.stdout
    assert "COMPLETED" in first.stdout


def test_a_refund_that_needs_approval_is_listed_then_approved_by_a_team_lead(cli: Any, orders: Orders) -> None:
    # GIVEN two refunds above the auto-approval limit: the CLI stops following them (exit 11)
    refund_ids = []
    for _ in range(2):
        order = orders.paid(12000, invoice=False, name="cli-approve")
        stopped = sent(cli, order, expect=Exit.WAITING_FOR_PERSON)
        assert stopped["refund"]["status"] == "PENDING_APPROVAL"
        refund_ids.append(stopped["refund"]["refund_id"])
    # WHEN an operator lists what waits for approval, one per page
    first = as_json(cli("refunds", "list", "--status", "PENDING_APPROVAL", "--since", "10m", "--limit", "1", "--json"))
    assert len(first["refunds"]) == 1
    assert first["next"]
    seen = {first["refunds"][0]["refund_id"]}
    page = first
    while page["next"]:
        page = as_json(
            cli(
                "refunds",
                "list",
                "-s",
                "PENDING_APPROVAL",
                "--since",
                "10m",
                "--limit",
                "1",
                "--next",
                page["next"],
                "--json",
            )
        )
        seen |= {row["refund_id"] for row in page["refunds"]}
    # THEN both are there, newest change first, and an --all listing agrees
    assert set(refund_ids) <= seen
    everything = as_json(cli("refunds", "list", "-s", "PENDING_APPROVAL", "--since", "10m", "--all", "--json"))
    assert {row["refund_id"] for row in everything["refunds"]} == seen
    assert everything["next"] is None
    assert all(row["required_role"] == "agent" for row in everything["refunds"] if row["refund_id"] in refund_ids)
    # WHEN one is approved by a team lead and the other rejected with a note
    approved = as_json(cli("approve", refund_ids[0], "--as", "lee:team_lead", "--note", "photos checked", "--json"))
    rejected = as_json(cli("reject", refund_ids[1], "--note", "not ours", "--as", "kim:agent", "--json"))
    # THEN the first is paid and completed, the second rejected; neither is listed any more
    assert approved["refund"]["status"] == "COMPLETED"
    assert approved["refund"]["approval"]["approver"] == "lee"
    assert (rejected["refund"]["status"], rejected["refund"]["approval"]["note"]) == ("REJECTED", "not ours")
    after = as_json(cli("refunds", "list", "-s", "PENDING_APPROVAL", "--since", "10m", "--all", "--json"))
    assert not set(refund_ids) & {row["refund_id"] for row in after["refunds"]}


def test_approving_a_completed_refund_is_the_apis_refusal_in_one_line(cli: Any, orders: Orders) -> None:
    order = orders.paid(900, invoice=False, name="cli-refused")
    refund_id = sent(cli, order)["refund"]["refund_id"]
    result = cli("approve", refund_id, expect=Exit.REFUSED)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error[")
    assert refund_id in line
    assert "HTTP 409" in line
    document = as_json(cli("approve", refund_id, "--json", expect=Exit.REFUSED))
    assert document["error"]["code"] == line[len("error[") : line.index("]")]
    assert document["exit_code"] == Exit.REFUSED


def test_retry_books_again_after_the_books_refused_and_refuses_what_is_final(
    cli: Any, client: E2EClient, orders: Orders
) -> None:
    # GIVEN a refund whose credit note Xero refuses: the money moved, the refund needs a person
    order = orders.paid(2600, name="cli-retry")
    assert order.invoice_id
    with client.faults("xero", XERO_REFUSES_CREDIT_NOTES):
        stopped = sent(cli, order, "--invoice-id", order.invoice_id, expect=Exit.WAITING_FOR_PERSON)
        refund_id = stopped["refund"]["refund_id"]
        assert (stopped["refund"]["status"], stopped["refund"]["attention_reason"]) == (
            "NEEDS_ATTENTION",
            "books_rejected",
        )
        listed = as_json(cli("refunds", "list", "-s", "NEEDS_ATTENTION", "--since", "10m", "--all", "--json"))
        assert {"refund_id": refund_id, "why": "books_rejected"}.items() <= next(
            row for row in listed["refunds"] if row["refund_id"] == refund_id
        ).items()
        planned = as_json(cli("retry", refund_id, "--check", "--json"))
        assert planned["action"] == "books_retry"
    # WHEN the cause is fixed (the fault cleared) and the operator retries
    retried = as_json(cli("retry", refund_id, "--json"))
    # THEN the books step ran again: a credit note, the refund completed, Stripe paid once
    refund = retried["refund"]
    assert refund["status"] == "COMPLETED"
    assert refund["credit_document"]["system"] == "xero"
    assert len(client.credit_notes(refund_id)) == 1
    assert len(client.stripe_refunds(order.payment_id)) == 1
    # AND a completed refund cannot be retried: one line, exit 6
    again = cli("retry", refund_id, expect=Exit.NOT_ALLOWED)
    assert again.stderr.strip() == f"error[retry_not_allowed]: {refund_id}: the refund is COMPLETED: nothing to retry"


def template_dead_letter_queues(stack: DevStack) -> set[str]:
    """The names of every queue template.yaml makes a dead-letter target (a RedrivePolicy's or a rule target's),
    read from the template itself: what ``dlq list`` must find on the stack."""
    named: set[str] = set()
    for resource in stack.stack.resources.values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in properties:
            named.add(properties["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0])
        if resource["Type"] == "AWS::Events::Rule":
            named.update(
                target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
                for target in properties["Targets"]
                if "DeadLetterConfig" in target
            )
    return {name.removesuffix("DeadLetterQueue").removesuffix("Queue") for name in named}


def test_dlq_lists_depths_and_redrives_a_message_back_to_its_queue(
    cli: Any, stack: DevStack, orders: Orders, observed: Observed, sent_emails: Any
) -> None:
    # GIVEN an ops notification that landed in the ops DLQ (as after an outage); its e-mail was sent before
    order = orders.paid(12500, invoice=False, name="cli-dlq")
    refund_id = sent(cli, order, expect=Exit.WAITING_FOR_PERSON)["refund"]["refund_id"]
    event = eventually(
        lambda: next(
            (
                e
                for e in observed.bus_events()
                if e["detail"]["refund_id"] == refund_id and e["detail-type"] == "RefundApprovalRequested"
            ),
            None,
        ),
        what="the approval request on the bus",
    )
    eventually(lambda: [m for m in sent_emails() if m["data"].get("refund_id") == refund_id], what="the ops e-mail")
    mails_before = len(sent_emails())
    queues = {q["name"]: q for q in as_json(cli("dlq", "list", "--json"))["queues"]}
    assert set(queues) == template_dead_letter_queues(stack)
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=queues["OpsNotifications"]["url"], MessageBody=json.dumps(event))
    peeked = as_json(cli("dlq", "list", "--peek", "10", "--json"))
    ops = next(q for q in peeked["queues"] if q["name"] == "OpsNotifications")
    assert ops["depth"] >= 1
    assert refund_id in {m["refund_id"] for m in ops["messages"]}
    # WHEN it is redriven
    moved = as_json(cli("dlq", "redrive", "OpsNotifications", "--json"))
    # THEN it left the DLQ for the ops queue, was consumed there, and e-mailed nobody twice
    assert moved["redriven"] == [{"name": "OpsNotifications", "method": "copy", "moved": ops["depth"], "left": 0}]
    source_url = stack.stack.queue_url("OpsNotificationsQueue", stack.aws_endpoint)

    def drained() -> bool:
        attributes = sqs.get_queue_attributes(
            QueueUrl=source_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}

    eventually(drained, what="the ops queue consumed")
    after = {q["name"]: q["depth"] for q in as_json(cli("dlq", "list", "--json"))["queues"]}
    assert after["OpsNotifications"] == 0
    assert len(sent_emails()) == mails_before
    unknown = cli("dlq", "redrive", "Nope", expect=Exit.NOT_FOUND)
    assert unknown.stderr.startswith("error[unknown_queue]")


def test_events_replay_resends_the_archived_events_of_a_time_range(cli: Any, stack: DevStack, orders: Orders) -> None:
    # GIVEN a queue that receives only replayed refund events
    sqs, events = stack.client("sqs"), stack.client("events")
    name = f"cli-replay-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.env()["EVENT_BUS_NAME"]
    events.put_rule(
        Name=name,
        EventBusName=bus,
        EventPattern=json.dumps({"source": ["refundflow"], "replay-name": [{"exists": True}]}),
    )
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "replayed", "Arn": arn}])
    # AND a refund whose events were archived
    began = datetime.now(UTC) - timedelta(seconds=1)
    order = orders.paid(700, invoice=False, name="cli-replay")
    refund_id = sent(cli, order)["refund"]["refund_id"]
    # WHEN the operator replays from before the refund until now
    replayed = as_json(cli("events", "replay", "--from", began.isoformat(), "--to", "now", "--json"))
    # THEN the replay completed and the refund's events came by again, marked as replayed
    assert replayed["state"] == "COMPLETED"
    assert replayed["archive"].endswith("RefundsBusArchive")

    def replayed_types() -> set[str]:
        bodies = [
            json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        ]
        return {body["detail-type"] for body in bodies if body["detail"]["refund_id"] == refund_id}

    # (the archive holds what went on the bus: of a straight-through refund from the generic intake, only the
    # RefundIssued a rule routes, unless PublishAllStatusEvents)
    seen: set[str] = set()
    eventually(lambda: seen.update(replayed_types()) or "RefundIssued" in seen, what="the replayed events")
    assert seen == {"RefundIssued"}
    backwards = cli("events", "replay", "--from", "now", "--to", "1h", expect=Exit.USAGE)
    assert backwards.stderr.startswith("error[invalid_range]")


def test_policy_check_reuses_the_policy_tool_with_its_exit_codes(cli: Any, tmp_path: Path) -> None:
    policy = ROOT / "layers/common/refundflow/policy/default_policy.yaml"
    checked = as_json(
        cli("policy", "check", str(policy), "--samples", str(ROOT / "events/policy"), "--expect", "--json")
    )
    assert checked["ok"] is True
    assert any("all expectations met" in line for line in checked["output"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: x\nrules: 3\n")
    invalid = as_json(cli("policy", "check", str(broken), "--json", expect=Exit.POLICY_INVALID))
    assert invalid["ok"] is False
    assert invalid["problems"]


def test_errors_are_one_line_with_the_problem_code_and_a_documented_exit(cli: Any) -> None:
    missing = cli("refunds", "show", "rf_" + "0" * 32, expect=Exit.NOT_FOUND)
    [line] = missing.stderr.strip().splitlines()
    assert line.startswith("error[")
    assert "HTTP 404" in line
    nowhere = CliRunner().invoke(app, ["--api-url", "http://127.0.0.1:9", "dlq", "list"])
    assert nowhere.exit_code == Exit.UNAVAILABLE
    invalid = cli("refunds", "show", "rf_nope", expect=Exit.REFUSED)
    assert "path.refund_id: String should match pattern" in invalid.stderr
    assert nowhere.stderr.startswith("error[local_stack_unreachable]: no local stack at http://127.0.0.1:9")


def test_velocity_backfill_counts_a_refund_stored_before_the_counters_once(
    cli: Any, stack: DevStack, orders: Orders
) -> None:
    from refundflow.adapters.dynamodb import customer_key

    # GIVEN a completed refund made to look stored before the velocity counters: no marker, no counter
    order = orders.paid(3100, invoice=False, name="cli-velocity")
    refund_id = sent(cli, order)["refund"]["refund_id"]
    dynamodb, table = stack.client("dynamodb"), stack.stack.physical_name("RefundsTable")
    customer = {":pk": {"S": f"CUSTOMER#{customer_key(order.customer)}"}}

    def counters() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = dynamodb.query(
            TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues=customer
        )["Items"]
        return items

    dynamodb.update_item(
        TableName=table, Key={"pk": {"S": f"REFUND#{refund_id}"}, "sk": {"S": "STATE"}}, UpdateExpression="REMOVE vc"
    )
    for item in counters():
        dynamodb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
    # WHEN the backfill runs, dry first, then for real, then again
    dry = as_json(cli("velocity", "backfill", "--dry-run", "--json"))["backfill"]
    assert counters() == []
    done = as_json(cli("velocity", "backfill", "--json"))["backfill"]
    again = as_json(cli("velocity", "backfill", "--json"))["backfill"]
    # THEN the refund is in its customer's counter once, with its amount
    assert dry["counted"] == done["counted"] >= 1
    assert again["uncounted"] == 0
    (day,) = counters()
    assert (day["refunds"]["N"], day["amount_EUR"]["N"]) == ("1", "3100")
