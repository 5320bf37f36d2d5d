"""The sample notifications in events/adyen/ verify with the local stack's HMAC key and are valid for the spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.simulators.adyen import DEFAULT_HMAC_KEY
from refundflow.platforms.adyen.notifications import verified_items
from refundflow.platforms.adyen.signature import decode_keys
from tests.platforms.adyen import contract

EVENTS = Path(__file__).resolve().parents[3] / "events" / "adyen"
SAMPLES = sorted(EVENTS.glob("adyen_*.json"))


def test_there_are_samples_for_each_refund_event() -> None:
    codes = {
        wrapper["NotificationRequestItem"]["eventCode"]
        for path in SAMPLES
        for wrapper in json.loads(path.read_text())["notificationItems"]
    }
    assert codes == {"REFUND", "REFUND_FAILED", "REFUNDED_REVERSED"}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_a_sample_verifies_and_is_valid_for_the_spec(path: Path) -> None:
    # GIVEN a sample batch as Adyen would post it
    raw = path.read_bytes()
    # WHEN verified with the local stack's key / THEN every item is accepted and valid for its webhook
    items = verified_items(raw, decode_keys([DEFAULT_HMAC_KEY]))
    assert items
    assert all(item.merchant_reference.startswith("rf_") for item in items)
    wrappers = json.loads(raw)["notificationItems"]
    assert [error for wrapper in wrappers for error in contract.item_errors(wrapper["NotificationRequestItem"])] == []
