"""What every writer of the refunds table shares that needs no model: a DynamoDB call and a transaction with their
failures as refundflow's errors, and the first-seen marker of an inbound delivery. The standard library, botocore
and boto3's type serializer only (the request intake writes with it: README, Cost per refund, "Cold import")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from refundflow.errors import ConcurrentModification, GuardUnavailable, RefundflowError, TransientError

_serializer = TypeSerializer()

TRANSIENT_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
    "LimitExceededException",
}
# How long an inbound delivery's first-seen marker is kept (platforms redeliver for days; a replay after a year is
# refused by its signature's timestamp).
SOURCE_MARKER_RETENTION = timedelta(days=400)


def call_dynamodb(dynamodb: Any, operation: str, **kwargs: Any) -> Any:
    """One DynamoDB call, its failures as refundflow's errors: busy (throttled, a transaction in the way) is a
    ``TransientError``, a failed condition or a cancelled transaction is the ``ClientError`` itself (the caller says
    what it means), anything else (and the table out of reach) is ``GuardUnavailable``: fail closed."""
    try:
        return getattr(dynamodb, operation)(**kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in TRANSIENT_CODES:
            raise TransientError(f"DynamoDB {operation}: {code}", code="store_busy") from error
        if code in {"ConditionalCheckFailedException", "TransactionCanceledException"}:
            raise
        raise GuardUnavailable(f"DynamoDB {operation} failed: {code}") from error
    except BotoCoreError as error:
        raise GuardUnavailable(f"DynamoDB unreachable during {operation}: {error}") from error


@dataclass(frozen=True)
class TransactItem:
    """One item of a transaction and the error to raise if its condition fails."""

    operation: dict[str, Any]
    on_condition_failed: Callable[[], RefundflowError] = field(
        default=lambda: ConcurrentModification("a related item changed concurrently")
    )


def transact(dynamodb: Any, items: Sequence[TransactItem], token: str | None = None) -> None:
    """Write ``items`` in one transaction (``token``: its ClientRequestToken, at most 36 characters).

    Raises:
        The first item's own error whose condition failed; TransientError (``store_busy``) when another transaction
        or throttling cancelled it; ConcurrentModification for any other cancellation; GuardUnavailable.
    """
    kwargs: dict[str, Any] = {"TransactItems": [item.operation for item in items]}
    if token:
        kwargs["ClientRequestToken"] = token[:36]
    try:
        call_dynamodb(dynamodb, "transact_write_items", **kwargs)
    except ClientError as error:
        reasons = error.response.get("CancellationReasons") or []
        for item, reason in zip(items, reasons, strict=False):
            if reason.get("Code") == "ConditionalCheckFailed":
                raise item.on_condition_failed() from error
        if any(reason.get("Code") in {"TransactionConflict", "ThrottlingError"} for reason in reasons):
            raise TransientError("DynamoDB transaction conflict", code="store_busy") from error
        raise ConcurrentModification("transaction cancelled") from error


def put_if_absent(dynamodb: Any, put: dict[str, Any]) -> bool:
    """A ``Put`` whose condition is that the item is not there yet, on its own; False if it was there."""
    try:
        call_dynamodb(dynamodb, "put_item", **put)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """Plain values as a DynamoDB item (attribute-value form); a value None is left out."""
    return {key: _serializer.serialize(value) for key, value in values.items() if value is not None}


class DeliverySeen(RefundflowError):
    """A delivery's first-seen marker was there already (``delivery_marker_put``'s condition failed)."""

    code = "delivery_seen"

    def __init__(self) -> None:
        super().__init__("delivery seen before")


def delivery_marker_put(table_name: str, platform: str, event_id: str, refund_id: str, at: datetime) -> dict[str, Any]:
    """The ``Put`` of an inbound delivery's first-seen marker (``SOURCE#<platform>#<event id>``), only if absent."""
    return {
        "Put": {
            "TableName": table_name,
            "Item": to_item(
                {
                    "pk": f"SOURCE#{platform}#{event_id}",
                    "sk": "SOURCE",
                    "entity": "delivery",
                    "refund_id": refund_id,
                    "first_seen_at": at.isoformat(),
                    "expires_at": int((at + SOURCE_MARKER_RETENTION).timestamp()),
                }
            ),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
