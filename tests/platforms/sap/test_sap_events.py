"""SAP's sample events are refund requests the API accepts, crediting an SAP invoice (a billing document number)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refundflow.api import RefundRequestBody
from refundflow.models import BooksSystem

EVENTS = Path(__file__).resolve().parents[3] / "events" / "sap"


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda path: path.name)
def test_the_sap_samples_are_valid_refund_requests_for_an_sap_invoice(path: Path) -> None:
    body = RefundRequestBody.model_validate(json.loads(path.read_text()))
    assert body.invoice is not None
    assert body.invoice.system is BooksSystem.SAP
    assert body.invoice.invoice_id.isdigit()
    assert len(body.invoice.invoice_id) <= 10


def test_there_are_sap_samples() -> None:
    assert len(list(EVENTS.glob("*.json"))) == 2
