"""What the policy step's velocity read costs as a customer's history grows: the whole last year from the
by-customer index (how velocity was read before the counters) against the day counters plus the edge days
(``domain.policy_step.customer_velocity``), in DynamoDB read units priced by ``benchmarks.meters`` on moto with
the template's table. Prints JSON.

Usage: python -m benchmarks.velocity_history [--refunds 0 50 500]

Each earlier refund of the customer is 25.00 EUR, validated, spread evenly over the last 365 days (so every few
days hold one, and a window's first day may too).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from moto import mock_aws

from benchmarks.meters import Meter
from local.cfn import Stack
from refundflow.adapters.dynamodb import RefundRepository
from refundflow.audit import AuditKeys
from refundflow.domain.policy_step import customer_velocity
from refundflow.ids import derive_refund_id
from refundflow.models import Refund
from refundflow.policy.inputs import HISTORY_DAYS
from refundflow.status import RefundStatus

NOW = datetime(2025, 3, 1, 15, 30, tzinfo=UTC)
EMAIL = "frequent@example.com"
TABLE_PROPERTIES = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")


def a_refund(reference: str) -> Refund:
    return Refund.model_validate(
        {
            "refund_id": derive_refund_id("bench", reference),
            "status": "RECEIVED",
            "version": 1,
            "created_at": NOW,
            "updated_at": NOW,
            "payment": {"provider": "stripe", "payment_id": f"pi_{reference}"},
            "requested_amount": {"minor_units": 2_500, "currency": "EUR"},
            "reason": "damaged",
            "customer": {"email": EMAIL},
            "source": {"system": "bench", "reference": reference},
            "source_platform": "bench",
            "request_fingerprint": "f" * 64,
            "correlation_id": "bench",
        }
    )


class Clock:
    def __init__(self) -> None:
        self.current = NOW

    def __call__(self) -> datetime:
        self.current += timedelta(milliseconds=1)
        return self.current


def measure(earlier: int) -> dict[str, Any]:
    with mock_aws():
        client = boto3.session.Session(region_name="us-east-1").client("dynamodb")
        stack = Stack.from_template("bench")
        properties = stack.resolve(stack.resources["RefundsTable"]["Properties"])
        client.create_table(TableName="refunds", **{key: properties[key] for key in TABLE_PROPERTIES})
        clock = Clock()
        keys = AuditKeys(keys={"bench": bytes(range(32))}, current="bench")  # a benchmark key, signs nothing real
        repository = RefundRepository("refunds", dynamodb=client, now=clock, audit_keys=lambda: keys)
        for index in range(earlier):
            clock.current = NOW - timedelta(days=HISTORY_DAYS) + timedelta(days=HISTORY_DAYS * index / earlier)
            stored = repository.create(a_refund(f"E{index}"), actor="bench", delivery=None).refund
            repository.transition(stored, RefundStatus.VALIDATED, actor="bench")
        clock.current = NOW - timedelta(hours=1)
        refund = repository.create(a_refund("NEW"), actor="bench", delivery=None).refund
        meter = Meter().start()
        try:
            repository.customer_history(EMAIL, NOW - timedelta(days=HISTORY_DAYS))
            whole_history = meter.snapshot()["dynamodb_read_units"]
            meter.reset()
            velocity = customer_velocity(repository, refund, NOW)
            counters = meter.snapshot()
        finally:
            meter.stop()
    return {
        "earlier_refunds": earlier,
        "whole_history_read_units": whole_history,
        "counters_read_units": counters["dynamodb_read_units"],
        "counters_queries": counters["calls"].get("dynamodb:Query", 0),
        "counter_days": len(velocity.days),
        "edge_days_read": len(velocity.edge_days),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.velocity_history")
    parser.add_argument("--refunds", type=int, nargs="+", default=[0, 50, 500])
    args = parser.parse_args(argv)
    return {"benchmark": "velocity_history", "results": [measure(count) for count in args.refunds]}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
