"""The Dynamics 365 Finance sample events are refund requests the API accepts, naming a Finance invoice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refundflow.api import RefundRequestBody
from refundflow.models import BooksSystem

EVENTS = Path(__file__).resolve().parents[3] / "events" / "dynamics_finance"


def test_there_are_samples() -> None:
    assert len(sorted(EVENTS.glob("*.json"))) >= 2


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda path: path.name)
def test_the_sample_is_a_refund_request_for_a_finance_invoice(path: Path) -> None:
    body = RefundRequestBody.model_validate(json.loads(path.read_text()))
    assert body.invoice is not None
    assert body.invoice.system is BooksSystem.DYNAMICS_FINANCE
    assert sum(line.amount.minor_units for line in body.lines) == (body.amount and body.amount.minor_units)
