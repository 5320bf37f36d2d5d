"""The request intake's writes to the refunds table: a refund request's ``REQUEST`` item with its delivery's
first-seen marker, once (the standard library and boto3 only: README, Cost per refund, "Cold import"). The refund
itself is made by its workflow's first step (``RefundRepository.requested``, ``create(request_stored=True)``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from refundflow.adapters.table_calls import (
    DeliverySeen,
    TransactItem,
    call_dynamodb,
    delivery_marker_put,
    put_if_absent,
    to_item,
    transact,
)
from refundflow.errors import IdempotencyConflict, RefundflowError
from refundflow.status import RefundStatus

RECEIVED = RefundStatus.RECEIVED.value


@dataclass(frozen=True)
class StoredRequest:
    """Where a refund request stands once stored: ``created`` when this delivery stored it; else the first
    request's fingerprint and its refund's status (``received`` until the workflow moved it)."""

    created: bool
    fingerprint: str
    status: str


class RequestStore:
    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self.table_name = table_name
        self.dynamodb = dynamodb

    def put(self, request: dict[str, Any], *, channel: str, delivery_id: str) -> StoredRequest:
        """Store ``request`` (the REQUEST item's plain values) with the marker of ``delivery_id``, in one
        transaction, each only if absent.

        Raises:
            IdempotencyConflict: the delivery id was used before for another refund's request.
            TransientError: another transaction or throttling cancelled it (``store_busy``: a retry finds what won).
            GuardUnavailable: the table could not be written (nothing was).
        """
        refund_id = request["refund_id"]
        marker = delivery_marker_put(self.table_name, channel, delivery_id, refund_id, datetime.now(UTC))
        item = to_item({**request, "pk": f"REFUND#{refund_id}", "sk": "REQUEST", "entity": "refund_request"})
        stored = {
            "Put": {"TableName": self.table_name, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
        }
        try:
            transact(self.dynamodb, [TransactItem(marker, DeliverySeen), TransactItem(stored, _RequestStored)])
            return StoredRequest(created=True, fingerprint=request["request_fingerprint"], status=RECEIVED)
        except DeliverySeen:  # the marker goes first: a redelivery, or the id spent on another request
            if self._marked_refund_id(channel, delivery_id) != refund_id:
                raise IdempotencyConflict(
                    f"delivery id {delivery_id} was already used for another refund request"
                ) from None
        except _RequestStored:
            put_if_absent(self.dynamodb, marker["Put"])  # the same request under another delivery id: spent too
        return self._stored(refund_id)

    def _stored(self, refund_id: str) -> StoredRequest:
        """The stored request's fingerprint and its refund's status (``received`` before the workflow made it)."""
        response = call_dynamodb(
            self.dynamodb,
            "query",
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :request AND :state",
            ExpressionAttributeValues={
                ":pk": {"S": f"REFUND#{refund_id}"},
                ":request": {"S": "REQUEST"},
                ":state": {"S": "STATE"},
            },
            ProjectionExpression="sk, request_fingerprint, #status",
            ExpressionAttributeNames={"#status": "status"},
            ConsistentRead=True,
        )
        items = {item["sk"]["S"]: item for item in response.get("Items", [])}
        fingerprint = items.get("REQUEST", {}).get("request_fingerprint", {}).get("S", "")
        status = items.get("STATE", {}).get("status", {}).get("S", RECEIVED)
        return StoredRequest(created=False, fingerprint=fingerprint, status=status)

    def _marked_refund_id(self, channel: str, delivery_id: str) -> str | None:
        response = call_dynamodb(
            self.dynamodb,
            "get_item",
            TableName=self.table_name,
            Key={"pk": {"S": f"SOURCE#{channel}#{delivery_id}"}, "sk": {"S": "SOURCE"}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return item["refund_id"]["S"] if item else None


class _RequestStored(RefundflowError):
    code = "request_stored"

    def __init__(self) -> None:
        super().__init__("request stored before")
