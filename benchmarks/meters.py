"""Meters for the benchmarks: what one refund consumes on AWS, counted where the calls are made, priced by
AWS's billing rules rather than by what the requests look like.

Every AWS call this process makes goes through botocore's ``BaseClient._make_api_call``, whatever session made
the client (the handlers' shared one, Powertools' own for Secrets Manager and SSM), so the meter wraps that.
moto does not report consumed capacity; the meter reads the stored item before and after each DynamoDB write
(through the unwrapped call: not metered) and prices it with DynamoDB's documented rules:

- a write costs 1 unit per started KB of the larger of the item before and after (PutItem, UpdateItem,
  DeleteItem); a conditional write whose condition fails still costs, on the size of the item it found
  (at least 1 unit);
- a transaction costs 2 units per started KB of every item in it (prepare and commit); ConditionCheck items
  are priced like writes of the item they check; a cancelled transaction is priced as if it had committed
  (assumption: an upper bound, the documentation says only that a cancelled transaction still consumes);
- every global secondary index whose key attributes the item carries (before or after) is written as well,
  1 unit per started KB of the index entry (its key attributes, the table's key attributes and the projected
  attributes): a new entry is one put, a removed one one delete, a change of the index's key values a delete
  and a put (two writes), a change of projected attributes only one write, no change none
  (docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.Writes);
- a read costs 1 unit per started 4 KB (half for eventually consistent reads, twice in a transaction); a
  Query is priced on every item it evaluated (before any filter, whatever the projection), summed and rounded
  up once per page; a read of a missing item still costs its minimum.
"""

from __future__ import annotations

import math
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

Item = dict[str, Any]
WRITE_KB = 1024
READ_KB = 4096
_SINGLE_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


def attribute_value_size(value: dict[str, Any]) -> int:
    ((kind, content),) = value.items()
    if kind == "S":
        return len(str(content).encode())
    if kind == "N":
        digits = len(str(content).lstrip("-").replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(content)
    if kind in {"BOOL", "NULL"}:
        return 1
    if kind in {"SS", "NS", "BS"}:
        return sum(attribute_value_size({kind[0]: item}) for item in content)
    if kind == "L":
        return 3 + sum(1 + attribute_value_size(item) for item in content)
    if kind == "M":
        return 3 + sum(len(name.encode()) + 1 + attribute_value_size(item) for name, item in content.items())
    return 0


def item_size(item: Item | None) -> int:
    return sum(len(name.encode()) + attribute_value_size(value) for name, value in (item or {}).items())


def write_units(size: int, transactional: bool = False) -> int:
    return max(1, math.ceil(size / WRITE_KB)) * (2 if transactional else 1)


def read_units(size: int, consistent: bool, transactional: bool = False) -> float:
    units = max(1, math.ceil(size / READ_KB))
    if transactional:
        return units * 2
    return float(units) if consistent else units / 2


@dataclass(frozen=True)
class IndexShape:
    """A global secondary index: its key attributes and what it projects (``None``: every attribute)."""

    name: str
    keys: tuple[str, ...]
    projected: frozenset[str] | None


@dataclass(frozen=True)
class TableShape:
    keys: tuple[str, ...]
    indexes: tuple[IndexShape, ...]

    @classmethod
    def of(cls, description: dict[str, Any]) -> TableShape:
        table = description["Table"]
        keys = tuple(key["AttributeName"] for key in table["KeySchema"])
        indexes = []
        for index in table.get("GlobalSecondaryIndexes", []):
            projection = index.get("Projection", {})
            kind = projection.get("ProjectionType", "ALL")
            projected = (
                None
                if kind == "ALL"
                else frozenset(projection.get("NonKeyAttributes", []) if kind == "INCLUDE" else [])
            )
            index_keys = tuple(key["AttributeName"] for key in index["KeySchema"])
            indexes.append(IndexShape(index["IndexName"], index_keys, projected))
        return cls(keys, tuple(indexes))

    def index_entry(self, index: IndexShape, item: Item | None) -> Item | None:
        """The item's entry in ``index``, or None when the item lacks one of the index's key attributes."""
        if item is None or any(key not in item for key in index.keys):
            return None
        if index.projected is None:
            return dict(item)
        kept = set(index.keys) | set(self.keys) | index.projected
        return {name: value for name, value in item.items() if name in kept}


def index_write_units(shape: TableShape, before: Item | None, after: Item | None) -> dict[str, int]:
    """Write units each global secondary index consumes when ``before`` becomes ``after`` (None: absent)."""
    units: dict[str, int] = {}
    for index in shape.indexes:
        old, new = shape.index_entry(index, before), shape.index_entry(index, after)
        if (old is None and new is None) or old == new:
            continue
        if old is None:
            spent = write_units(item_size(new))
        elif new is None:
            spent = write_units(item_size(old))
        elif any(old[key] != new[key] for key in index.keys):
            spent = write_units(item_size(old)) + write_units(item_size(new))  # delete + put
        else:
            spent = write_units(item_size(new))
        units[index.name] = spent
    return units


Call = Callable[[BaseClient, str, dict[str, Any]], Any]


def key_shape(key: Item) -> str:
    """An item's key without its ids: each key attribute's value up to its first ``#`` (``REFUND/STATE``,
    ``AUDIT/EVENT``, ``BALANCE/...``), or the attribute's name for a key without one (an idempotency record)."""
    shown = []
    for name in sorted(key):
        value = str(next(iter(key[name].values())))
        shown.append(value.split("#", 1)[0] if "#" in value or value.isupper() else f"<{name}>")
    return "/".join(shown)


def read_shapes(operation: str, params: dict[str, Any]) -> tuple[str, ...]:
    """The key shapes a read names: GetItem's key, BatchGetItem's keys (deduplicated, in order), a Query's
    partition value's prefix and its index (``PAYMENT@by-payment``: the value its key condition names first),
    a Scan as ``(scan)``."""
    if operation == "GetItem":
        return (key_shape(params["Key"]),)
    if operation == "BatchGetItem":
        shapes = [key_shape(key) for request in params.get("RequestItems", {}).values() for key in request["Keys"]]
        return tuple(dict.fromkeys(shapes))
    if operation == "TransactGetItems":
        return tuple(key_shape(item["Get"]["Key"]) for item in params.get("TransactItems", []))
    if operation == "Query":
        first = re.search(r":[A-Za-z0-9_]+", params.get("KeyConditionExpression") or "")
        value = params.get("ExpressionAttributeValues", {}).get(first.group(0)) if first else None
        partition = str(next(iter(value.values()))).split("#", 1)[0] if value else "?"
        return (f"{partition}@{params['IndexName']}" if "IndexName" in params else partition,)
    return ("(scan)",)


def _consistent(operation: str, params: dict[str, Any]) -> bool:
    if operation == "BatchGetItem":
        return any(request.get("ConsistentRead") for request in params.get("RequestItems", {}).values())
    return operation == "TransactGetItems" or bool(params.get("ConsistentRead"))


@dataclass(frozen=True)
class WriteRecord:
    """One DynamoDB write as billed: who made it (``who``), the operation, each item's key shape, the units."""

    function: str
    operation: str
    items: tuple[str, ...]
    table_units: int
    index_units: dict[str, int]
    cancelled: bool = False
    # Each item's size in bytes as billed (the larger of before and after; a cancelled write: the item found).
    item_bytes: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "operation": self.operation,
            "items": list(self.items),
            "table_units": self.table_units,
            "index_units": dict(self.index_units),
            "cancelled": self.cancelled,
            "item_bytes": list(self.item_bytes),
        }


@dataclass(frozen=True)
class ReadRecord:
    """One DynamoDB read as billed: who made it, the operation, the items' key shapes (a Query: its key
    condition's partition), whether consistent, the units."""

    function: str
    operation: str
    items: tuple[str, ...]
    consistent: bool
    units: float


@dataclass
class Meter:
    """Counts AWS usage while ``start()``ed (until ``stop()``); thread-safe. Before and after images are read
    around each write: under concurrency another thread's write may fall in between (the benchmark's
    refunds touch different items, so this does not skew its figures)."""

    read_units: float = 0.0
    write_units: int = 0
    table_write_units: int = 0
    index_write_units: Counter[str] = field(default_factory=Counter)
    cancelled_write_units: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    events_put: int = 0
    detail_types: Counter[str] = field(default_factory=Counter)
    emails_sent: int = 0
    writes: list[WriteRecord] = field(default_factory=list)
    reads: list[ReadRecord] = field(default_factory=list)
    # Names the caller of a write (the benchmark: the function running); None: writes are not listed.
    who: Callable[[], str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _shapes: dict[str, TableShape] = field(default_factory=dict)
    _original: Call | None = None

    def start(self) -> Meter:
        original: Call = BaseClient._make_api_call  # type: ignore[attr-defined]
        self._original = original

        def metered_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            return self._call(original, client, operation, params)

        BaseClient._make_api_call = metered_call  # type: ignore[attr-defined]
        return self

    def stop(self) -> None:
        if self._original is not None:
            BaseClient._make_api_call = self._original  # type: ignore[attr-defined]
            self._original = None

    def reset(self) -> None:
        with self._lock:
            self.read_units = 0.0
            self.write_units = self.table_write_units = self.cancelled_write_units = 0
            self.index_write_units.clear()
            self.calls.clear()
            self.events_put = 0
            self.detail_types.clear()
            self.emails_sent = 0
            self.writes.clear()
            self.reads.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "dynamodb_read_units": round(self.read_units, 2),
                "dynamodb_write_units": self.write_units,
                "dynamodb_table_write_units": self.table_write_units,
                "dynamodb_index_write_units": dict(self.index_write_units),
                "dynamodb_cancelled_write_units": self.cancelled_write_units,
                "events_put": self.events_put,
                "detail_types": dict(self.detail_types),
                "emails_sent": self.emails_sent,
                "calls": dict(self.calls),
            }

    def log(self) -> tuple[list[WriteRecord], list[ReadRecord]]:
        """The writes and reads listed so far (with ``who``), copied."""
        with self._lock:
            return list(self.writes), list(self.reads)

    # ------------------------------------------------------------------ the wrapped call

    def _call(self, original: Call, client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        with self._lock:
            self.calls[f"{service}:{operation}"] += 1
            if service == "events" and operation == "PutEvents":
                self.events_put += len(params.get("Entries", []))
                self.detail_types.update(entry["DetailType"] for entry in params.get("Entries", []))
            elif service == "ses" and operation.startswith("Send"):
                self.emails_sent += 1
        if service != "dynamodb":
            return original(client, operation, params)
        try:
            return self._dynamodb(original, client, operation, params)
        except ClientError:
            raise
        except Exception as error:  # a meter must never break the call it watches
            print(f"meter: {type(error).__name__}: {error}", file=sys.stderr)
            raise

    def _peek(self, original: Call, client: BaseClient, table: str, key: Item) -> Item | None:
        found: Item | None = original(client, "GetItem", {"TableName": table, "Key": key, "ConsistentRead": True}).get(
            "Item"
        )
        return found

    def _shape(self, original: Call, client: BaseClient, table: str) -> TableShape:
        if table not in self._shapes:
            self._shapes[table] = TableShape.of(original(client, "DescribeTable", {"TableName": table}))
        return self._shapes[table]

    def _key(self, shape: TableShape, params: dict[str, Any]) -> Item:
        if "Key" in params:
            return dict(params["Key"])
        return {name: params["Item"][name] for name in shape.keys}

    def _dynamodb(self, original: Call, client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation in _SINGLE_WRITES:
            return self._single_write(original, client, operation, params)
        if operation == "TransactWriteItems":
            return self._transaction(original, client, params)
        response = original(client, operation, params)
        units = self._read_units(original, client, operation, params, response)
        record = None
        if self.who is not None and units:
            record = ReadRecord(
                self.who(), operation, read_shapes(operation, params), _consistent(operation, params), units
            )
        with self._lock:
            self.read_units += units
            if record is not None:
                self.reads.append(record)
        return response

    def _single_write(self, original: Call, client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        table = params["TableName"]
        shape = self._shape(original, client, table)
        key = self._key(shape, params)
        before = self._peek(original, client, table, key)
        try:
            response = original(client, operation, params)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                found = item_size(before)
                self._add_writes(write_units(found), {}, cancelled=True, what=(operation, [key]), sizes=(found,))
            raise
        after = None if operation == "DeleteItem" else self._peek(original, client, table, key)
        size = max(item_size(before), item_size(after))
        self._add_writes(
            write_units(size), index_write_units(shape, before, after), what=(operation, [key]), sizes=(size,)
        )
        return response

    def _transaction(self, original: Call, client: BaseClient, params: dict[str, Any]) -> Any:
        targets = []
        for entry in params["TransactItems"]:
            ((kind, body),) = entry.items()
            shape = self._shape(original, client, body["TableName"])
            key = self._key(shape, body)
            targets.append((kind, body["TableName"], key, shape, self._peek(original, client, body["TableName"], key)))
        try:
            response = original(client, "TransactWriteItems", params)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                found = tuple(item_size(before) for *_, before in targets)
                spent = sum(write_units(size, transactional=True) for size in found)
                keys = [key for _, _, key, _, _ in targets]
                self._add_writes(spent, {}, cancelled=True, what=("TransactWriteItems", keys), sizes=found)
            raise
        table_units = 0
        index_units: Counter[str] = Counter()
        sizes = []
        for kind, table, key, shape, before in targets:
            if kind == "ConditionCheck":
                sizes.append(item_size(before))
                table_units += write_units(sizes[-1], transactional=True)
                continue
            after = None if kind == "Delete" else self._peek(original, client, table, key)
            sizes.append(max(item_size(before), item_size(after)))
            table_units += write_units(sizes[-1], transactional=True)
            index_units.update(index_write_units(shape, before, after))
        keys = [key for _, _, key, _, _ in targets]
        self._add_writes(table_units, dict(index_units), what=("TransactWriteItems", keys), sizes=tuple(sizes))
        return response

    def _add_writes(
        self,
        table_units: int,
        index_units: dict[str, int],
        *,
        cancelled: bool = False,
        what: tuple[str, list[Item]] | None = None,
        sizes: tuple[int, ...] = (),
    ) -> None:
        record = None
        if self.who is not None and what is not None:
            operation, keys = what
            items = tuple(key_shape(key) for key in keys)
            record = WriteRecord(self.who(), operation, items, table_units, dict(index_units), cancelled, sizes)
        with self._lock:
            if record is not None:
                self.writes.append(record)
            self.table_write_units += table_units
            self.index_write_units.update(index_units)
            self.write_units += table_units + sum(index_units.values())
            if cancelled:
                self.cancelled_write_units += table_units

    def _read_units(
        self, original: Call, client: BaseClient, operation: str, params: dict[str, Any], response: dict[str, Any]
    ) -> float:
        consistent = bool(params.get("ConsistentRead"))
        if operation == "GetItem":
            return read_units(item_size(response.get("Item")), consistent)
        if operation in {"Query", "Scan"}:
            evaluated = response.get("Items", [])
            if any(name in params for name in ("FilterExpression", "ProjectionExpression", "Select")):
                # Billed on every item the key condition read, before the filter and projection.
                bare = {
                    name: value
                    for name, value in params.items()
                    if name not in {"FilterExpression", "ProjectionExpression", "Select"}
                }
                names = set(re.findall(r"[#:][A-Za-z0-9_]+", bare.get("KeyConditionExpression") or ""))
                bare["ExpressionAttributeNames"] = {
                    ref: name for ref, name in params.get("ExpressionAttributeNames", {}).items() if ref in names
                }
                values = params.get("ExpressionAttributeValues", {})
                bare["ExpressionAttributeValues"] = {ref: value for ref, value in values.items() if ref in names}
                for empty in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
                    if not bare[empty]:
                        del bare[empty]
                evaluated = original(client, operation, bare).get("Items", [])
            return read_units(sum(item_size(item) for item in evaluated), consistent)
        if operation == "BatchGetItem":
            units = 0.0
            for table, request in params.get("RequestItems", {}).items():
                found = {
                    tuple(
                        sorted((name, str(value)) for name, value in item.items() if name in request["Keys"][0])
                    ): item
                    for item in response.get("Responses", {}).get(table, [])
                }
                for key in request["Keys"]:
                    item = found.get(tuple(sorted((name, str(value)) for name, value in key.items())))
                    units += read_units(item_size(item), bool(request.get("ConsistentRead")))
            return units
        if operation == "TransactGetItems":
            return sum(
                read_units(item_size(item.get("Item")), True, transactional=True)
                for item in response.get("Responses", [])
            )
        return 0.0
