"""Stripe's payout news and payout report, without the network: a ``payout.*`` event names its payout (a pointer,
nothing else), and the balance transactions become the itemized report the Stripe settlement parser reads."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from typing import Any

import pytest

from refundflow.errors import InvalidRequest
from refundflow.platforms.stripe.connector import REPORT_COLUMNS, _payout_row, _report_row
from refundflow.platforms.stripe.inbound import StripeInbound
from refundflow.platforms.stripe.payloads import StripeBalanceTransaction, StripePayout
from refundflow.reconciliation.providers import parse_stripe
from refundflow.reconciliation.records import LineKind

NOW = 1_800_000_000
SECRET = "whsec_payouts_unit_0123"


def delivered(event: dict[str, Any]) -> Any:
    body = json.dumps(event).encode()
    digest = hmac.new(SECRET.encode(), f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    inbound = StripeInbound(now=lambda: float(NOW))
    return inbound.verify({"Stripe-Signature": f"t={NOW},v1={digest}"}, body, {"webhook_secrets": [SECRET]})


def payout_event(kind: str, payout: dict[str, Any]) -> dict[str, Any]:
    return {"id": "evt_1", "object": "event", "type": kind, "created": NOW, "data": {"object": payout}}


PAYOUT = {"id": "po_1QbZ9", "object": "payout", "amount": 7_415, "currency": "eur", "status": "paid"}


@pytest.mark.parametrize("kind", ["payout.paid", "payout.failed", "payout.reconciliation_completed"])
def test_a_payout_event_names_its_payout_and_nothing_else(kind: str) -> None:
    event = delivered(payout_event(kind, PAYOUT)).events[0]
    assert event.payout_id == "po_1QbZ9"
    assert event.event_type == kind
    assert event.refunds == []
    assert event.payment is None


def test_a_refund_event_names_no_payout() -> None:
    refund = {"id": "re_1", "object": "refund", "amount": 100, "currency": "eur", "payment_intent": "pi_1"}
    assert delivered(payout_event("refund.updated", refund)).events[0].payout_id is None


def test_a_payout_event_whose_object_has_no_payout_id_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        delivered(payout_event("payout.paid", {**PAYOUT, "id": "ch_not_a_payout"}))


def transaction(txn_id: str, category: str, amount: int, fee: int, source: str | dict[str, Any]) -> Any:
    return StripeBalanceTransaction.model_validate(
        {
            "id": txn_id,
            "object": "balance_transaction",
            "amount": amount,
            "fee": fee,
            "net": amount - fee,
            "currency": "eur",
            "reporting_category": category,
            "type": category,
            "created": NOW,
            "available_on": NOW,
            "source": source,
            "description": "Order 5512, gift",
        }
    )


def test_balance_transactions_become_the_itemized_report_the_settlement_parser_reads() -> None:
    # GIVEN a charge, a refund (its source expanded), a refund failure, and the payout's own debit
    out = io.StringIO()
    out.write(",".join(REPORT_COLUMNS) + "\n")
    payout = StripePayout.model_validate({**PAYOUT, "balance_transaction": "txn_po", "arrival_date": NOW})
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_report_row(transaction("txn_c", "charge", 10_000, 165, "ch_1"), payout.id, "x"))
    writer.writerow(
        _report_row(transaction("txn_r", "refund", -2_500, 0, {"id": "re_1", "object": "refund"}), "po", "x")
    )
    writer.writerow(_report_row(transaction("txn_f", "refund_failure", 80, 0, "re_2"), payout.id, "x"))
    writer.writerow(_payout_row(payout))
    # WHEN the Stripe settlement parser reads it
    lines = list(parse_stripe(io.StringIO(out.getvalue())))
    # THEN amounts are exact minor units with their signs, references are the sources' ids, the payout adds up
    assert [(line.kind, line.reference, line.amount, line.fee, line.net) for line in lines] == [
        (LineKind.CHARGE, "ch_1", 10_000, 165, 9_835),
        (LineKind.REFUND, "re_1", 2_500, 0, -2_500),
        (LineKind.REFUND_FAILURE, "re_2", 80, 0, 80),
        (LineKind.PAYOUT, "po_1QbZ9", 7_415, 0, -7_415),
    ]
    assert sum(line.net for line in lines[:-1]) == 7_415
    assert lines[-1].line_id == "txn_po"
