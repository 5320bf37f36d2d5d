"""What intake does with ``POST /refund-requests``: verify, bound, check, store the request, start its workflow, on
the standard library and boto3 alone (README, Cost per refund, "Cold import").

The Standard Webhooks signature first (the source's own secret), then the body: bounded, strict JSON, no card data,
and the request's shape, which ``refundflow.request_check`` vouches for without the models for every ordinary
request. What it cannot vouch for is read by the model (``RefundRequestBody``, imported then), so every request is
still answered at once with the model's own 4xx problems and nothing half-stored. Then the rules the model does not
hold: the source named is the one that signed (403), an allocation rule refundflow has, a payment locator its
platform owns.

Intake stores what was asked for, the refund's ``REQUEST`` item and the delivery's first-seen marker in one
transaction, and starts the refund's workflow, named after the refund (a start is never made twice). The
workflow's first step makes the refund (``refundflow.domain.intake.create_requested``): its STATE, its first audit
entry, the return steps reported before it, its event. A redelivery, or the same request under another delivery
id, answers the same refund (duplicate true) and starts it again while it has not moved (a crash between storing
and starting heals so); other content under the same source reference is a conflict (409).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from refundflow import environment, json_bodies, request_check
from refundflow.adapters import workflow_start
from refundflow.adapters.aws import client
from refundflow.adapters.request_store import RECEIVED, RequestStore
from refundflow.adapters.secrets import get_json_secret
from refundflow.connectors.standard_webhooks import SigningSources, verify_source_delivery
from refundflow.errors import Forbidden, IdempotencyConflict, InvalidRequest
from refundflow.ids import derive_refund_id, request_fingerprint
from refundflow.logs import logger
from refundflow.receiver import Request, json_answer

# The channel a request came through (refundflow.domain.intake.GENERIC_SOURCE): part of its refund id.
CHANNEL = "refund-requests"


def workflow_input(refund_id: str, asked: dict[str, Any]) -> dict[str, Any]:
    """The execution's input. A request with one payment names its provider: the workflow's first step is then the
    provider's look-up, which makes, validates and looks up the refund in one write (``RefundSteps``'s
    ``ProviderKnown``; a split-tender request starts with ValidateRefund). The same request gives the same input, so
    a redelivery's start is the same start."""
    payment = asked.get("payment")
    known = {"provider": payment["provider"]} if payment is not None else {}
    return {"refund_id": refund_id, "timing": workflow_timing(), **known}


def refund_request(request: Request) -> dict[str, Any]:
    """Answer a refund request: 202 with its refund id (new or redelivered), or the problem.

    Raises:
        AuthenticationFailed (401), InvalidRequest (400, 413, 415), Forbidden (403), IdempotencyConflict (409),
        GuardUnavailable and TransientError (503: nothing was started that a retry would start twice).
    """
    secret_name = environment.text("REFUND_REQUESTS_SECRET_NAME")
    raw = json_bodies.raw_body(
        request,
        max_bytes=environment.integer("MAX_WEBHOOK_BODY_BYTES", json_bodies.DEFAULT_MAX_BODY_BYTES),
        allow_empty=True,
    )
    # The signature before the body: an empty or forged body is unauthenticated (401) before it is malformed (400).
    # The secret through the secrets cache: a revoked secret stops working without a cold start.
    verified = verify_source_delivery(
        request.headers, raw, SigningSources.from_secret(secret_name, get_json_secret(secret_name))
    )
    delivery_id = json_bodies.delivery_id(verified.delivery_id)
    document = json_bodies.decode_json(raw)
    json_bodies.refuse_card_data(document)
    asked = request_check.vouch(document) or _read_by_the_model(document)
    source = asked["source"]
    logger.append_keys(delivery_id=delivery_id, source_reference=source["reference"])
    if source["system"] != verified.source.name:
        raise Forbidden(
            f"source.system {source['system']!r} is not the source whose secret signed this delivery",
            code="source_mismatch",
        )
    _check_what_models_do_not(asked)
    refund_id = derive_refund_id(CHANNEL, f"{source['system']}:{source['reference']}")
    store = RequestStore(environment.text("REFUNDS_TABLE_NAME"), client("dynamodb"))
    stored = store.put(
        request_item(
            asked,
            refund_id=refund_id,
            created_at=datetime.now(UTC),
            correlation_id=str(uuid.uuid4()),
            delivery_id=delivery_id,
            verified_source=verified.source.name,
        ),
        channel=CHANNEL,
        delivery_id=delivery_id,
    )
    if not stored.created and stored.fingerprint != request_fingerprint(asked):
        raise IdempotencyConflict(
            f"refund request {source['system']}/{source['reference']} was already received with other content"
        )
    # Started on first sight, and again while the refund has not moved (the execution's name makes it one start).
    if stored.status == RECEIVED:
        workflow_start.start_workflow(
            client("stepfunctions"),
            environment.text("REFUND_WORKFLOW_ARN"),
            refund_id,
            workflow_input(refund_id, asked),
        )
    logger.info("refund request accepted", extra={"refund_id": refund_id, "duplicate": not stored.created})
    return json_answer(
        202,
        {
            "refund_id": refund_id,
            "status": stored.status,
            "duplicate": not stored.created,
            "links": {"self": {"href": f"/refunds/{refund_id}"}},
        },
    )


def request_item(
    asked: dict[str, Any],
    *,
    refund_id: str,
    created_at: datetime,
    correlation_id: str,
    delivery_id: str,
    verified_source: str,
) -> dict[str, Any]:
    """The refund's ``REQUEST`` item (plain values) for what was asked: what the refund store writes for a refund's
    request (``RefundRepository._request_item``, the same attributes), plus the request's allocation rule and
    what intake verified (the delivery id, the source), which the refund's first audit entry records."""
    tenders = asked.get("tenders") or []
    lines = asked["lines"]
    amount = asked["amount"]
    if amount is None and lines:
        amount = {
            "minor_units": sum(line["amount"]["minor_units"] for line in lines),
            "currency": lines[0]["amount"]["currency"],
        }
    return {
        "refund_id": refund_id,
        "created_at": _instant(created_at),
        "payment": asked["payment"] if asked["payment"] is not None else tenders[0]["payment"],
        "requested_amount": amount,
        "reason": asked["reason"],
        "customer": asked["customer"],
        "source": asked["source"],
        "source_platform": CHANNEL,
        "order": asked["order"],
        "invoice": asked["invoice"],
        "return_info": asked["return"],
        "lines": lines,
        "note": asked["note"],
        "approved_by": asked["approved_by"],
        "request_fingerprint": request_fingerprint(asked),
        "correlation_id": correlation_id,
        "origin": "refundflow",
        "tenders": [
            {"payment": tender["payment"], "kind": tender["kind"], "paid": tender["paid"]} for tender in tenders
        ]
        or None,
        "allocation_rule": asked["allocation"],
        "delivery_id": delivery_id,
        "verified_source": verified_source,
    }


def workflow_timing() -> dict[str, int]:
    """The Standard workflow's waits, passed in each execution's input (refundflow.settings.WorkflowTimingSettings:
    the same variables, defaults and bounds)."""
    return {
        "refund_outcome_wait_seconds": environment.integer("REFUND_OUTCOME_WAIT_SECONDS", 3600, minimum=1),
        "books_retry_wait_seconds": environment.integer("BOOKS_RETRY_WAIT_SECONDS", 900, minimum=1),
        "approval_escalation_seconds": environment.integer("APPROVAL_ESCALATION_SECONDS", 86_400, minimum=1),
        "return_wait_seconds": environment.integer("RETURN_WAIT_SECONDS", 2_592_000, minimum=1, maximum=31_536_000),
    }


def _instant(moment: datetime) -> str:
    """A moment as the models write it (pydantic: ISO 8601, ``Z`` for UTC)."""
    return moment.isoformat().replace("+00:00", "Z")


def _read_by_the_model(document: dict[str, Any]) -> dict[str, Any]:
    """What ``request_check`` could not vouch for, read by the model: its dump, or its 400 with field problems.
    Imports pydantic and the models (the first such request of a cold function pays for them)."""
    from refundflow.api import RefundRequestBody

    body = json_bodies.validate_document(RefundRequestBody, document)
    return body.model_dump(mode="json", by_alias=True)


def _check_what_models_do_not(asked: dict[str, Any]) -> None:
    """The request's allocation rule is one of refundflow's, and every payment locator is its platform's own (the
    platform catalog, imported only when a request names a locator: every payment provider and books system the
    models know is in the catalog, tests/unit/core/test_request_intake.py).

    Raises:
        InvalidRequest: ``unknown_allocation_rule``, ``invalid_locator``.
    """
    allocation, known = asked["allocation"], request_check.ALLOCATION_RULE_NAMES
    if asked["tenders"] is not None and allocation is not None and allocation not in known:
        raise InvalidRequest(f"allocation {allocation!r} is not one of {sorted(known)}", code="unknown_allocation_rule")
    payments = [asked["payment"], *(tender["payment"] for tender in asked["tenders"] or [])]
    if any(payment is not None and payment["locator"] for payment in payments):
        from refundflow.domain.deployment import check_locator
        from refundflow.models import PaymentReference

        for payment in payments:
            if payment is not None:
                check_locator(PaymentReference.model_validate(payment))
