"""``refundflow refunds trace``: the traces' routes called with SigV4 (query string signed), and what a person reads of
a trace (every hop's ids whole at a narrow width, the missing hops with their codes, a payout's refunds)."""

from __future__ import annotations

import json
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


def test_the_command_exits_13_when_an_audit_chain_is_broken_and_2_without_one_subject(paid: World) -> None:
    import responses
    from typer.testing import CliRunner

    from refundflow_cli.app import app

    # GIVEN a settled refund whose settling audit entry was edited afterwards
    refund = completed(paid, "RMA-1")
    settle(paid, payout_file(refund))
    client, table = paid.repository.dynamodb, paid.repository.table_name
    key = {":pk": {"S": f"AUDIT#{refund.refund_id}"}}
    entry = client.query(TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues=key)["Items"][-1]
    client.put_item(TableName=table, Item={**entry, "actor": {"S": "mallory"}})
    trace = refund_trace(refund.refund_id, repository=paid.repository).model_dump(mode="json")
    payout = payout_trace("po_1", repository=paid.repository).model_dump(mode="json")
    local = "http://127.0.0.1:9"
    runner = CliRunner()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.get(f"{local}/_local/outputs", json={"Region": "us-east-1", "Outputs": {}, "Parameters": {}})
        mocked.get(f"{local}/refunds/{refund.refund_id}/trace", json=trace)
        mocked.get(f"{local}/payouts/po_1/trace", json=payout)
        # WHEN it is traced, as JSON and from its payout's end
        as_json = runner.invoke(app, ["--api-url", local, "refunds", "trace", refund.refund_id, "--json"])
        from_payout = runner.invoke(app, ["--api-url", local, "refunds", "trace", "--payout", "po_1"])
        neither = runner.invoke(app, ["--api-url", local, "refunds", "trace"])
        both = runner.invoke(app, ["--api-url", local, "refunds", "trace", "rf_1", "--payout", "po_1"])
    # THEN both say so with exit 13; the JSON is the API's document
    assert as_json.exit_code == 13, as_json.output
    assert json.loads(as_json.stdout)["audit"]["intact"] is False
    assert from_payout.exit_code == 13, from_payout.output
    assert "AUDIT CHAIN BROKEN" in from_payout.stdout
    # AND a command naming no refund, or two subjects, is a usage error
    assert (neither.exit_code, both.exit_code) == (2, 2)
