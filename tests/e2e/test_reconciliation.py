"""Reconciliation end to end: a refund the workflow completed is found in Stripe's settlement file, which
lands in the settlement bucket and runs the reconciliation state machine (Distributed Map on the local
stack); the refund becomes SETTLED, once; a line that does not match reaches ops."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

from local.stack import DevStack
from tests.e2e.harness import E2EClient, Orders, eventually

OPS = "ops@example.com"
HEADER = (
    "balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,reporting_category,source_id,"
    "description,automatic_payout_id,automatic_payout_effective_at\n"
)


def refund_row(line_id: str, refund_id: str, minor_units: int) -> str:
    amount = f"-{minor_units // 100}.{minor_units % 100:02d}"
    return (
        f"{line_id},2026-11-28 10:00:00,2026-11-30 00:00:00,eur,{amount},0.00,{amount},refund,{refund_id},"
        f"Refund,po_e2e,2026-12-01 00:00:00\n"
    )


def completed(orders: Orders, client: E2EClient, minor_units: int, name: str) -> dict[str, Any]:
    order = orders.paid(minor_units, invoice=False, name=name)
    refund_id = orders.submit(Orders.request(order))
    refund = orders.settle(refund_id)
    assert refund["status"] == "COMPLETED", refund
    assert refund["provider_refund_id"]
    return refund


def reconcile(stack: DevStack, body: str, key: str | None = None) -> dict[str, Any]:
    key = key or f"settlement/stripe/{uuid.uuid4().hex}.csv"
    described = stack.reconcile_settlement(key, body.encode())
    assert described["status"] == "SUCCEEDED", described
    summary: dict[str, Any] = json.loads(described["output"])["summary"]
    return summary


def test_completed_refund_is_settled_by_the_settlement_file_once(
    orders: Orders, client: E2EClient, stack: DevStack
) -> None:
    # GIVEN a refund the workflow completed, and Stripe's settlement listing it
    refund = completed(orders, client, 3_100, "settle")
    body = HEADER + refund_row(f"txn_{uuid.uuid4().hex[:12]}", refund["provider_refund_id"], 3_100)
    # WHEN the file lands in the settlement bucket
    key = f"settlement/stripe/{uuid.uuid4().hex}.csv"
    summary = reconcile(stack, body, key)
    # THEN the refund is SETTLED, with the line on its timeline
    assert summary["counts"] == {"matched": 1}
    settled = client.refund(refund["refund_id"])
    assert settled["status"] == "SETTLED"
    entry = settled["timeline"][-1]
    assert entry["to_status"] == "SETTLED"
    assert entry["details"]["reference"] == refund["provider_refund_id"]
    assert settled["audit"]["intact"] is True
    # WHEN the same file is delivered again, and its lines once more inside another report
    for again in (reconcile(stack, body, key), reconcile(stack, body)):
        # THEN nothing changes
        assert again["outcomes"] == {"already_done": 1}
    assert len(client.refund(refund["refund_id"])["timeline"]) == len(settled["timeline"])


def test_mismatches_reach_ops_with_their_class(
    orders: Orders, client: E2EClient, stack: DevStack, sent_emails: Any
) -> None:
    # GIVEN a completed refund settled one cent short, and a refund made outside refundflow
    refund = completed(orders, client, 4_200, "short")
    outside = f"re_outside_{uuid.uuid4().hex[:10]}"
    body = (
        HEADER
        + refund_row(f"txn_{uuid.uuid4().hex[:12]}", refund["provider_refund_id"], 4_199)
        + refund_row(f"txn_{uuid.uuid4().hex[:12]}", outside, 999)
    )
    # WHEN the settlement is reconciled
    summary = reconcile(stack, body)
    assert summary["counts"] == {"amount_differs": 1, "unexpected_in_settlement": 1}
    # THEN the refund stays COMPLETED, the mismatch on its timeline
    seen = client.refund(refund["refund_id"])
    assert seen["status"] == "COMPLETED"
    mismatch = seen["timeline"][-1]
    assert (mismatch["type"], mismatch["details"]["difference_minor_units"]) == ("ReconciliationMismatch", -1)
    # AND ops are e-mailed about both
    [about_refund] = eventually(
        lambda: [
            mail
            for mail in sent_emails(to=OPS)
            if mail["data"].get("refund_id") == refund["refund_id"]
            and mail["data"]["event"] == "ReconciliationMismatch"
        ],
        what="the ops alert about the refund",
    )
    assert "amount_differs" in about_refund["data"]["details"]
    [about_outside] = eventually(
        lambda: [mail for mail in sent_emails(to=OPS) if outside in mail["data"].get("details", "")],
        what="the ops alert about the outside refund",
    )
    assert about_outside["data"]["status"] == "unexpected_in_settlement"


def test_cli_reconciles_settlement_and_bank_statement_with_a_report(
    orders: Orders, client: E2EClient, stack: DevStack, tmp_path: Any
) -> None:
    from refundflow_cli.reconcile import run

    # GIVEN a completed refund, the Stripe report that settles it in a payout, and the bank statement crediting
    # that payout one cent short
    refund = completed(orders, client, 2_700, "cli")
    payout = f"po_cli_{uuid.uuid4().hex[:10]}"
    settlement = tmp_path / "stripe_settlement.csv"
    settlement.write_text(
        HEADER
        + refund_row(f"txn_{uuid.uuid4().hex[:12]}", refund["provider_refund_id"], 2_700).replace("po_e2e", payout)
        + f"txn_{uuid.uuid4().hex[:12]},2026-11-28 09:00:00,2026-11-30 00:00:00,eur,100.00,0.00,100.00,charge,"
        f"ch_cli,Order,{payout},2026-12-01 00:00:00\n"
        + f"txn_{uuid.uuid4().hex[:12]},2026-12-01 00:00:00,2026-12-01 00:00:00,eur,-73.00,0.00,-73.00,payout,"
        f"{payout},STRIPE PAYOUT,,\n"
    )
    bank = tmp_path / "statement.xml"
    bank.write_text(
        '<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><Stmt>'
        '<Ntry><Amt Ccy="EUR">72.99</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
        f"<BookgDt><Dt>2026-12-01</Dt></BookgDt><AcctSvcrRef>B-{payout}</AcctSvcrRef>"
        f"<AddtlNtryInf>STRIPE PAYOUT {payout}</AddtlNtryInf></Ntry></Stmt></BkToCstmrStmt></Document>"
    )
    output = io.StringIO()
    # WHEN finance runs the CLI against the local stack
    status = run(
        [str(settlement), "--bank", str(bank), "--api-url", stack.api_url, "--report-dir", str(tmp_path)],
        out=output,
    )
    # THEN the refund is SETTLED and the payout's bank credit is one cent short
    assert status == 0
    assert client.refund(refund["refund_id"])["status"] == "SETTLED"
    rows = list(csv.DictReader((tmp_path / "stripe_settlement.csv.reconciliation.csv").open()))
    classes = {row["class"] for row in rows}
    assert {"matched", "payout_amount_differs", "not_reconciled"} <= classes
    [short] = [row for row in rows if row["class"] == "payout_amount_differs"]
    assert (short["reference"], short["difference_minor_units"], short["amount"]) == (payout, "-1", "72.99")
    summary = (tmp_path / "stripe_settlement.csv.summary.txt").read_text()
    assert "payout_amount_differs" in summary
    assert "27.00 EUR" in summary
    assert output.getvalue().startswith("Reconciliation of stripe_settlement.csv (stripe)")


def test_a_bank_statement_before_its_settlement_is_resolved_when_the_settlement_lands(stack: DevStack) -> None:
    # GIVEN the bank statement crediting two Stripe payouts, one a cent short, before any settlement names them
    tag = uuid.uuid4().hex[:8]
    exact, short = f"po_{tag}_exact", f"po_{tag}_short"
    entries = "".join(
        f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
        f"<BookgDt><Dt>2026-12-01</Dt></BookgDt><AcctSvcrRef>B-{payout}</AcctSvcrRef>"
        f"<AddtlNtryInf>STRIPE PAYOUT {payout}</AddtlNtryInf></Ntry>"
        for payout, amount in ((exact, "50.00"), (short, "49.99"))
    )
    statement = (
        '<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>'
        f"<Stmt>{entries}</Stmt></BkToCstmrStmt></Document>"
    ).encode()
    statement_key = f"settlement/bank/camt053/{tag}.xml"
    assert reconcile(stack, statement.decode(), statement_key)["counts"] == {"not_reconciled": 2}
    # WHEN the settlement announcing both payouts lands
    rows = [HEADER]
    for payout in (exact, short):
        rows.append(
            f"txn_{payout}_c,2026-11-29 10:00:00,2026-11-30 00:00:00,eur,50.00,0.00,50.00,charge,ch_{payout},Order,"
            f"{payout},2026-11-30 00:00:00\n"
            f"txn_{payout},2026-11-30 00:00:00,2026-11-30 00:00:00,eur,-50.00,0.00,-50.00,payout,{payout},PAYOUT,,\n"
        )
    settlement_key = f"settlement/stripe/{tag}.csv"
    summary = reconcile(stack, "".join(rows), settlement_key)
    # THEN the kept credits are resolved: one payout matched, the other a cent short
    assert summary["counts"] == {"matched": 1, "not_reconciled": 4, "payout_amount_differs": 1}
    # WHEN either file lands again THEN nothing more is recorded
    for key, body in ((settlement_key, "".join(rows)), (statement_key, statement.decode())):
        again = reconcile(stack, body, key)
        assert again["outcomes"].get("recorded", 0) == 0, again
        assert "payout_not_found" not in again["counts"]


def test_card_data_in_a_settlement_file_and_a_bank_statement_is_masked_in_everything_kept(
    stack: DevStack, sent_emails: Any
) -> None:
    from tests.e2e.test_data_hygiene import as_text, card_numbers, table_items

    # GIVEN a Stripe report whose refund line names no refund of ours but holds card numbers in its id and its
    # reference, and a bank statement with a card number in its remittance text and one as its reference
    tag = uuid.uuid4().hex[:8]
    body = HEADER + refund_row("5555555555554444", f"re_{tag} 4242 4242 4242 4242", 1_500)
    statement = (
        '<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>'
        '<Stmt><Ntry><Amt Ccy="EUR">15.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
        "<BookgDt><Dt>2026-12-01</Dt></BookgDt><AcctSvcrRef>4242424242424242</AcctSvcrRef>"
        f"<AddtlNtryInf>REFUND {tag} CARD 5555-5555-5555-4444 CVC 123</AddtlNtryInf></Ntry></Stmt></BkToCstmrStmt>"
        "</Document>"
    )
    # WHEN both are reconciled
    assert reconcile(stack, body)["counts"] == {"unexpected_in_settlement": 1}
    assert reconcile(stack, statement, f"settlement/bank/camt053/{tag}.xml")["counts"] == {"not_reconciled": 1}
    # THEN the mismatch reaches ops with the reference masked
    [alert] = eventually(
        lambda: [mail for mail in sent_emails(to=OPS) if f"re_{tag}" in mail["data"].get("details", "")],
        what="the ops alert about the line",
    )
    assert "[card ****4242]" in alert["data"]["details"]
    # AND nothing the stack keeps of either file holds a card number: not the table (the mismatch, the kept bank
    # line, the first-seen markers), not the converted lines in the bucket (only the files as they were dropped)
    items = [item for item in table_items(stack, "RefundsTable") if tag in as_text(item) or "****4242" in as_text(item)]
    assert items, "the run kept something of the lines"
    assert not [card for item in items for card in card_numbers(as_text(item))]
    s3 = stack.client("s3")
    bucket = stack.settlement_bucket()
    dropped = {f"settlement/bank/camt053/{tag}.xml"}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            if entry["Key"] in dropped or entry["Key"].startswith("settlement/stripe/"):
                continue
            text = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read().decode("utf-8", "replace")
            if tag in text or "****4242" in text:
                assert not card_numbers(text), entry["Key"]


def test_the_installed_cli_reconciles_from_any_directory(stack: DevStack, tmp_path: Any) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    # GIVEN finance's own folder, outside the checkout, holding a Stripe report and one that is not UTF-8
    command = Path(sys.executable).parent / "refundflow"
    good = tmp_path / "stripe_settlement.csv"
    good.write_text(HEADER + refund_row(f"txn_{uuid.uuid4().hex[:12]}", f"re_elsewhere_{uuid.uuid4().hex[:8]}", 900))
    broken = tmp_path / "broken_stripe.csv"
    broken.write_bytes(HEADER.encode() + refund_row("txn_x", "re_x", 100).encode().replace(b"re_x", b"re_\xff\xfe"))
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "AWS_ENDPOINT_URL")}

    def reconcile_there(path: Path) -> subprocess.CompletedProcess[str]:
        arguments = [str(command), "reconcile", str(path), "--api-url", stack.api_url, "--no-progress"]
        return subprocess.run(
            [*arguments, "--report-dir", str(tmp_path / "reports")],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # WHEN the installed command runs there against the local stack
    done = reconcile_there(good)
    # THEN it finds the stack through its API, reconciles, and writes the report there
    assert done.returncode == 0, done.stderr
    assert "unexpected_in_settlement" in done.stdout
    assert (tmp_path / "reports" / "stripe_settlement.csv.reconciliation.csv").is_file()
    # AND a file that is not UTF-8 is exit 2 with one line saying so, no traceback
    refused = reconcile_there(broken)
    assert refused.returncode == 2
    assert "not UTF-8 text" in refused.stderr
    assert "Traceback" not in refused.stderr
