"""Per refund on the local stack: state transitions (Standard and Express), Lambda invocations,
DynamoDB read/write units (table, index and cancelled writes: ``benchmarks.meters``), events, queue messages,
Secrets Manager calls (every session's), e-mails, and the list-price cost derived from them; plus the
whole-workflow throughput on this machine. Prints JSON.

Usage: python -m benchmarks.workflow [--refunds N] [--concurrency C] [--lambda-ms MS] [--provider-ms MS]
       [--cold-start-share S] [--init-ms MS] [--source bench|merchant-shop] [--writes]

``--writes`` adds ``dynamodb_writes_per_refund``: every DynamoDB write of a refund, by the function that made it,
the operation, the items' key shapes (``REFUND/STATE``, ``AUDIT/EVENT``...), the units billed, per refund, and the
largest size of each item (bytes, as billed); and ``dynamodb_reads_per_refund``: every read the same way (a Query
by its partition's prefix and index, consistent or not).

``--source`` picks the customer's channel: ``bench`` (the default) is told by one SES e-mail, ``merchant-shop`` (the
local stack's MerchantWebhookSources) by one signed POST to the merchant's sandbox receiver
(``merchant_webhook_posts``; no SES). Both count the notify function's invocation, its queue and its reads.

Counts are measured (the real ASL on moto's interpreter, the real handlers, metered AWS calls, the calls each
function makes to a payment platform or books). Durations on AWS cannot be measured here: the cost model
assumes a warm compute time per invocation (``--lambda-ms``, at 256 MB: with less memory Lambda gives less CPU and
the compute takes proportionally longer) plus a latency per platform call (``--provider-ms``), bills each invocation
in 1 ms steps at its function's own MemorySize (template.yaml), and bills each Express execution in 100 ms steps
for the Lambda time it waits on plus a per-state overhead. A cold start's INIT phase is billed too (since 1 August
2025): ``--cold-start-share`` of the invocations (default 1 %) each add ``--init-ms`` at their function's memory and
to the Express execution's wait; ``cost_per_refund_usd_every_invocation_cold`` prices the same refund with every
invocation cold (a merchant with a few refunds an hour).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from benchmarks.meters import Meter, ReadRecord, WriteRecord
from local import lambdas
from local.cfn import Stack
from local.client import RefundflowClient
from local.stack import DevStack, LocalSettings
from refundflow import catalog, metering

# us-east-1 list prices (USD), from the services' public pricing pages:
# aws.amazon.com/step-functions/pricing, /lambda/pricing, /dynamodb/pricing/on-demand, /eventbridge/pricing,
# /sqs/pricing, /api-gateway/pricing (HTTP APIs), /ses/pricing, /secrets-manager/pricing.
PRICES = {
    "standard_transition": 0.025 / 1_000,
    "express_request": 1.00 / 1_000_000,
    "express_gb_second": 0.00001667,
    "lambda_request": 0.20 / 1_000_000,
    "lambda_arm64_gb_second": 0.0000133334,
    "dynamodb_write_unit": 0.625 / 1_000_000,
    "dynamodb_read_unit": 0.125 / 1_000_000,
    "eventbridge_event": 1.00 / 1_000_000,
    "sqs_request": 0.40 / 1_000_000,
    "http_api_request": 1.00 / 1_000_000,
    "ses_email": 0.10 / 1_000,
    "secrets_manager_call": 0.05 / 10_000,
}
DEFAULT_MEMORY_MB = 256  # template.yaml's Globals MemorySize, for a function the template does not size itself
COMPUTE_REFERENCE_MEMORY_MB = 256  # the memory --lambda-ms is assumed at
EXPRESS_MEMORY_GB = 0.0625  # billed in 64 MB steps; the child holds a few KB of state
EXPRESS_STATE_OVERHEAD_MS = 5  # assumed per state of the Express child, on top of the Lambda time it waits on
EXPRESS_BILLING_STEP_MS = 100  # Express bills duration in 100 ms steps, per execution
# Lambda bills a cold start's INIT phase like the invocation since 1 August 2025 (ZIP functions on managed runtimes:
# aws.amazon.com/blogs/compute/aws-lambda-standardizes-billing-for-init-phase). Assumed: AWS's analysis of production
# workloads finds cold starts in under 1 % of invocations; one INIT is the runtime's start (about 100 ms) plus the
# handler's import, 140 to 330 ms on this machine's CPU (benchmarks.cold_imports; INIT runs with burst CPU).
DEFAULT_COLD_START_SHARE = 0.01
DEFAULT_INIT_MS = 450.0
LAMBDA_BILLING_STEP_MS = 1  # Lambda bills duration in 1 ms steps, per invocation
# The functions the Express child runs on the straight-through path (their time is the child's duration).
EXPRESS_STEP_FUNCTIONS = {
    "ValidateRefundFunction",
    "EvaluatePolicyFunction",
    "ReserveAmountFunction",
    "HandleFailureFunction",
    *(entry.logical_id(role) for entry in catalog.platforms() for role in entry.function_roles),
}


def function_memory_mb(stack: Stack) -> dict[str, int]:
    """Each function's MemorySize in template.yaml (its own, else the Globals'): what its GB-seconds are billed at."""
    default = int(stack.template.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
    return {
        logical_id: int(resource["Properties"].get("MemorySize", default))
        for logical_id, resource in stack.of_type("AWS::Serverless::Function").items()
    }


def rule_detail_types(stack: Stack) -> set[str]:
    types: set[str] = set()
    for rule in stack.of_type("AWS::Events::Rule").values():
        types.update(rule["Properties"]["EventPattern"].get("detail-type", []))
    return types


class PlatformCalls:
    """Calls to a payment platform or books per function (``refundflow.metering`` wraps every connector's
    methods; each is one request to the platform, whose latency the function is billed for)."""

    def __init__(self) -> None:
        self.by_function: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._original: Callable[..., Any] | None = None

    def start(self) -> PlatformCalls:
        original = metering.metered
        self._original = original

        def counted(kind: str, platform: str, call: Callable[[], Any]) -> Any:
            running = lambdas._running.stack
            with self._lock:
                self.by_function[running[-1][1] if running else "(outside a function)"] += 1
            return original(kind, platform, call)

        metering.metered = counted
        return self

    def reset(self) -> None:
        with self._lock:
            self.by_function.clear()


class Bench:
    def __init__(self, stack: DevStack, meter: Meter, source: str = "bench") -> None:
        self.stack = stack
        self.source = source
        self.client = RefundflowClient(stack.api_url)
        self.meter = meter
        self.run_id = uuid.uuid4().hex[:6]

    def prepare(self, index: int) -> dict[str, Any]:
        """A paid order (Stripe payment + paid Xero invoice) and its refund request: set-up, not metered."""
        payment = self.client.create_payment(2500, "EUR")
        invoice = self.client.create_invoice(f"Bench {index} {self.run_id}", "Item", Decimal("25.00"), "EUR", paid=True)
        return {
            "payment": {"provider": "stripe", "payment_id": payment},
            "reason": "damaged",
            "customer": {"email": f"bench{index}.{self.run_id}@example.com"},
            "source": {"system": self.source, "reference": f"B-{self.run_id}-{index}"},
            "invoice": {"system": "xero", "invoice_id": invoice["InvoiceID"]},
        }

    def run_one(self, body: dict[str, Any]) -> str:
        response = self.client.request_refund(body)
        response.raise_for_status()
        refund_id = str(response.json()["refund_id"])
        described = self.stack.wait_for_execution(refund_id, timeout=120)
        if described["status"] != "SUCCEEDED":
            raise RuntimeError(f"{refund_id}: execution {described['status']}")
        return refund_id

    def transitions(self, refund_id: str) -> tuple[int, int, int]:
        """(Standard state entries, Express executions, Express state entries) of one refund."""
        sfn = self.stack.client("stepfunctions")
        history = self.stack.execution_history(refund_id)
        standard = sum(1 for event in history if event["type"].endswith("StateEntered"))
        children = [
            json.loads(event["taskSubmittedEventDetails"]["output"])["ExecutionArn"]
            for event in history
            if event["type"] == "TaskSubmitted"
            and event["taskSubmittedEventDetails"]["resource"].startswith("startExecution")
        ]
        express = 0
        for arn in children:
            child = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
            express += sum(1 for event in child if event["type"].endswith("StateEntered"))
        return standard, len(children), express


def running_function() -> str:
    running = lambdas._running.stack
    return running[-1][1] if running else "(outside a function)"


def writes_per_refund(writes: list[WriteRecord], refunds: int) -> list[dict[str, Any]]:
    """The meter's write log grouped by (function, operation, items, cancelled), in first-seen order, per refund."""
    grouped: dict[tuple[Any, ...], dict[str, Any]] = {}
    for write in writes:
        key = (write.function, write.operation, write.items, write.cancelled)
        row = grouped.setdefault(
            key,
            {
                "function": write.function,
                "operation": write.operation,
                "items": list(write.items),
                "cancelled": write.cancelled,
                "count": 0,
                "table_units": 0,
                "index_units": Counter(),
                "item_bytes_max": [0] * len(write.items),
            },
        )
        row["count"] += 1
        row["table_units"] += write.table_units
        row["index_units"].update(write.index_units)
        row["item_bytes_max"] = [
            max(old, new) for old, new in zip(row["item_bytes_max"], write.item_bytes, strict=False)
        ]
    return [
        {
            **row,
            "count": round(row["count"] / refunds, 3),
            "table_units": round(row["table_units"] / refunds, 3),
            "index_units": {name: round(units / refunds, 3) for name, units in sorted(row["index_units"].items())},
        }
        for row in grouped.values()
    ]


def reads_per_refund(reads: list[ReadRecord], refunds: int) -> list[dict[str, Any]]:
    """The meter's read log grouped by (function, operation, items, consistent), in first-seen order, per refund."""
    grouped: dict[tuple[Any, ...], dict[str, Any]] = {}
    for read in reads:
        key = (read.function, read.operation, read.items, read.consistent)
        row = grouped.setdefault(
            key,
            {
                "function": read.function,
                "operation": read.operation,
                "items": list(read.items),
                "consistent": read.consistent,
                "count": 0,
                "units": 0.0,
            },
        )
        row["count"] += 1
        row["units"] += read.units
    return [
        {**row, "count": round(row["count"] / refunds, 3), "units": round(row["units"] / refunds, 3)}
        for row in grouped.values()
    ]


def billed_ms(duration_ms: float, step_ms: int) -> int:
    return math.ceil(duration_ms / step_ms) * step_ms


def cost(
    per_refund: dict[str, float],
    lambda_ms: float,
    provider_ms: float,
    *,
    by_function: Mapping[str, tuple[float, float]] | None = None,
    memory_mb: Mapping[str, int] | None = None,
    cold_start_share: float = 0.0,
    init_ms: float = 0.0,
) -> dict[str, float]:
    """List-price cost of one refund from its measured counts and the stated duration assumptions.

    ``by_function``: each function's (invocations, platform calls) per refund, billed at its own ``memory_mb``
    (template.yaml's MemorySize); without it, every invocation is billed at ``DEFAULT_MEMORY_MB``.

    ``cold_start_share``: the share of invocations that start a new execution environment, each billed ``init_ms``
    more for its INIT phase (billed like the invocation since 1 August 2025 for ZIP functions on managed runtimes)
    at its function's memory (INIT runs with burst CPU: its time does not scale with memory), and waited on by the
    Express execution that invoked it. Costs are expected values: each invocation starts cold independently."""
    invocations = per_refund["lambda_invocations"]
    cold_ms = cold_start_share * math.ceil(init_ms)  # expected INIT billed per invocation, in 1 ms steps
    split = by_function is not None
    if by_function is None:
        by_function = {"(all)": (invocations, per_refund["platform_calls"])}
    # Each invocation is billed in 1 ms steps (whole-ms assumptions: no rounding left): its compute, plus the
    # latency of the platform calls it makes, at its function's memory. Lambda allocates CPU in proportion to
    # memory: the compute assumed at COMPUTE_REFERENCE_MEMORY_MB takes proportionally longer with less (its
    # GB-seconds stay the same); waiting on a platform takes as long whatever the memory.
    lambda_billed_ms = 0.0
    lambda_gb_s = 0.0
    for name, (function_invocations, function_calls) in sorted(by_function.items()):
        memory = (memory_mb or {}).get(name, DEFAULT_MEMORY_MB)
        compute_ms = lambda_ms * COMPUTE_REFERENCE_MEMORY_MB / memory
        function_ms = billed_ms(
            function_invocations * compute_ms + function_calls * provider_ms, LAMBDA_BILLING_STEP_MS
        )
        function_ms_with_init = function_ms + function_invocations * cold_ms
        lambda_billed_ms += function_ms_with_init
        lambda_gb_s += function_ms_with_init / 1000 * memory / 1024
    executions = per_refund["express_executions"]
    express_billed_ms = 0.0
    if executions:
        # One Express execution waits on its Lambdas (their compute and platform calls) plus a little per state.
        express_compute_ms = per_refund["express_lambda_invocations"] * lambda_ms
        if split:  # each step's compute at its own memory (the same total when every step has the reference memory)
            express_compute_ms = sum(
                function_invocations
                * lambda_ms
                * COMPUTE_REFERENCE_MEMORY_MB
                / (memory_mb or {}).get(name, DEFAULT_MEMORY_MB)
                for name, (function_invocations, _) in by_function.items()
                if name in EXPRESS_STEP_FUNCTIONS
            )
        waited_ms = (
            express_compute_ms
            + per_refund["express_platform_calls"] * provider_ms
            + per_refund["express_state_transitions"] * EXPRESS_STATE_OVERHEAD_MS
        ) / executions
        # The cold starts an execution waits on: k of its n invocations, binomially; each case billed in 100 ms steps.
        n = round(per_refund["express_lambda_invocations"] / executions)
        expected_ms = sum(
            math.comb(n, k)
            * cold_start_share**k
            * (1 - cold_start_share) ** (n - k)
            * billed_ms(waited_ms + k * math.ceil(init_ms), EXPRESS_BILLING_STEP_MS)
            for k in range(n + 1)
        )
        express_billed_ms = expected_ms * executions
    items = {
        "step_functions_standard": per_refund["standard_state_transitions"] * PRICES["standard_transition"],
        "step_functions_express": executions * PRICES["express_request"]
        + express_billed_ms / 1000 * EXPRESS_MEMORY_GB * PRICES["express_gb_second"],
        "lambda": invocations * PRICES["lambda_request"] + lambda_gb_s * PRICES["lambda_arm64_gb_second"],
        "dynamodb": per_refund["dynamodb_write_units"] * PRICES["dynamodb_write_unit"]
        + per_refund["dynamodb_read_units"] * PRICES["dynamodb_read_unit"],
        "eventbridge": per_refund["events_put"] * PRICES["eventbridge_event"],
        "sqs": per_refund["queue_messages"] * 3 * PRICES["sqs_request"],
        "api_gateway": per_refund["api_requests"] * PRICES["http_api_request"],
        "secrets_manager": per_refund["secrets_manager_calls"] * PRICES["secrets_manager_call"],
    }
    workflow = sum(items.values())
    email = per_refund["emails_sent"] * PRICES["ses_email"]
    return {
        **{key: round(value, 10) for key, value in items.items()},
        "total_without_email": round(workflow, 10),
        "ses_email": round(email, 10),
        "total_with_email": round(workflow + email, 10),
        "lambda_billed_ms": round(lambda_billed_ms, 3),
        "lambda_init_billed_ms": round(invocations * cold_ms, 3),
        "lambda_gb_seconds": round(lambda_gb_s, 6),
        "express_billed_ms": round(express_billed_ms, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workflow")
    parser.add_argument("--refunds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--lambda-ms", type=float, default=120.0, help="assumed warm compute per invocation on AWS")
    parser.add_argument(
        "--provider-ms", type=float, default=300.0, help="assumed latency of one call to a payment platform or books"
    )
    parser.add_argument(
        "--cold-start-share",
        type=float,
        default=DEFAULT_COLD_START_SHARE,
        help="assumed share of invocations that start a new execution environment (its INIT phase is billed)",
    )
    parser.add_argument(
        "--init-ms", type=float, default=DEFAULT_INIT_MS, help="assumed INIT phase of one cold start, ms billed"
    )
    parser.add_argument("--source", default="bench", help="the source system: bench (e-mail) or merchant-shop")
    parser.add_argument("--writes", action="store_true", help="list every DynamoDB write and read per refund")
    args = parser.parse_args(argv)
    meter = Meter(who=running_function if args.writes else None).start()
    platform_calls = PlatformCalls().start()
    with DevStack(LocalSettings(api_port=0, aws_port=0)) as stack:
        bench = Bench(stack, meter, args.source)
        merchant = stack.simulators["merchant"]
        bench.run_one(bench.prepare(-1))  # warm-up: imports and cold starts are not steady-state cost
        time.sleep(2)
        bodies = [bench.prepare(index) for index in range(args.refunds)]
        invocations_before = dict(stack.functions.invocations)
        posts_before = len(merchant.requests_seen)
        meter.reset()
        platform_calls.reset()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            refund_ids = list(pool.map(bench.run_one, bodies))
        elapsed = time.monotonic() - started
        time.sleep(3)  # let the notifier drain its queues: notifications are part of a refund's cost
        usage = meter.snapshot()
        writes, reads = meter.log()  # the refunds' own: the look-ups below are not part of them
        merchant_posts = len(merchant.requests_seen) - posts_before
        invocations = {
            name: count - invocations_before.get(name, 0)
            for name, count in stack.functions.invocations.items()
            if count - invocations_before.get(name, 0)
        }
        transitions = [bench.transitions(refund_id) for refund_id in refund_ids]
        statuses = {bench.client.refund(refund_id)["status"] for refund_id in refund_ids}
        routed = rule_detail_types(stack.stack)
        memory = function_memory_mb(stack.stack)
    n = len(refund_ids)
    express_lambda = sum(count for name, count in invocations.items() if name in EXPRESS_STEP_FUNCTIONS)
    calls_by_function = dict(platform_calls.by_function)
    express_platform = sum(count for name, count in calls_by_function.items() if name in EXPRESS_STEP_FUNCTIONS)
    routed_messages = sum(count for detail_type, count in usage["detail_types"].items() if detail_type in routed)
    per_refund = {
        "standard_state_transitions": sum(t[0] for t in transitions) / n,
        "express_executions": sum(t[1] for t in transitions) / n,
        "express_state_transitions": sum(t[2] for t in transitions) / n,
        "lambda_invocations": sum(invocations.values()) / n,
        "express_lambda_invocations": express_lambda / n,
        "dynamodb_read_units": usage["dynamodb_read_units"] / n,
        "dynamodb_write_units": usage["dynamodb_write_units"] / n,
        "dynamodb_table_write_units": usage["dynamodb_table_write_units"] / n,
        "dynamodb_index_write_units": sum(usage["dynamodb_index_write_units"].values()) / n,
        "dynamodb_cancelled_write_units": usage["dynamodb_cancelled_write_units"] / n,
        "platform_calls": sum(calls_by_function.values()) / n,
        "express_platform_calls": express_platform / n,
        "events_put": usage["events_put"] / n,
        "queue_messages": routed_messages / n,
        "emails_sent": usage["emails_sent"] / n,
        "merchant_webhook_posts": merchant_posts / n,
        "api_requests": invocations.get("ReceiveWebhookFunction", 0) / n,
        "secrets_manager_calls": sum(
            count for name, count in usage["calls"].items() if name.startswith("secretsmanager:")
        )
        / n,
    }
    priced: dict[str, Any] = {
        "per_refund": per_refund,
        "lambda_ms": args.lambda_ms,
        "provider_ms": args.provider_ms,
        "by_function": {name: (count / n, calls_by_function.get(name, 0) / n) for name, count in invocations.items()},
        "memory_mb": memory,
    }
    result = {
        "benchmark": "workflow",
        "refunds": n,
        "source": args.source,
        "concurrency": args.concurrency,
        "final_statuses": sorted(statuses),
        "per_refund": {key: round(value, 3) for key, value in per_refund.items()},
        "lambda_invocations_by_function": {name: round(count / n, 3) for name, count in sorted(invocations.items())},
        "aws_calls_per_refund": {name: round(count / n, 3) for name, count in sorted(usage["calls"].items())},
        "dynamodb_index_write_units_by_index": {
            name: round(units / n, 3) for name, units in sorted(usage["dynamodb_index_write_units"].items())
        },
        "platform_calls_by_function": {name: round(count / n, 3) for name, count in sorted(calls_by_function.items())},
        "cost_per_refund_usd": cost(**priced, cold_start_share=args.cold_start_share, init_ms=args.init_ms),
        # A merchant with a few refunds an hour: every invocation starts a new execution environment.
        "cost_per_refund_usd_every_invocation_cold": cost(**priced, cold_start_share=1.0, init_ms=args.init_ms),
        "cost_assumptions": {
            "region": "us-east-1 list prices",
            "lambda_compute_ms_per_invocation": args.lambda_ms,
            "lambda_compute_ms_assumed_at_memory_mb": COMPUTE_REFERENCE_MEMORY_MB,
            "platform_call_latency_ms": args.provider_ms,
            "cold_start_share": args.cold_start_share,
            "init_ms_per_cold_start": args.init_ms,
            "lambda_billing_step_ms": LAMBDA_BILLING_STEP_MS,
            "express_billing_step_ms": EXPRESS_BILLING_STEP_MS,
            "express_state_overhead_ms": EXPRESS_STATE_OVERHEAD_MS,
            "lambda_memory_mb_by_function": {name: memory[name] for name in sorted(invocations)},
            "express_memory_gb": EXPRESS_MEMORY_GB,
            "sqs_requests_per_message": 3,
            "routed_detail_types": sorted(routed),
        },
        **({"dynamodb_writes_per_refund": writes_per_refund(writes, n)} if args.writes else {}),
        **({"dynamodb_reads_per_refund": reads_per_refund(reads, n)} if args.writes else {}),
        "local_throughput_refunds_per_minute": round(n / elapsed * 60, 1),
        "local_seconds_per_refund_wall": round(elapsed / n, 3),
    }
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
