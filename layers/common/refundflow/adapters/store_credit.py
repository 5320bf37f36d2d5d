"""Store credit on the refunds table: a balance item per customer and currency, an item per entry, and a marker per
entry id, all three written in ONE TransactWriteItems so that a credit happens exactly once across retries, crashes
and concurrent calls.

Keys (no address in a key: the customer's partition is a digest of ``customer_key``, as the velocity counters'
``CUSTOMER#`` partition is of the address; the ``STORE_CREDIT`` prefixes collide with no other item of the table):

- ``STORE_CREDIT#<digest>`` / ``BALANCE#<currency>``: ``balance`` in minor units, changed only by ``ADD``;
- ``STORE_CREDIT#<digest>`` / ``ENTRY#<entry_id>``: the entry (amount, refund, note, time);

No item holds the customer's key itself either (an address is personal data, kept in the refund's own record only):
the items name their customer by ``customer_digest`` (SHA-256 of the key), and an entry read back gets the key it
was asked for.
- ``STORE_CREDIT_ENTRY#<entry_id>`` / ``ENTRY``: which customer an entry id belongs to, so that an id is used once in
  the whole table, not once per customer (conditioned on its absence: the transaction's exactly-once guard).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError
from pydantic import ValidationError

from refundflow.adapters.aws import client as aws_client
from refundflow.adapters.dynamodb import plain_values
from refundflow.adapters.table_calls import call_dynamodb
from refundflow.errors import IdempotencyConflict, InvalidRequest, TransientError
from refundflow.money import Money
from refundflow.ports import StoreCreditEntry, StoreCreditLedger

_serializer = TypeSerializer()
_ENTRY_MARKER_SK = "ENTRY"


def customer_digest(customer_key: str) -> str:
    """What the items keep of the customer: the SHA-256 of the key, never the address or customer id itself."""
    return hashlib.sha256(customer_key.encode()).hexdigest()


def customer_partition(customer_key: str) -> str:
    """The customer's store-credit partition: a digest, never the address or customer id itself."""
    return "STORE_CREDIT#" + customer_digest(customer_key)[:32]


def _item(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in values.items()}


class _EntryExists(Exception):
    """The entry id's marker was there already (never leaves this module)."""


class DynamoStoreCreditLedger(StoreCreditLedger):
    """The store-credit ledger on the refunds table. Raises GuardUnavailable when the table cannot be reached."""

    def __init__(self, table_name: str, dynamodb: Any | None = None, now: Callable[[], datetime] | None = None):
        self.table_name = table_name
        self._dynamodb = dynamodb
        self._now = now or (lambda: datetime.now(UTC))

    @property
    def dynamodb(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = aws_client("dynamodb")
        return self._dynamodb

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return call_dynamodb(self.dynamodb, operation, **kwargs)
        except ClientError as error:  # a failed condition or a cancelled transaction (call_dynamodb)
            reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons") or []]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise _EntryExists from error
            code = error.response.get("Error", {}).get("Code", "")
            raise TransientError(f"DynamoDB {operation} cancelled ({code}): {reasons}", code="store_busy") from error

    def credit(
        self, customer_key: str, amount: Money, entry_id: str, refund_id: str, note: str = ""
    ) -> StoreCreditEntry:
        if not amount.is_positive():
            raise InvalidRequest(f"store credit is credited in positive amounts, not {amount}")
        try:
            entry = StoreCreditEntry(
                entry_id=entry_id,
                customer_key=customer_key,
                amount=amount,
                refund_id=refund_id,
                note=note,
                created_at=self._now(),
            )
        except ValidationError as error:
            raise InvalidRequest(f"not a store-credit entry: {error.errors()[0]['msg']}") from error
        partition = customer_partition(customer_key)
        at = entry.created_at.isoformat()
        try:
            self._call(
                "transact_write_items",
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": _item(
                                {
                                    "pk": f"STORE_CREDIT_ENTRY#{entry_id}",
                                    "sk": _ENTRY_MARKER_SK,
                                    "entity": "store_credit_entry_id",
                                    "customer_pk": partition,
                                }
                            ),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": _item(
                                {
                                    **entry.model_dump(mode="json", exclude={"customer_key"}),
                                    "customer_digest": customer_digest(customer_key),
                                    "pk": partition,
                                    "sk": f"ENTRY#{entry_id}",
                                    "entity": "store_credit_entry",
                                }
                            ),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": _item({"pk": partition, "sk": f"BALANCE#{amount.currency}"}),
                            "UpdateExpression": "ADD #balance :amount SET #entity = :entity, #customer = :customer, "
                            "#currency = :currency, #updated = :updated",
                            "ExpressionAttributeNames": {
                                "#balance": "balance",
                                "#entity": "entity",
                                "#customer": "customer_digest",
                                "#currency": "currency",
                                "#updated": "updated_at",
                            },
                            "ExpressionAttributeValues": _item(
                                {
                                    ":amount": amount.minor_units,
                                    ":entity": "store_credit_balance",
                                    ":customer": customer_digest(customer_key),
                                    ":currency": amount.currency,
                                    ":updated": at,
                                }
                            ),
                        }
                    },
                ],
            )
        except _EntryExists:
            return self._earlier(entry)
        return entry

    def _earlier(self, asked: StoreCreditEntry) -> StoreCreditEntry:
        """The entry written first under ``asked.entry_id``: returned when it credits the same, else a conflict."""
        marker = self._call(
            "get_item",
            TableName=self.table_name,
            Key=_item({"pk": f"STORE_CREDIT_ENTRY#{asked.entry_id}", "sk": _ENTRY_MARKER_SK}),
            ConsistentRead=True,
        ).get("Item")
        if marker is None:  # written in the same transaction as the marker: it cannot be missing
            raise TransientError(f"store-credit entry {asked.entry_id} is being written", code="store_busy")
        found = self._call(
            "get_item",
            TableName=self.table_name,
            Key=_item({"pk": plain_values(marker)["customer_pk"], "sk": f"ENTRY#{asked.entry_id}"}),
            ConsistentRead=True,
        ).get("Item")
        if found is None:
            raise TransientError(f"store-credit entry {asked.entry_id} is being written", code="store_busy")
        if plain_values(found).get("customer_digest") != customer_digest(asked.customer_key):
            raise IdempotencyConflict(f"store-credit entry {asked.entry_id} was written for another customer")
        earlier = _entry(found, asked.customer_key)
        if not earlier.same_credit(asked):
            raise IdempotencyConflict(
                f"store-credit entry {asked.entry_id} was written with other content "
                f"({earlier.amount} for refund {earlier.refund_id})"
            )
        return earlier

    def balance(self, customer_key: str, currency: str) -> Money:
        found = self._call(
            "get_item",
            TableName=self.table_name,
            Key=_item({"pk": customer_partition(customer_key), "sk": f"BALANCE#{currency}"}),
            ConsistentRead=True,
        ).get("Item")
        return Money.of(plain_values(found)["balance"] if found else 0, currency)

    def entries(self, customer_key: str) -> list[StoreCreditEntry]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :entry)",
            "ExpressionAttributeValues": _item({":pk": customer_partition(customer_key), ":entry": "ENTRY#"}),
            "ConsistentRead": True,
        }
        found: list[StoreCreditEntry] = []
        while True:
            response = self._call("query", **kwargs)
            found.extend(
                _entry(item, customer_key)
                for item in response.get("Items", [])
                # A digest collision of two customers' keys would share a partition: only this customer's entries.
                if plain_values(item).get("customer_digest") == customer_digest(customer_key)
            )
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return sorted(found, key=lambda entry: (entry.created_at, entry.entry_id))


def _entry(item: dict[str, Any], customer_key: str) -> StoreCreditEntry:
    """The entry an item holds, for the customer whose key it was read with (the item keeps only its digest)."""
    values = {**plain_values(item), "customer_key": customer_key}
    return StoreCreditEntry.model_validate(
        {name: values[name] for name in StoreCreditEntry.model_fields if name in values}
    )
