"""``refundflow refunds trace``: the traces' routes called with SigV4 (query string signed), and what a person reads of
a trace (every hop's ids whole at a narrow width, the missing hops with their codes, a payout's refunds)."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from refundflow.domain.trace import payout_trace, refund_trace
from refundflow_cli.commands.refunds import payout_panel, trace_panel
from tests.support.fakes import World, env  # noqa: F401 - the shared fixture
from tests.unit.cli.test_retry_and_targets import deployed
from tests.unit.reconciliation.test_trace import (
    STATEMENT,
    bank_statement,
    completed,
    payout_file,
    reserved,
    settle,
)
from tests.unit.reconciliation.test_trace import paid as paid

API = "https://abc.execute-api.eu-west-1.amazonaws.com"


def rendered(renderable: Any) -> str:
    console = Console(record=True, width=80, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_the_trace_routes_are_called_signed_with_their_query(monkeypatch: pytest.MonkeyPatch) -> None:
    import responses

    api = deployed(monkeypatch)
    with responses.RequestsMock() as mocked:
        mocked.get(f"{API}/refunds/rf_1/trace", json={"refund_id": "rf_1"})
        mocked.get(f"{API}/payouts/po_1/trace", json={"payout_id": "po_1"})
        mocked.get(f"{API}/bank-lines/trace", json={"file": "f"})
        assert api.refund_trace("rf_1") == {"refund_id": "rf_1"}
        assert api.payout_trace("po_1", after="stripe#txn_2") == {"payout_id": "po_1"}
        assert api.bank_line_trace("settlement/bank/camt053/a b.xml", 2) == {"file": "f"}
        calls = [call.request for call in mocked.calls]
    assert calls[1].url == f"{API}/payouts/po_1/trace?after=stripe%23txn_2"
    assert calls[2].url == f"{API}/bank-lines/trace?file=settlement%2Fbank%2Fcamt053%2Fa+b.xml&line=2"
    for request in calls:
        assert str(request.headers["Authorization"]).startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")


def test_a_trace_prints_every_id_whole_and_says_what_is_missing(paid: World) -> None:
    # GIVEN one refund settled and credited, another only reserved
    refund = completed(paid, "RMA-1")
    settle(paid, payout_file(refund))
    bank_statement(paid, 7_500)
    waiting = reserved(paid, "RMA-2")
    # WHEN their traces are printed 80 columns wide
    full = rendered(trace_panel(refund_trace(refund.refund_id, repository=paid.repository).model_dump(mode="json")))
    partial = rendered(trace_panel(refund_trace(waiting, repository=paid.repository).model_dump(mode="json")))
    # THEN each hop's ids are on their own lines, whole, and the verdicts are said
    assert f"provider_refund_id: {refund.provider_refund_id}" in full
    assert f"file: {STATEMENT}" in full
    assert "payout_id: po_1" in full
    assert "every hop is there" in full
    assert "audit chain verified" in full
    assert "not_yet_refunded: the provider has not refunded it yet" in partial
    assert "missing: provider_refund: not_yet_refunded" in partial.replace("\n", " ")
    # AND the payout's end lists the refund with its line and its summary
    listed = rendered(
        payout_panel(payout_trace("po_1", repository=paid.repository).model_dump(mode="json"), bank_line=None)
    )
    assert refund.refund_id in listed
    assert "trace: complete" in listed
    assert "source: returns-portal RMA-1 ticket T-77" in listed
