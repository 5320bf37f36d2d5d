"""EventBridge publisher for refund events."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from refundflow.adapters.aws import client as aws_client
from refundflow.errors import TransientError
from refundflow.events import EVENT_SOURCE, ReconciliationEvent, RefundEvent
from refundflow.ports import EventPublisher


class EventBridgePublisher(EventPublisher):
    def __init__(self, bus_name: str, events: Any | None = None) -> None:
        self.bus_name = bus_name
        self._events = events

    @property
    def events(self) -> Any:
        if self._events is None:
            self._events = aws_client("events")
        return self._events

    def publish(self, events: Sequence[RefundEvent | ReconciliationEvent]) -> None:
        entries = [
            {
                "Source": EVENT_SOURCE,
                "DetailType": event.detail_type,
                "Detail": json.dumps(event.model_dump(mode="json", exclude={"detail_type"})),
                "EventBusName": self.bus_name,
                "Time": event.occurred_at,
                "Resources": [],
            }
            for event in events
        ]
        for start in range(0, len(entries), 10):
            try:
                response = self.events.put_events(Entries=entries[start : start + 10])
            except (ClientError, BotoCoreError) as error:
                raise TransientError(f"EventBridge put_events failed: {error}", code="bus_unavailable") from error
            if response.get("FailedEntryCount"):
                raise TransientError(
                    f"EventBridge rejected {response['FailedEntryCount']} event(s)", code="bus_rejected_events"
                )
