"""The benchmark's meter prices what AWS bills: a refund's worth of DynamoDB requests on the template's refunds
table (moto), priced by hand from DynamoDB's rules, and the Secrets Manager call a client of another session
makes (as Powertools' parameters utility does)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import ClientError

from benchmarks.meters import Meter
from tests.support.fakes import Tables, moto_tables

REFUND = "REFUND#rf_1"


@pytest.fixture
def tables() -> Iterator[Tables]:
    with moto_tables() as built:
        yield built


def s(value: str) -> dict[str, str]:
    return {"S": value}


def state(status: str, updated_at: str = "2025-03-01T12:00:00Z") -> dict[str, Any]:
    """A refund's STATE item, well under 1 KB, carrying the keys of by-payment and by-customer (keys only) and, in a
    status the sparse by-status index holds, its keys (it projects created_at as well)."""
    indexed = {"gsi1pk": s(f"STATUS#{status}"), "gsi1sk": s("2025-03-01T12:05:00Z#rf_1")}
    return {
        "pk": s(REFUND),
        "sk": s("STATE"),
        "status": s(status),
        "created_at": s("2025-03-01T12:00:00Z"),
        "updated_at": s(updated_at),
        **(indexed if status in {"PENDING_APPROVAL", "NEEDS_ATTENTION"} else {}),
        "gsi2pk": s("PAYMENT#stripe#pi_1"),
        "gsi2sk": s("2025-03-01T12:00:00Z#rf_1"),
        "gsi4pk": s("CUSTOMER#c1"),
        "gsi4sk": s("2025-03-01T12:00:00Z#rf_1"),
    }


def put(table: str, item: dict[str, Any], condition: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"TableName": table, "Item": item}
    if condition:
        body["ConditionExpression"] = condition
    return {"Put": body}


def test_the_meter_agrees_with_a_hand_priced_refund(tables: Tables) -> None:
    db, table = tables.client, tables.refunds_table
    secrets = boto3.session.Session(region_name="us-east-1").client("secretsmanager")  # not boto3's default session
    secrets.create_secret(Name="audit-key", SecretString="k")
    audit = {"pk": s("AUDIT#rf_1"), "sk": s("EVENT#1"), "type": s("RefundRequested")}
    meter = Meter().start()
    try:
        # Created: STATE, REQUEST and the audit entry in a transaction: 3 items x 2 units; the STATE item puts an
        # entry in by-payment and by-customer: 2 more (RECEIVED has no by-status entry).               = 8
        request = {"pk": s(REFUND), "sk": s("REQUEST"), "reason": s("damaged")}
        db.transact_write_items(
            TransactItems=[
                put(table, state("RECEIVED")),
                put(table, request),
                put(table, audit, "attribute_not_exists(pk)"),
            ]
        )
        # Pending approval: STATE and a new audit entry, 2 x 2; a by-status entry appears (1); by-payment's and
        # by-customer's entries (keys only) are unchanged: no write.                                   = 5
        entry = {**audit, "sk": s("EVENT#2")}
        db.transact_write_items(
            TransactItems=[put(table, state("PENDING_APPROVAL", "2025-03-01T12:05:00Z")), put(table, entry)]
        )
        # A note in the same status: the STATE item alone, 1; no index key or projected attribute changed. = 1
        db.put_item(TableName=table, Item=state("PENDING_APPROVAL", "2025-03-01T12:06:00Z"))
        # Another indexed status, alone: 1; by-status's key changed: a delete and a put, 2.              = 3
        db.put_item(TableName=table, Item=state("NEEDS_ATTENTION", "2025-03-01T12:07:00Z"))
        # A retried step writes the same audit entry again: cancelled, still 1 KB x 2.                  = 2
        with pytest.raises(ClientError):
            db.transact_write_items(TransactItems=[put(table, entry, "attribute_not_exists(pk)")])
        # A first-seen marker that was seen: the failed conditional put costs 1.                       = 1
        with pytest.raises(ClientError):
            db.put_item(TableName=table, Item=audit, ConditionExpression="attribute_not_exists(pk)")
        # A counter created by an update: 1 (no index key).                                            = 1
        db.update_item(
            TableName=table,
            Key={"pk": s("TOTALS#EUR"), "sk": s("DAY#2025-03-01")},
            UpdateExpression="ADD reserved :amount",
            ExpressionAttributeValues={":amount": {"N": "2500"}},
        )
        # Three 2.5 KB items: 3 units each.                                                             = 9
        for number in range(3):
            db.put_item(TableName=table, Item={"pk": s("BIG"), "sk": s(f"#{number}"), "blob": s("x" * 2_500)})
        # Reads: a consistent GetItem of the STATE item                                                 1
        db.get_item(TableName=table, Key={"pk": s(REFUND), "sk": s("STATE")}, ConsistentRead=True)
        # an eventually consistent GetItem of a missing item                                            0.5
        db.get_item(TableName=table, Key={"pk": s("NOTHING"), "sk": s("HERE")})
        # the by-customer index, one small entry, eventually consistent                                 0.5
        db.query(
            TableName=table,
            IndexName="by-customer",
            KeyConditionExpression="gsi4pk = :pk",
            ExpressionAttributeValues={":pk": s("CUSTOMER#c1")},
        )
        # the refund's partition, consistent, every item filtered out: still read                       1
        db.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            FilterExpression="#status = :none",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":pk": s(REFUND), ":none": s("NONE")},
            ConsistentRead=True,
        )
        # the three big items (7.5 KB: two 4 KB units), consistent, projected to their keys: still      2
        db.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ProjectionExpression="pk, sk",
            ExpressionAttributeValues={":pk": s("BIG")},
            ConsistentRead=True,
        )
        # The audit key, read through a client of another session, and through Powertools' parameters utility
        secrets.get_secret_value(SecretId="audit-key")
        parameters.get_secret("audit-key", force_fetch=True)
    finally:
        meter.stop()
    usage = meter.snapshot()
    assert usage["dynamodb_write_units"] == 8 + 5 + 1 + 3 + 2 + 1 + 1 + 9
    assert usage["dynamodb_index_write_units"] == {"by-status": 1 + 2, "by-payment": 1, "by-customer": 1}
    assert usage["dynamodb_cancelled_write_units"] == 2 + 1
    assert usage["dynamodb_read_units"] == 1 + 0.5 + 0.5 + 1 + 2
    assert usage["calls"]["secretsmanager:GetSecretValue"] == 2
    # AND the meter's own reads of the items before and after each write are not counted as calls
    assert usage["calls"].get("dynamodb:GetItem") == 2


def test_the_meter_lists_each_write_with_its_items_sizes_and_each_read_by_who_made_it(tables: Tables) -> None:
    from benchmarks.meters import item_size
    from benchmarks.workflow import reads_per_refund, writes_per_refund

    db, table = tables.client, tables.refunds_table
    audit = {"pk": s("AUDIT#rf_1"), "sk": s("EVENT#1"), "type": s("RefundRequested")}
    meter = Meter(who=lambda: "ValidateRefundFunction").start()
    try:
        db.transact_write_items(TransactItems=[put(table, state("RECEIVED")), put(table, audit)])
        with pytest.raises(ClientError):
            db.put_item(TableName=table, Item=audit, ConditionExpression="attribute_not_exists(pk)")
        db.query(
            TableName=table,
            IndexName="by-customer",
            KeyConditionExpression="gsi4pk = :pk",
            ExpressionAttributeValues={":pk": s("CUSTOMER#c1")},
        )
        db.get_item(TableName=table, Key={"pk": s(REFUND), "sk": s("STATE")}, ConsistentRead=True)
    finally:
        meter.stop()
    writes, reads = meter.log()
    # THEN each write names its items' shapes and the size each was billed on (a failed put: the item it found)
    assert [(w.operation, w.items, w.item_bytes, w.cancelled) for w in writes] == [
        (
            "TransactWriteItems",
            ("REFUND/STATE", "AUDIT/EVENT"),
            (item_size(state("RECEIVED")), item_size(audit)),
            False,
        ),
        ("PutItem", ("AUDIT/EVENT",), (item_size(audit),), True),
    ]
    # AND each read its partition (a Query's with its index), consistency and units; the totals agree
    assert [(r.function, r.operation, r.items, r.consistent, r.units) for r in reads] == [
        ("ValidateRefundFunction", "Query", ("CUSTOMER@by-customer",), False, 0.5),
        ("ValidateRefundFunction", "GetItem", ("REFUND/STATE",), True, 1.0),
    ]
    assert sum(r.units for r in reads) == meter.snapshot()["dynamodb_read_units"]
    # AND the benchmark's per-refund tables group them (two refunds' worth: halves)
    assert writes_per_refund(writes, 2)[0]["item_bytes_max"] == [item_size(state("RECEIVED")), item_size(audit)]
    assert [row["units"] for row in reads_per_refund(reads, 2)] == [0.25, 0.5]


# The counts a Lambda and Express pricing test leaves at zero.
NOTHING_ELSE = dict.fromkeys(
    [
        "standard_state_transitions",
        "dynamodb_write_units",
        "dynamodb_read_units",
        "events_put",
        "queue_messages",
        "api_requests",
        "secrets_manager_calls",
        "emails_sent",
    ],
    0.0,
)


# 3 Lambda invocations, one calling a platform; one Express execution of 11 states running 2 of them.
THREE_INVOCATIONS = {
    **NOTHING_ELSE,
    "lambda_invocations": 3.0,
    "platform_calls": 1.0,
    "express_executions": 1.0,
    "express_lambda_invocations": 2.0,
    "express_platform_calls": 1.0,
    "express_state_transitions": 11.0,
}


def test_lambda_is_billed_per_millisecond_and_express_per_started_100_ms() -> None:
    from benchmarks.workflow import PRICES, cost

    # GIVEN 3 invocations of 100.5 ms compute, one of them calling a platform (300 ms), and one Express execution
    # of 11 states running 2 of those invocations (one with the platform call)
    priced = cost(THREE_INVOCATIONS, lambda_ms=100.5, provider_ms=300)
    # THEN Lambda bills 3 x 100.5 + 300 = 601.5 ms as 602 ms
    assert priced["lambda_billed_ms"] == 602
    # AND Express waits 2 x 100.5 + 300 + 11 x 5 = 556 ms, billed as 600 ms at 64 MB
    assert priced["express_billed_ms"] == 600
    express = PRICES["express_request"] + 0.6 * 0.0625 * PRICES["express_gb_second"]
    assert priced["step_functions_express"] == pytest.approx(express, abs=1e-10)


def test_a_cold_starts_init_phase_is_billed_to_lambda_and_waited_on_by_express() -> None:
    from benchmarks.workflow import PRICES, cost

    # GIVEN the refund above (3 invocations of 100.5 ms, one platform call; Express runs 2 of them and 11 states),
    # and half the invocations starting cold with a 399.5 ms INIT phase (billed as 400 ms)
    warm = cost(THREE_INVOCATIONS, lambda_ms=100.5, provider_ms=300)
    priced = cost(THREE_INVOCATIONS, lambda_ms=100.5, provider_ms=300, cold_start_share=0.5, init_ms=399.5)
    # THEN Lambda bills 602 ms warm plus 3 x 0.5 x 400 = 600 ms of INIT, at the default 256 MB
    assert (priced["lambda_billed_ms"], priced["lambda_init_billed_ms"]) == (1_202, 600)
    extra_lambda = 0.6 * 256 / 1024 * PRICES["lambda_arm64_gb_second"]
    assert priced["lambda"] == pytest.approx(warm["lambda"] + extra_lambda, abs=1e-10)
    # AND Express waits 556 ms plus the cold starts of its 2 invocations: none (a quarter of the executions) billed
    # 600 ms, one (a half) 956 -> 1,000 ms, both (a quarter) 1,356 -> 1,400 ms: 1,000 ms expected
    assert priced["express_billed_ms"] == pytest.approx(1_000)
    express = PRICES["express_request"] + 1.0 * 0.0625 * PRICES["express_gb_second"]
    assert priced["step_functions_express"] == pytest.approx(express, abs=1e-10)
    # AND the total is the warm total plus exactly those two differences
    difference = extra_lambda + 0.4 * 0.0625 * PRICES["express_gb_second"]
    assert priced["total_without_email"] == pytest.approx(warm["total_without_email"] + difference, abs=1e-10)


def test_each_function_is_billed_at_its_own_memory_size() -> None:
    from benchmarks.workflow import DEFAULT_MEMORY_MB, PRICES, cost, function_memory_mb
    from local.cfn import Stack

    counts = {**NOTHING_ELSE, "express_state_transitions": 0.0}
    per_refund = {
        **counts,
        "lambda_invocations": 3.0,
        "platform_calls": 2.0,
        "express_executions": 1.0,
        "express_lambda_invocations": 3.0,
        "express_platform_calls": 2.0,
    }
    # GIVEN a payment function invoked twice, calling its platform twice, at 128 MB, and a step invoked once at
    # 1024 MB; 100 ms of compute per invocation at 256 MB, 300 ms per platform call
    by_function = {"RefundStripeFunction": (2.0, 2.0), "ValidateRefundFunction": (1.0, 0.0)}
    memory = {"RefundStripeFunction": 128, "ValidateRefundFunction": 1024}
    priced = cost(per_refund, lambda_ms=100, provider_ms=300, by_function=by_function, memory_mb=memory)
    # THEN the payment function computes twice as long with half the CPU and waits as long: 2 x 200 + 2 x 300 =
    # 1,000 ms at 0.125 GB; the step computes a quarter as long: 25 ms at 1 GB; 0.15 GB-s in all
    assert (priced["lambda_billed_ms"], priced["lambda_gb_seconds"]) == (1_025, pytest.approx(0.15))
    # AND the Express execution that runs both waits as long: 1,025 ms, billed as 1,100
    assert priced["express_billed_ms"] == 1_100
    lambda_usd = 3 * PRICES["lambda_request"] + 0.15 * PRICES["lambda_arm64_gb_second"]
    assert priced["lambda"] == pytest.approx(lambda_usd, abs=1e-10)
    # AND without the split every invocation is billed at the template's default memory
    pooled = cost(per_refund, lambda_ms=100, provider_ms=300)
    assert pooled["lambda_gb_seconds"] == pytest.approx(0.9 * DEFAULT_MEMORY_MB / 1024)
    # AND the memory of each function is the template's: its own MemorySize, else the Globals'
    template = Stack.from_template("refundflow-local")
    sizes = function_memory_mb(template)
    default = template.template["Globals"]["Function"]["MemorySize"]
    assert default == DEFAULT_MEMORY_MB
    for logical_id, resource in template.of_type("AWS::Serverless::Function").items():
        assert sizes[logical_id] == resource["Properties"].get("MemorySize", default)
