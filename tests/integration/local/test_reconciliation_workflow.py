"""The reconciliation state machine on the local stack with a file larger than one batch: the Distributed Map
splits it, each batch is matched on its own, and Summarize puts together what only the whole file tells
(payout totals across batches, a line id repeated in another batch)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.stack import DevStack
from tests.e2e.harness import acquire_stack, release_stack

HEADER = (
    "balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,reporting_category,source_id,"
    "description,automatic_payout_id,automatic_payout_effective_at\n"
)
CHARGES = 1_200  # MatchBatches takes 500 lines a batch: three batches


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    yield acquire_stack()
    release_stack()


def settlement(tag: str, *, payout_error: int) -> str:
    rows = [HEADER]
    total = 0
    for number in range(CHARGES):
        rows.append(
            f"txn_{tag}_{number},2026-11-28 10:00:00,2026-11-30 00:00:00,eur,10.00,0.00,10.00,charge,ch_{tag}_{number},"
            f"Order,po_{tag},2026-12-01 00:00:00\n"
        )
        total += 1000
    # the first line again, in the last batch: same provider line id, same file
    rows.append(rows[1])
    total += 1000
    announced = total + payout_error
    rows.append(
        f"txn_{tag}_payout,2026-12-01 00:00:00,2026-12-01 00:00:00,eur,-{announced // 100}.{announced % 100:02d},"
        f"0.00,-{announced // 100}.{announced % 100:02d},payout,po_{tag},STRIPE PAYOUT,,\n"
    )
    return "".join(rows)


def summary_of(described: dict[str, Any]) -> dict[str, Any]:
    assert described["status"] == "SUCCEEDED", described
    summary: dict[str, Any] = json.loads(described["output"])["summary"]
    return summary


def test_a_file_of_several_batches_is_summarised_as_a_whole(stack: DevStack) -> None:
    # GIVEN a settlement of 1,202 lines whose payout is one cent more than its lines, and whose first line
    # comes again at the end
    tag = uuid.uuid4().hex[:8]
    key = f"settlement/stripe/{tag}.csv"
    # WHEN it lands in the bucket
    summary = summary_of(stack.reconcile_settlement(key, settlement(tag, payout_error=1).encode()))
    # THEN three batches ran, every line was classified, and the summary found what spans the batches
    assert summary["batches"] == 3
    assert summary["lines"] == CHARGES + 2
    assert summary["counts"] == {"duplicate_line": 1, "not_reconciled": CHARGES + 1, "payout_amount_differs": 1}
    # AND the report is in the bucket next to the work files
    s3 = stack.client("s3")
    report = json.loads(
        s3.get_object(Bucket=stack.settlement_bucket(), Key=f"reports/{key}.summary.json")["Body"].read()
    )
    assert report["counts"] == summary["counts"]
    # WHEN the same file is reconciled again THEN the mismatches are not recorded twice
    again = summary_of(stack.reconcile_settlement(key, settlement(tag, payout_error=1).encode()))
    assert again["outcomes"].get("recorded", 0) == 0


def test_a_payout_whose_lines_add_up_is_no_mismatch(stack: DevStack) -> None:
    tag = uuid.uuid4().hex[:8]
    summary = summary_of(
        stack.reconcile_settlement(f"settlement/stripe/{tag}.csv", settlement(tag, payout_error=0).encode())
    )
    assert "payout_amount_differs" not in summary["counts"]


FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "settlement"


@pytest.mark.parametrize(
    ("source", "fixture", "expected"),
    [
        (
            "adyen",
            "adyen_settlement_details.csv",
            # two refunds nobody here made, the reversal of one, the batch's fee; the payout adds up
            {"unexpected_in_settlement": 2, "late_failure": 1, "fee_only": 1, "not_reconciled": 2},
        ),
        (
            "paypal",
            "paypal_settlement_STL-20261130.01.009.CSV",
            {"unexpected_in_settlement": 2, "not_reconciled": 2},
        ),
        ("generic", "generic_provider.csv", {"unexpected_in_settlement": 3, "not_reconciled": 2}),
    ],
)
def test_every_provider_settlement_runs_through_the_state_machine(
    stack: DevStack, source: str, fixture: str, expected: dict[str, int]
) -> None:
    key = f"settlement/{source}/{uuid.uuid4().hex}-{fixture}"
    summary = summary_of(stack.reconcile_settlement(key, (FIXTURES / fixture).read_bytes()))
    assert summary["source"] == source
    assert summary["counts"] == expected


def test_a_bank_statement_is_matched_to_the_payouts_settlements_announced(stack: DevStack) -> None:
    # GIVEN a Stripe settlement announcing two payouts, settled on 20 November
    tag = uuid.uuid4().hex[:8]
    short, absent = f"po_{tag}_short", f"po_{tag}_absent"
    rows = [HEADER]
    for payout in (short, absent):
        rows.append(
            f"txn_{payout}_c,2026-11-19 10:00:00,2026-11-20 00:00:00,eur,50.00,0.00,50.00,charge,ch_{payout},Order,"
            f"{payout},2026-11-20 00:00:00\n"
            f"txn_{payout},2026-11-20 00:00:00,2026-11-20 00:00:00,eur,-50.00,0.00,-50.00,payout,{payout},PAYOUT,,\n"
        )
    summary_of(stack.reconcile_settlement(f"settlement/stripe/{tag}.csv", "".join(rows).encode()))
    # WHEN the bank statement of 1 December credits one of them a cent short and never the other
    statement = (
        '<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>'
        '<Stmt><Ntry><Amt Ccy="EUR">49.99</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
        f"<BookgDt><Dt>2026-12-01</Dt></BookgDt><AcctSvcrRef>B-{tag}</AcctSvcrRef>"
        f"<AddtlNtryInf>STRIPE PAYOUT {short}</AddtlNtryInf></Ntry></Stmt></BkToCstmrStmt></Document>"
    )
    summary = summary_of(stack.reconcile_settlement(f"settlement/bank/camt053/{tag}.xml", statement.encode()))
    # THEN the short credit is a payout difference and the other payout is not found, once
    assert summary["source"] == "bank"
    assert summary["counts"].get("payout_amount_differs") == 1
    dynamodb = stack.client("dynamodb")
    table = stack.stack.physical_name("RefundsTable")

    def marker(key: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = dynamodb.get_item(
            TableName=table, Key={"pk": {"S": f"RECON#{key}"}, "sk": {"S": "MARKER"}}, ConsistentRead=True
        ).get("Item")
        return item

    assert marker(f"payout#{absent}#not_found") is not None
    assert marker(f"payout#{short}#not_found") is None
    assert marker(f"payout#{short}#credited") is not None
    again = summary_of(stack.reconcile_settlement(f"settlement/bank/camt053/{tag}.xml", statement.encode()))
    assert again["outcomes"].get("recorded", 0) == 0
