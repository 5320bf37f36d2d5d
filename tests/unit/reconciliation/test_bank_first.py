"""A bank statement that lands before the settlement announcing its payouts: the credits no payout explained
are kept, and the settlement, when it lands, resolves them (matched or the amount differs), once."""

from __future__ import annotations

from datetime import date

from refundflow.ports import AnnouncedPayout, KeptBankLine
from refundflow.reconciliation.apply import Run
from refundflow.reconciliation.pipeline import explain_kept_lines, match_batch
from refundflow.reconciliation.records import BankLine, Direction, bank_to_json
from tests.support.fakes import World

STATEMENT = "settlement/bank/camt053/2026-12-01.xml"
SETTLEMENT = "settlement/stripe/2026-11-30.csv"
PAYOUTS = {"po_exact": (5_000, "EUR"), "po_short": (7_000, "EUR")}


def credit(line_id: str, amount: int, text: str) -> dict[str, object]:
    line = BankLine("camt053", 1, line_id, Direction.CREDIT, amount, "EUR", date(2026, 12, 1), text)
    return bank_to_json(line)


def statement_batch(env: World) -> dict[str, object]:
    items = [
        credit("B-1", 5_000, "STRIPE PAYOUT po_exact"),
        credit("B-2", 6_999, "STRIPE PAYOUT po_short"),
        credit("B-3", 120_000, "SALARY RETURN"),
    ]
    items[1]["line_no"], items[2]["line_no"] = 2, 3
    batch_input = {"file": STATEMENT, "source": "bank", "correlation_id": "c-bank"}
    return match_batch(items, batch_input, repository=env.repository, recorder=env.recorder, publisher=env.publisher)


def settlement_lands(env: World) -> list[str]:
    """What Summarize does for a settlement once its batches are merged: announce, then explain."""
    for reference, (amount, currency) in PAYOUTS.items():
        env.repository.announce_payout(AnnouncedPayout(reference, amount, currency, date(2026, 11, 30), SETTLEMENT))
    applied = explain_kept_lines(
        PAYOUTS,
        Run(SETTLEMENT, "c-settle", "stripe"),
        repository=env.repository,
        recorder=env.recorder,
        publisher=env.publisher,
    )
    return sorted(f"{item.finding.reference}:{item.finding.match_class.value}" for item in applied)


def test_a_statement_before_its_settlement_is_resolved_when_the_settlement_lands(env: World) -> None:
    # GIVEN a statement whose three credits no announced payout explains yet
    first = statement_batch(env)
    assert first["summary"]["counts"] == {"not_reconciled": 3}
    assert len(env.repository.kept_bank_lines()) == 3
    # WHEN the settlement announcing two of the payouts lands
    resolved = settlement_lands(env)
    # THEN one payout is matched, the other differs by a cent (published to ops); the salary line stays kept
    assert resolved == ["po_exact:matched", "po_short:payout_amount_differs"]
    [event] = [event for event in env.publisher.events if event.detail_type == "ReconciliationMismatch"]
    assert (event.match_class, event.difference_minor_units) == ("payout_amount_differs", -1)
    assert [line.key for line in env.repository.kept_bank_lines()] == ["camt053#B-3"]
    for payout in PAYOUTS:
        assert env.repository.get_reconciliation_marker(f"payout#{payout}#credited") is not None
    # WHEN the settlement lands again, and the statement too
    assert settlement_lands(env) == []
    again = statement_batch(env)
    # THEN nothing changes: no new event, nothing recorded twice, the two credits matched by their payouts
    assert [event.detail_type for event in env.publisher.events].count("ReconciliationMismatch") == 1
    assert again["summary"]["counts"] == {"matched": 1, "not_reconciled": 1, "payout_amount_differs": 1}
    assert "recorded" not in again["summary"]["outcomes"]
    assert [line.key for line in env.repository.kept_bank_lines()] == ["camt053#B-3"]


def test_a_kept_credit_of_a_payout_another_statement_credited_is_a_duplicate(env: World) -> None:
    # GIVEN po_exact already credited by a statement that came after its settlement
    env.repository.announce_payout(AnnouncedPayout("po_exact", 5_000, "EUR", date(2026, 11, 30), SETTLEMENT))
    items = [credit("A-1", 5_000, "STRIPE PAYOUT po_exact")]
    batch_input = {"file": "settlement/bank/camt053/a.xml", "source": "bank"}
    match_batch(items, batch_input, repository=env.repository, recorder=env.recorder, publisher=env.publisher)
    # AND an earlier statement's credit of the same payout, kept (that statement landed before anything)
    env.repository.keep_bank_line(
        KeptBankLine("camt053#B-1", STATEMENT, credit("B-1", 5_000, "STRIPE PAYOUT po_exact"))
    )
    # WHEN a settlement naming po_exact lands THEN the kept credit is a duplicate credit, and forgotten
    applied = explain_kept_lines(
        {"po_exact": (5_000, "EUR")},
        Run(SETTLEMENT, "c", "stripe"),
        repository=env.repository,
        recorder=env.recorder,
        publisher=env.publisher,
    )
    assert [item.finding.match_class.value for item in applied] == ["duplicate_line"]
    assert env.repository.kept_bank_lines() == []
