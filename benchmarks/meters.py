"""Meters for the benchmarks: what one refund consumes on AWS, counted where the calls are made.

Every boto3 client this process makes (the handlers', Powertools') shares boto3's default session, so
hooks registered on it see each DynamoDB, EventBridge, SQS, SES and Secrets Manager call. DynamoDB
capacity units are computed from the request and response items with DynamoDB's documented sizing
(attribute names + values; 1 KB per write unit, 4 KB per read unit, transactions count twice,
eventually consistent reads half). moto does not report consumed capacity, so this is the honest
substitute: an estimate from the real payloads, not a hard-coded figure."""

from __future__ import annotations

import math
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3

UPDATED_ITEM_BYTES = 200


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


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_value_size(value) for name, value in item.items())


def write_units(size: int, transactional: bool = False) -> int:
    return max(1, math.ceil(size / 1024)) * (2 if transactional else 1)


def read_units(size: int, consistent: bool, transactional: bool = False) -> float:
    units = max(1, math.ceil(size / 4096))
    if transactional:
        return units * 2
    return float(units) if consistent else units / 2


@dataclass
class Meter:
    """Counts AWS usage while ``start()``ed; thread-safe (the workflow runs on several threads)."""

    read_units: float = 0.0
    write_units: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    events_put: int = 0
    detail_types: Counter[str] = field(default_factory=Counter)
    emails_sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _consistent: dict[int, bool] = field(default_factory=dict)

    def start(self) -> Meter:
        session = boto3._get_default_session()
        session.events.register("before-parameter-build", self._guarded(self._before))
        session.events.register("after-call", self._guarded(self._after))
        return self

    @staticmethod
    def _guarded(hook: Any) -> Any:
        """A meter must never break the call it watches."""

        def run(**kwargs: Any) -> None:
            try:
                hook(**kwargs)
            except Exception as error:
                print(f"meter: {type(error).__name__}: {error}", file=sys.stderr)

        return run

    def reset(self) -> None:
        with self._lock:
            self.read_units = 0.0
            self.write_units = 0
            self.calls.clear()
            self.events_put = 0
            self.detail_types.clear()
            self.emails_sent = 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "dynamodb_read_units": round(self.read_units, 2),
                "dynamodb_write_units": self.write_units,
                "events_put": self.events_put,
                "detail_types": dict(self.detail_types),
                "emails_sent": self.emails_sent,
                "calls": dict(self.calls),
            }

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        service = model.service_model.service_name
        operation = model.name
        self._consistent[threading.get_ident()] = bool(params.get("ConsistentRead"))
        with self._lock:
            self.calls[f"{service}:{operation}"] += 1
            if service == "dynamodb":
                self._dynamodb_writes(operation, params)
            elif service == "events" and operation == "PutEvents":
                self.events_put += len(params.get("Entries", []))
                self.detail_types.update(entry["DetailType"] for entry in params.get("Entries", []))
            elif service == "ses" and operation.startswith("Send"):
                self.emails_sent += 1

    def _dynamodb_writes(self, operation: str, params: dict[str, Any]) -> None:
        if operation == "PutItem":
            self.write_units += write_units(item_size(params["Item"]))
        elif operation in {"UpdateItem", "DeleteItem"}:
            # Billed on the larger of the item before and after; the items we update (balances, daily
            # totals, idempotency records) are a few hundred bytes: one unit.
            self.write_units += write_units(UPDATED_ITEM_BYTES)
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                size = item_size(body["Item"]) if kind == "Put" else UPDATED_ITEM_BYTES
                self.write_units += write_units(size, transactional=True)

    def _after(self, model: Any, parsed: dict[str, Any], **kwargs: Any) -> None:
        if model.service_model.service_name != "dynamodb":
            return
        consistent = self._consistent.pop(threading.get_ident(), False)
        with self._lock:
            if model.name == "GetItem":
                item = parsed.get("Item")
                self.read_units += read_units(item_size(item) if item else 0, consistent=consistent)
            elif model.name == "Query":
                size = sum(item_size(item) for item in parsed.get("Items", []))
                self.read_units += read_units(size, consistent=consistent)
