"""Cost of receiving one refund request in-process: the receive_webhook handler called with API Gateway
events (no HTTP in front), against the local stack's AWS. Each request is a new refund, so every call
does the whole intake (refundflow.request_intake): size and type checks, signature, strict JSON, the card check,
the request's check, the REQUEST item's transaction and a recorded StartExecution. Prints JSON.

Usage: python -m benchmarks.webhook_receive [--requests N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Mapping
from typing import Any

from local.api import LocalApi
from local.client import RefundflowClient
from local.stack import DevStack, LocalSettings
from refundflow.adapters import workflow_start

STARTED: list[str] = []


def record_start(sfn: Any, state_machine_arn: str, refund_id: str, payload: Mapping[str, Any]) -> str:
    STARTED.append(refund_id)
    return refund_id


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhook_receive")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    with DevStack(LocalSettings(api_port=0, aws_port=0)) as stack:
        client = RefundflowClient(stack.api_url)
        payment = client.create_payment(10_000_000, "EUR")
        from werkzeug.test import EnvironBuilder

        def event(index: int) -> dict[str, Any]:
            body = json.dumps(
                {
                    "payment": {"provider": "stripe", "payment_id": payment},
                    "amount": {"minor_units": 100, "currency": "EUR"},
                    "reason": "damaged",
                    "customer": {"email": f"bench{index}@example.com"},
                    "source": {"system": "bench", "reference": f"W-{uuid.uuid4().hex}"},
                }
            )
            headers = client.signed_headers(body)
            builder = EnvironBuilder(method="POST", path="/refund-requests", data=body, headers=list(headers.items()))
            return LocalApi.event_for(builder.get_request(), "POST /refund-requests", {}, None)

        events = [event(index) for index in range(args.requests + 5)]
        # StartExecution is recorded, not sent: this measures intake, not 200 workflows competing for the CPU.
        real_start = workflow_start.start_workflow
        workflow_start.start_workflow = record_start
        samples = []
        try:
            for warm in events[:5]:  # the first calls pay for imports and connections
                stack.functions.invoke("ReceiveWebhookFunction", warm)
            for item in events[5:]:
                started = time.perf_counter()
                response = stack.functions.invoke("ReceiveWebhookFunction", item)
                samples.append((time.perf_counter() - started) * 1000)
                if response["statusCode"] != 202:
                    raise RuntimeError(response)
        finally:
            workflow_start.start_workflow = real_start
    samples.sort()
    return {
        "benchmark": "webhook_receive",
        "requests": len(samples),
        "ms_per_request": {
            "p50": round(statistics.median(samples), 2),
            "p95": round(samples[int(len(samples) * 0.95) - 1], 2),
            "mean": round(statistics.fmean(samples), 2),
        },
        "note": "in-process handler time including its calls to the local AWS (moto over loopback HTTP)",
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
