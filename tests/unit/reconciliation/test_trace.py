"""One trace per refund, from ticket to bank line (and back from a bank line or payout), on the store (moto):
every hop with its id, time and actor, and every reason a hop is missing."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from refundflow.domain.books import update_invoice
from refundflow.domain.payments import issue_refund, look_up_payment, reserve_amount
from refundflow.domain.trace import HopName, MissingCode, RefundTrace, bank_line_trace, payout_trace, refund_trace
from refundflow.domain.validation import validate_refund
from refundflow.errors import NotFound
from refundflow.models import (
    ApprovalRecord,
    LegStatus,
    PaymentProvider,
    PaymentReference,
    PolicyDecisionRecord,
    Refund,
    SplitLeg,
    TenderKind,
)
from refundflow.money import Money
from refundflow.ports import AnnouncedPayout, ReconciliationMarker
from refundflow.reconciliation.apply import Run, apply_finding
from refundflow.reconciliation.engine import ExpectedRefund, Finding, MatchClass
from refundflow.reconciliation.pipeline import explain_kept_lines, match_batch
from refundflow.reconciliation.records import BankLine, Direction, LineKind, SettlementLine, bank_to_json
from refundflow.reconciliation.run import reconcile
from refundflow.status import RefundStatus
from tests.support.fakes import World, a_refund, refund_request_body

PAYMENT = "pi_3Pabc"
SETTLEMENT = "settlement/stripe/2026-11-30.csv"
STATEMENT = "settlement/bank/camt053/2026-12-02.xml"


@pytest.fixture
def paid(env: World) -> World:
    env.provider.add_payment(PAYMENT, Money.of(100_000, "EUR"))
    return env


def reserved(env: World, reference: str, amount: int = 2_500, **body: Any) -> str:
    """Accepted (approved at the source by a team lead), validated, decided by the policy and reserved."""
    approved_by = {"id": "agent-7", "role": "team_lead", "name": "Sam"}
    request = refund_request_body(reference=reference, amount=amount, approved_by=approved_by, **body)
    refund_id = env.accept(request, f"dlv-{reference}").refund.refund_id
    validate_refund(refund_id, recorder=env.recorder)
    look_up_payment(refund_id, recorder=env.recorder, provider=env.provider)
    refund = env.repository.get(refund_id)
    policy = PolicyDecisionRecord(outcome="auto_approve", policy_version="2026-11", rule_id="small-returns")
    approval = ApprovalRecord(
        decision="approve", approver="operator", role="team_lead", channel="api", decided_at=refund.created_at
    )
    env.recorder.move(
        refund,
        RefundStatus.APPROVED,
        actor="step:EvaluatePolicy",
        details={"outcome": "auto_approve", "rule_id": "small-returns", "policy_version": "2026-11"},
        changes={"amount": refund.requested_amount, "policy": policy, "approval": approval},
    )
    reserve_amount(refund_id, recorder=env.recorder)
    return refund_id


def completed(env: World, reference: str, amount: int = 2_500, **body: Any) -> Refund:
    refund_id = reserved(env, reference, amount, **body)
    issue_refund(refund_id, recorder=env.recorder, provider=env.provider)
    update_invoice(refund_id, recorder=env.recorder, books=env.books)
    return env.repository.get(refund_id)


def line(
    line_no: int,
    reference: str,
    amount: int,
    *,
    kind: LineKind = LineKind.REFUND,
    payout: str | None = "po_1",
    net: int | None = None,
) -> SettlementLine:
    signed = {LineKind.REFUND: -amount, LineKind.CHARGE: amount, LineKind.REFUND_FAILURE: amount}.get(kind, 0)
    return SettlementLine(
        "stripe",
        line_no,
        f"txn_{line_no}",
        kind,
        reference,
        amount,
        "EUR",
        0,
        signed if net is None else net,
        date(2026, 11, 30),
        payout,
    )


def settle(env: World, lines: list[SettlementLine], *, file: str = SETTLEMENT, expected: Any = ()) -> None:
    """Reconcile a settlement and announce its payouts, as the state machine's Summarize step does."""
    reconciler = reconcile(
        lines,
        Run(file=file, correlation_id="recon-1", source="stripe"),
        repository=env.repository,
        recorder=env.recorder,
        publisher=env.publisher,
        expected=list(expected),
    )
    dates = reconciler.matcher.announced_payout_dates()
    announced = reconciler.matcher.announced_payouts()
    for reference, (amount, currency) in announced.items():
        env.repository.announce_payout(AnnouncedPayout(reference, amount, currency, dates.get(reference), file))
    run = Run(file=file, correlation_id="recon-1", source="stripe")
    explain_kept_lines(announced, run, repository=env.repository, recorder=env.recorder, publisher=env.publisher)


def payout_file(refund: Refund, *, refund_amount: int | None = None) -> list[SettlementLine]:
    """A charge of 100.00, the refund, and the payout of what is left (po_1)."""
    amount = refund_amount if refund_amount is not None else refund.amount.minor_units  # type: ignore[union-attr]
    return [
        line(1, "ch_1", 10_000, kind=LineKind.CHARGE),
        line(2, refund.provider_refund_id or "", amount),
        line(3, "po_1", 10_000 - amount, kind=LineKind.PAYOUT, payout=None, net=-(10_000 - amount)),
    ]


def bank_statement(env: World, amount: int, *, text: str = "STRIPE PAYOUT po_1") -> None:
    credits = [
        BankLine("camt053", 1, "B-1", Direction.CREDIT, 120_000, "EUR", date(2026, 12, 2), "SALARY RETURN"),
        BankLine("camt053", 2, "B-2", Direction.CREDIT, amount, "EUR", date(2026, 12, 2), text),
    ]
    batch_input = {"file": STATEMENT, "source": "bank", "correlation_id": "c-bank"}
    items = [bank_to_json(credit) for credit in credits]
    match_batch(items, batch_input, repository=env.repository, recorder=env.recorder, publisher=env.publisher)


def hops(trace: RefundTrace) -> dict[str, Any]:
    return {hop.hop.value: hop for hop in trace.hops}


def missing_codes(trace: RefundTrace) -> dict[str, str]:
    return {hop.hop.value: hop.missing.code.value for hop in trace.hops if hop.missing is not None}


# ---------------------------------------------------------------------------------------------- every hop


def test_a_settled_refund_credited_by_a_bank_line_has_every_hop_in_order(paid: World) -> None:
    # GIVEN a refund paid, booked, settled in payout po_1 and that payout credited by a bank statement's line 2
    refund = completed(paid, "RMA-1")
    settle(paid, payout_file(refund))
    bank_statement(paid, 7_500)
    # WHEN it is traced
    trace = refund_trace(refund.refund_id, repository=paid.repository)
    # THEN every hop is there, in order, with its ids, time and actor; the audit chain verifies
    assert [hop.hop for hop in trace.hops] == list(HopName)
    assert trace.complete
    assert trace.missing == []
    assert trace.audit.intact
    assert trace.audit.keyed
    by = hops(trace)
    request = by["request"]
    assert (request.facts["source_system"], request.facts["source_reference"], request.facts["ticket_id"]) == (
        "returns-portal",
        "RMA-1",
        "T-77",
    )
    assert request.facts["approved_by"] == {"id": "agent-7", "role": "team_lead", "name": "Sam"}
    assert request.facts["approval"]["approver"] == "operator"
    assert request.audit_seq == 1
    assert request.actor == "refund-requests:returns-portal"
    policy = by["policy"]
    assert (policy.facts["rule_id"], policy.facts["policy_version"], policy.actor) == (
        "small-returns",
        "2026-11",
        "step:EvaluatePolicy",
    )
    provider = by["provider_refund"]
    assert (provider.facts["provider_refund_id"], provider.facts["provider_status"]) == (
        refund.provider_refund_id,
        "succeeded",
    )
    assert provider.actor == "provider:stripe"
    assert provider.at is not None
    document = by["credit_document"]
    assert (document.facts["document_id"], document.facts["number"], document.actor) == (
        "cn-1",
        "CN-0001",
        "books:xero",
    )
    settlement = by["settlement_line"]
    assert settlement.facts["file"] == SETTLEMENT
    assert settlement.facts["line_no"] == 2
    assert settlement.facts["line"] == "stripe#txn_2"
    assert settlement.facts["payout_id"] == "po_1"
    assert settlement.actor == "reconciliation"
    assert settlement.audit_seq == trace.audit.entries
    payout = by["payout"]
    assert payout.facts["payout_id"] == "po_1"
    assert payout.facts["amount"] == {"minor_units": 7_500, "currency": "EUR"}
    assert payout.facts["settled_on"] == "2026-11-30"
    assert payout.facts["arrived_on"] == "2026-12-02"
    bank = by["bank_line"]
    assert (bank.facts["file"], bank.facts["line_no"], bank.facts["line"]) == (STATEMENT, 2, "camt053#B-2")
    assert bank.facts["booked_on"] == "2026-12-02"
    assert bank.at == date(2026, 12, 2)
    # AND the steps are in time order
    times = [hop.at for hop in trace.hops[:5]]
    assert times == sorted(times)  # type: ignore[type-var]


def test_a_statement_that_landed_before_its_settlement_is_the_bank_hop_once_the_settlement_lands(paid: World) -> None:
    # GIVEN the bank statement crediting po_1, reconciled before any settlement announced po_1 (its line kept)
    refund = completed(paid, "RMA-1")
    bank_statement(paid, 7_500)
    assert hops(refund_trace(refund.refund_id, repository=paid.repository))["settlement_line"].present is False
    # WHEN the settlement lands (and explains the kept line)
    settle(paid, payout_file(refund))
    # THEN the kept line is the refund's bank hop, and the line's end finds the refund
    trace = refund_trace(refund.refund_id, repository=paid.repository)
    assert trace.complete
    assert hops(trace)["bank_line"].facts["line_no"] == 2
    found = bank_line_trace(STATEMENT, 2, repository=paid.repository).payout.refunds
    assert [item.refund_id for item in found] == [refund.refund_id]


def test_a_payout_credited_before_the_marker_kept_the_bank_line_names_its_file_and_line(paid: World) -> None:
    # GIVEN a payout whose "credited" marker was written the old way (file and line number only)
    refund = completed(paid, "RMA-1")
    settle(paid, payout_file(refund))
    marker = ReconciliationMarker("payout#po_1#credited", STATEMENT, 7, "credited", None)
    assert paid.repository.put_reconciliation_marker(marker)
    # WHEN traced THEN the bank hop is there with what the marker knows
    bank = hops(refund_trace(refund.refund_id, repository=paid.repository))["bank_line"]
    assert bank.present
    assert bank.facts == {"file": STATEMENT, "line_no": 7, "payout_id": "po_1"}


def test_the_bank_line_and_the_payout_list_the_refunds_they_carried(paid: World) -> None:
    # GIVEN two refunds settled in po_1 (one settled, one whose amount differs) and po_1 credited by line 2
    first = completed(paid, "RMA-1")
    second = completed(paid, "RMA-2", amount=1_000)
    lines = [
        line(1, "ch_1", 10_000, kind=LineKind.CHARGE),
        line(2, first.provider_refund_id or "", 2_500),
        line(3, second.provider_refund_id or "", 900),
        line(4, "po_1", 6_600, kind=LineKind.PAYOUT, payout=None, net=-6_600),
    ]
    settle(paid, lines)
    bank_statement(paid, 6_600)
    # WHEN asked from the bank line's end
    answer = bank_line_trace(STATEMENT, 2, repository=paid.repository)
    # THEN the line's payout, and each refund with its line and its trace summary
    payout = answer.payout
    assert payout.payout_id == "po_1"
    assert payout.bank_line.facts["line_no"] == 2
    summaries = {item.refund_id: item for item in payout.refunds}
    assert set(summaries) == {first.refund_id, second.refund_id}
    assert summaries[first.refund_id].complete
    assert summaries[first.refund_id].status is RefundStatus.SETTLED
    assert summaries[first.refund_id].source["reference"] == "RMA-1"
    assert summaries[first.refund_id].line == {"file": SETTLEMENT, "line_no": 2, "line": "stripe#txn_2"}
    assert summaries[second.refund_id].match_class == "amount_differs"
    assert summaries[second.refund_id].missing == ["settlement_line: mismatch"]
    assert all(item.audit_intact for item in payout.refunds)
    # AND the payout's own end answers the same, also after both files land again (nothing recorded twice); a line
    # that credited nothing is not found
    settle(paid, lines)
    bank_statement(paid, 6_600)
    assert payout_trace("po_1", repository=paid.repository).refunds == payout.refunds
    with pytest.raises(NotFound):
        bank_line_trace(STATEMENT, 1, repository=paid.repository)
    with pytest.raises(NotFound):
        payout_trace("po_unknown", repository=paid.repository)


def test_a_payout_pages_through_its_refunds(paid: World) -> None:
    refunds = [completed(paid, f"RMA-{n}", amount=100) for n in range(3)]
    lines = [line(1, "ch_1", 10_000, kind=LineKind.CHARGE)]
    lines += [line(2 + n, refund.provider_refund_id or "", 100) for n, refund in enumerate(refunds)]
    settle(paid, lines)
    first = payout_trace("po_1", repository=paid.repository, limit=2)
    assert len(first.refunds) == 2
    assert first.next is not None
    rest = payout_trace("po_1", repository=paid.repository, after=first.next, limit=2)
    assert {item.refund_id for item in first.refunds + rest.refunds} == {refund.refund_id for refund in refunds}
    assert rest.next is None


# ---------------------------------------------------------------------------------------------- missing hops


def test_a_refund_not_refunded_yet_says_so_for_every_later_hop(paid: World) -> None:
    refund_id = reserved(paid, "RMA-1")
    trace = refund_trace(refund_id, repository=paid.repository)
    assert missing_codes(trace) == {
        "provider_refund": "not_yet_refunded",
        "credit_document": "not_yet_refunded",
        "settlement_line": "not_yet_refunded",
        "payout": "not_yet_refunded",
        "bank_line": "not_yet_refunded",
    }
    assert not trace.complete
    assert trace.missing[0] == "provider_refund: not_yet_refunded"
    assert "waits for the provider refund" in hops(trace)["bank_line"].missing.reason


def test_a_refunded_refund_not_booked_yet_is_books_pending_and_not_yet_settled(paid: World) -> None:
    refund_id = reserved(paid, "RMA-1")
    issue_refund(refund_id, recorder=paid.recorder, provider=paid.provider)
    codes = missing_codes(refund_trace(refund_id, repository=paid.repository))
    assert codes["credit_document"] == "books_pending"
    assert codes["settlement_line"] == "not_yet_settled"


def test_a_refund_without_an_invoice_has_nothing_to_book(paid: World) -> None:
    refund = completed(paid, "RMA-1", invoice_id=None)
    assert refund.status is RefundStatus.COMPLETED
    codes = missing_codes(refund_trace(refund.refund_id, repository=paid.repository))
    assert codes == {
        "credit_document": "no_invoice",
        "settlement_line": "not_yet_settled",
        "payout": "not_yet_settled",
        "bank_line": "not_yet_settled",
    }


def test_a_completed_refund_no_settlement_named_is_not_yet_settled(paid: World) -> None:
    refund = completed(paid, "RMA-1")
    trace = refund_trace(refund.refund_id, repository=paid.repository)
    assert missing_codes(trace) == {
        "settlement_line": "not_yet_settled",
        "payout": "not_yet_settled",
        "bank_line": "not_yet_settled",
    }


def test_a_line_that_matched_before_the_refund_completed_is_not_reconciled(paid: World) -> None:
    refund_id = reserved(paid, "RMA-1")
    issue_refund(refund_id, recorder=paid.recorder, provider=paid.provider)
    refund = paid.repository.get(refund_id)
    settle(paid, payout_file(refund))
    trace = refund_trace(refund_id, repository=paid.repository)
    settlement = hops(trace)["settlement_line"]
    assert settlement.present
    assert settlement.missing is not None
    assert settlement.missing.code is MissingCode.NOT_RECONCILED
    # the payout and the bank hops are still followed from the line's payout
    assert hops(trace)["payout"].present
    assert hops(trace)["bank_line"].missing.code is MissingCode.NO_BANK_STATEMENT_YET


@pytest.mark.parametrize(
    ("settled_amount", "kind", "match_class"),
    [(2_400, LineKind.REFUND, "amount_differs"), (2_500, LineKind.REFUND_FAILURE, "late_failure")],
)
def test_a_mismatch_names_its_class(paid: World, settled_amount: int, kind: LineKind, match_class: str) -> None:
    refund = completed(paid, "RMA-1")
    if kind is LineKind.REFUND_FAILURE:
        settle(paid, payout_file(refund))  # settled first, then reversed by the provider
        settle(
            paid,
            [line(9, refund.provider_refund_id or "", settled_amount, kind=kind)],
            file="settlement/stripe/late.csv",
        )
    else:
        settle(paid, payout_file(refund, refund_amount=settled_amount))
    trace = refund_trace(refund.refund_id, repository=paid.repository)
    settlement = hops(trace)["settlement_line"]
    assert settlement.present
    assert settlement.missing is not None
    assert (settlement.missing.code, settlement.missing.match_class) == (MissingCode.MISMATCH, match_class)
    assert "settlement_line: mismatch" in trace.missing
    assert not trace.complete


def test_a_refund_missing_from_its_settlement_is_a_mismatch_without_a_line(paid: World) -> None:
    refund = completed(paid, "RMA-1")
    expected = ExpectedRefund(refund.refund_id, refund.provider_refund_id or "", 2_500, "EUR", "COMPLETED")
    settle(paid, [line(1, "ch_1", 10_000, kind=LineKind.CHARGE)], expected=[expected])
    settlement = hops(refund_trace(refund.refund_id, repository=paid.repository))["settlement_line"]
    assert not settlement.present
    assert (settlement.missing.code, settlement.missing.match_class) == (MissingCode.MISMATCH, "missing_in_settlement")


def test_a_line_naming_no_payout_and_a_payout_not_announced(paid: World) -> None:
    first, second = completed(paid, "RMA-1"), completed(paid, "RMA-2")
    settle(paid, [line(1, first.provider_refund_id or "", 2_500, payout=None)])
    settle(paid, [line(2, second.provider_refund_id or "", 2_500, payout="po_later")], file="settlement/stripe/b.csv")
    assert missing_codes(refund_trace(first.refund_id, repository=paid.repository)) == {
        "payout": "no_payout_named",
        "bank_line": "no_payout_named",
    }
    trace = refund_trace(second.refund_id, repository=paid.repository)
    assert missing_codes(trace) == {"payout": "payout_not_announced", "bank_line": "payout_not_announced"}
    assert hops(trace)["payout"].facts == {"payout_id": "po_later"}


def test_a_payout_no_bank_statement_credited_yet_and_one_a_statement_missed(paid: World) -> None:
    refund = completed(paid, "RMA-1")
    settle(paid, payout_file(refund))
    assert missing_codes(refund_trace(refund.refund_id, repository=paid.repository)) == {
        "bank_line": "no_bank_statement_yet"
    }
    # WHEN a statement past the grace period does not credit it (the Summarize step's payout_not_found)
    not_found = Finding("payout#po_1", MatchClass.PAYOUT_NOT_FOUND, "po_1", 7_500, "EUR", detail="no bank line")
    apply_finding(
        not_found,
        Run(STATEMENT, "c", "bank"),
        repository=paid.repository,
        recorder=paid.recorder,
        publisher=paid.publisher,
    )
    assert missing_codes(refund_trace(refund.refund_id, repository=paid.repository)) == {
        "bank_line": "payout_not_credited"
    }


def test_a_bank_line_whose_amount_differs_from_the_payout_is_a_mismatch(paid: World) -> None:
    refund = completed(paid, "RMA-1")
    settle(paid, payout_file(refund))
    bank_statement(paid, 7_499)
    bank = hops(refund_trace(refund.refund_id, repository=paid.repository))["bank_line"]
    assert bank.present
    assert bank.facts["amount"] == {"minor_units": 7_499, "currency": "EUR"}
    assert (bank.missing.code, bank.missing.match_class) == (MissingCode.MISMATCH, "payout_amount_differs")


def test_a_rejected_refund_moves_no_money(paid: World) -> None:
    refund_id = paid.accept(refund_request_body(reference="RMA-1"), "dlv-1").refund.refund_id
    refund = paid.repository.get(refund_id)
    validate_refund(refund_id, recorder=paid.recorder)
    refund = paid.repository.get(refund_id)
    paid.recorder.move(refund, RefundStatus.REJECTED, actor="step:EvaluatePolicy")
    codes = missing_codes(refund_trace(refund_id, repository=paid.repository))
    assert codes["policy"] == "not_yet_decided"
    assert codes["provider_refund"] == "not_refunded"


def test_an_edited_audit_entry_makes_the_trace_say_the_chain_is_broken(paid: World) -> None:
    refund = completed(paid, "RMA-1")
    settle(paid, payout_file(refund))
    table = paid.repository.table_name
    client = paid.repository.dynamodb
    items = client.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"AUDIT#{refund.refund_id}"}},
    )["Items"]
    settled = items[-1]
    settled["actor"] = {"S": "mallory"}
    client.put_item(TableName=table, Item=settled)
    trace = refund_trace(refund.refund_id, repository=paid.repository)
    assert not trace.audit.intact
    assert not trace.complete
    assert payout_trace("po_1", repository=paid.repository).refunds[0].audit_intact is False
    # AND the answer says why in ``missing``
    assert trace.audit.broken_at_seq == int(settled["seq"]["N"])
    assert "audit: broken" in trace.missing
    # WHEN the edit keeps the actor and names another settlement file instead
    settled["actor"] = {"S": "reconciliation"}
    settled["details"]["M"]["file"] = {"S": "settlement/stripe/forged.csv"}
    client.put_item(TableName=table, Item=settled)
    trace = refund_trace(refund.refund_id, repository=paid.repository)
    # THEN the hop read from the edited entry keeps what is stored but says it is not verified; the others do not
    settlement = hops(trace)["settlement_line"]
    assert settlement.facts["file"] == "settlement/stripe/forged.csv"
    assert settlement.missing is not None
    assert settlement.missing.code.value == "audit_broken"
    assert trace.missing == ["settlement_line: audit_broken", "bank_line: no_bank_statement_yet", "audit: broken"]
    assert hops(trace)["request"].missing is None


# ---------------------------------------------------------------------------------------------- split tenders


def test_a_split_refund_nests_each_legs_money_hops_and_a_leg_names_its_parent(paid: World) -> None:
    # GIVEN a split parent with a card leg (its own refund, not refunded yet) and a store-credit leg
    parent_id = reserved(paid, "RMA-SPLIT")
    leg_refund = a_refund("RMA-SPLIT-leg-0", payment_id=PAYMENT).model_copy(update={"parent_refund_id": parent_id})
    paid.repository.create(leg_refund, actor="tests", delivery=None)
    legs = [
        SplitLeg(
            index=0,
            tender_index=0,
            payment=PaymentReference(provider=PaymentProvider.STRIPE, payment_id=PAYMENT),
            kind=TenderKind.CARD,
            amount=Money.of(1_500, "EUR"),
            status=LegStatus.SUBMITTED,
            refund_id=leg_refund.refund_id,
        ),
        SplitLeg(
            index=1,
            tender_index=1,
            payment=None,
            kind=TenderKind.STORE_CREDIT,
            amount=Money.of(1_000, "EUR"),
            status=LegStatus.SUCCEEDED,
        ),
    ]
    parent = paid.repository.get(parent_id)
    paid.recorder.note(parent, "SplitPlanned", actor="tests", changes={"legs": legs})
    # WHEN the parent is traced
    trace = refund_trace(parent_id, repository=paid.repository)
    # THEN its own hops end at its credit document; the money hops are under each leg
    assert [hop.hop for hop in trace.hops] == [
        HopName.REQUEST,
        HopName.POLICY,
        HopName.PROVIDER_REFUND,
        HopName.CREDIT_DOCUMENT,
    ]
    assert hops(trace)["provider_refund"].facts["split_across_legs"] == [leg_refund.refund_id, None]
    card, credit = trace.legs
    assert card.refund_id == leg_refund.refund_id
    assert card.audit is not None
    assert card.audit.intact
    assert [hop.hop for hop in card.hops] == [
        HopName.PROVIDER_REFUND,
        HopName.SETTLEMENT_LINE,
        HopName.PAYOUT,
        HopName.BANK_LINE,
    ]
    assert card.hops[0].missing.code is MissingCode.NOT_YET_REFUNDED
    assert "leg 0 provider_refund: not_yet_refunded" in trace.missing
    assert credit.refund_id is None
    assert credit.hops[0].present
    assert credit.hops[0].facts["tender"] == "store_credit"
    # AND the leg's own trace names its parent
    assert refund_trace(leg_refund.refund_id, repository=paid.repository).parent_refund_id == parent_id


def test_an_unknown_payout_is_not_found_whatever_after_says(paid: World) -> None:
    # GIVEN no settlement announced po_unknown and no line of ours names it
    # WHEN its trace is asked for a later page (an ``after`` nobody answered) THEN it is still unknown
    for after in (None, "stripe#txn_forged", "\u00ff" * 10):
        with pytest.raises(NotFound):
            payout_trace("po_unknown", repository=paid.repository, after=after)
    # AND a payout known only by a line of ours (its total not announced yet) pages past its last line: an empty page
    refund = completed(paid, "RMA-after")
    settle(paid, [line(2, refund.provider_refund_id or "", 2_500, payout="po_later")])
    assert [item.refund_id for item in payout_trace("po_later", repository=paid.repository).refunds] == [
        refund.refund_id
    ]
    assert payout_trace("po_later", repository=paid.repository, after="\uffff").refunds == []


def test_a_payout_a_second_statement_credits_again_is_a_duplicate_credit_not_a_second_bank_line(paid: World) -> None:
    # GIVEN po_1 settled and credited by the statement's line 2
    refund = completed(paid, "RMA-1")
    settle(paid, payout_file(refund))
    bank_statement(paid, 7_500)
    # WHEN another statement credits po_1 again (another line id, the same amount and payout reference)
    again = [BankLine("camt053", 1, "B-9", Direction.CREDIT, 7_500, "EUR", date(2026, 12, 3), "STRIPE PAYOUT po_1")]
    batch_input = {"file": "settlement/bank/camt053/2026-12-03.xml", "source": "bank", "correlation_id": "c-bank-2"}
    result = match_batch(
        [bank_to_json(credit) for credit in again],
        batch_input,
        repository=paid.repository,
        recorder=paid.recorder,
        publisher=paid.publisher,
    )
    # THEN it is a duplicate credit naming the first, not a match: the payout keeps the line that credited it
    assert result["summary"]["counts"] == {"duplicate_line": 1}
    with pytest.raises(NotFound):
        bank_line_trace("settlement/bank/camt053/2026-12-03.xml", 1, repository=paid.repository)
    trace = refund_trace(refund.refund_id, repository=paid.repository)
    assert (hops(trace)["bank_line"].facts["file"], hops(trace)["bank_line"].facts["line_no"]) == (STATEMENT, 2)
    assert trace.complete
    # AND the statement that credited it, reconciled again, still matches (nothing recorded twice)
    bank_statement(paid, 7_500)
    assert bank_line_trace(STATEMENT, 2, repository=paid.repository).payout.payout_id == "po_1"


def test_a_refund_made_outside_refundflow_with_no_invoice_waits_for_its_books_by_hand(paid: World) -> None:
    from refundflow.domain.external import external_refund_id
    from tests.support.fakes import provider_event

    # GIVEN a refund made in the provider's dashboard, no invoice of ours known: a person books it
    outside = paid.provider.refund_outside(PAYMENT, Money.of(1_000, "EUR"))
    paid.deliver(provider_event(outside))
    refund_id = external_refund_id("stripe", outside.provider_refund_id)
    assert paid.repository.get(refund_id).attention_reason == "external_refund_unbooked"
    # THEN its trace says no policy decided it and its credit document is pending (not "nothing to book")
    trace = refund_trace(refund_id, repository=paid.repository)
    codes = missing_codes(trace)
    assert (codes["policy"], codes["credit_document"]) == ("not_yet_decided", "books_pending")
    assert "outside refundflow" in (hops(trace)["policy"].missing.reason if hops(trace)["policy"].missing else "")
    assert hops(trace)["provider_refund"].facts["provider_refund_id"] == outside.provider_refund_id
