"""The scheduled MeasureQueuesFunction on the local stack: a refund waiting for approval is counted in the
gauges the ops dashboard and the oldest-approval alarm read (EMF documents on stdout, as Lambda writes them)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.stack import DevStack
from tests.e2e.harness import E2EClient, Orders
from tests.e2e.test_approvals import AGENT_AMOUNT, pending

# What EventBridge Scheduler's rate rule sends (the handler reads nothing of it).
SCHEDULED_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/refundflow-measure-queues"],
    "detail": {},
}


def gauges(stack: DevStack, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The function's answer and the EMF documents it printed, by status."""
    capsys.readouterr()
    answer = stack.functions.invoke("MeasureQueuesFunction", SCHEDULED_EVENT)
    documents = {}
    for line in capsys.readouterr().out.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "RefundsWaiting" in document:
            documents[document["status"]] = document
    return answer, documents


def test_a_refund_waiting_for_approval_is_counted_and_aged_by_the_scheduled_gauges(
    stack: DevStack,
    client: E2EClient,
    orders: Orders,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    # GIVEN a refund the policy parked for an agent's approval
    refund_id, _ = pending(orders, client, AGENT_AMOUNT, "queue-gauges")
    assert client.refund(refund_id)["status"] == "PENDING_APPROVAL"
    # WHEN the scheduled function runs
    answer, documents = gauges(stack, capsys)
    # THEN it counted it (with whatever else the suite left waiting) and measured the oldest's age
    queues = {queue["status"]: queue for queue in answer["queues"]}
    assert set(queues) == {"PENDING_APPROVAL", "NEEDS_ATTENTION"}
    assert queues["PENDING_APPROVAL"]["count"] >= 1
    assert queues["PENDING_APPROVAL"]["oldest_age_seconds"] >= 0
    # AND published both gauges per status, in the namespace and with the dimensions the template reads
    assert set(documents) == {"PENDING_APPROVAL", "NEEDS_ATTENTION"}
    for status, document in documents.items():
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert (directive["Namespace"], directive["Dimensions"]) == ("Refundflow", [["service", "status"]])
        assert document["RefundsWaiting"] == queues[status]["count"]
        assert document["OldestWaitingAgeSeconds"] == queues[status]["oldest_age_seconds"]
    # AND it read the by-status index only
    calls = {
        (call.operation, call.params.get("IndexName"))
        for call in stack.functions.aws_calls
        if call.function == "MeasureQueuesFunction"
    }
    assert calls == {("Query", "by-status")}
